"""The testbed state file: what `up` created, so `down` and `status` work from another process.

Why a file and not process memory: `testbed up` returns once the machines are ready and
the machines keep running; `down` (maybe from a pytest session, maybe a day later) must
know every pid, netns, veth, mount and the bridge to remove exactly those and nothing
else. It is written atomically and updated as resources are created, so even a failed
`up` leaves a state file that `down` can clean up from.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "state.json"
STATE_VERSION = 1


@dataclass
class MachineState:
    """One machine: its identity, where its files are, and the resources it holds."""

    name: str
    index: int
    ip: str
    roles: list[str]
    netns: str
    veth: str
    machine_dir: str
    pid: int | None = None
    leader_pid: int | None = None
    cgroups: list[str] = field(default_factory=list)
    # `arm64` machines run under qemu-user; `rpm` machines have rpm and dnf, no dpkg or apt
    arch: str = "amd64"
    family: str = "deb"
    rootfs: str = ""

    @property
    def emulated(self) -> bool:
        return self.arch != "amd64"

    @property
    def root(self) -> Path:
        """The merged overlay the machine boots from."""
        return Path(self.machine_dir) / "root"

    @property
    def upper(self) -> Path:
        return Path(self.machine_dir) / "upper"

    @property
    def work(self) -> Path:
        return Path(self.machine_dir) / "work"

    @property
    def containerd_dir(self) -> Path:
        """Bound to /var/lib/containerd: containerd's overlayfs snapshotter cannot nest on an overlay root."""
        return Path(self.machine_dir) / "containerd"

    @property
    def console_log(self) -> Path:
        return Path(self.machine_dir) / "console.log"


@dataclass
class TestbedState:
    __test__ = False  # not a pytest test class

    name: str
    out_dir: str
    bridge: str
    subnet: str
    gateway: str
    arch: str
    rootfs: str
    machines: list[MachineState] = field(default_factory=list)
    bridge_created: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    # the testbed's local dnf repo on the bridge (rpm machines' `repo` packages): pid and URL
    repo_pid: int | None = None
    repo_url: str = ""
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TestbedState:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported testbed state version {data.get('version')!r}")
        machines = [MachineState(**m) for m in data.pop("machines", [])]
        return cls(**data, machines=machines)

    def machine(self, name: str) -> MachineState:
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)


def state_path(out_dir: Path) -> Path:
    return out_dir / STATE_FILE


def save(state: TestbedState) -> Path:
    """Write atomically (tmp + rename) so a concurrent `status` never reads half a file."""
    path = state_path(Path(state.out_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(state.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(out_dir: Path) -> TestbedState | None:
    path = state_path(out_dir)
    if not path.is_file():
        return None
    return TestbedState.from_json(path.read_text())
