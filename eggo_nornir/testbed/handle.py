"""`Testbed`: a running testbed plus helpers to reach its machines (used by the e2e tests).

Why in the package rather than in conftest.py: test modules cannot import a conftest
(tests are not packages), and other test tiers and notebooks want the same handle:
machines by name or role, the key, the password file, one-shot SSH commands.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from eggo_nornir.testbed import credentials, ssh
from eggo_nornir.testbed.state import MachineState, TestbedState


def unavailable() -> str | None:
    """Why the testbed cannot run on this host, or None if it can."""
    if os.geteuid() != 0:
        return "the testbed needs root"
    for tool in ("systemd-nspawn", "ip", "debootstrap", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run .ci/testbed-deps.sh)"
    return None


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class

    state: TestbedState
    out_dir: Path

    @property
    def machines(self) -> list[MachineState]:
        return self.state.machines

    @property
    def key_path(self) -> Path:
        return self.out_dir / credentials.KEY_FILE

    @property
    def known_hosts(self) -> Path:
        return self.out_dir / credentials.KNOWN_HOSTS_FILE

    @property
    def deploy_yaml(self) -> Path:
        return self.out_dir / "deploy.yaml"

    def password(self) -> str:
        """The machines' password (root, eggo, eggopw); read on demand, never logged."""
        return (self.out_dir / credentials.PASSWORD_FILE).read_text().strip()

    def machine(self, name: str) -> MachineState:
        return self.state.machine(name)

    def with_role(self, role: str) -> list[MachineState]:
        return [m for m in self.machines if role in m.roles]

    def run(
        self, machine: MachineState | str, command: str, user: str = "root", timeout: float = 300
    ) -> ssh.Result:
        """Run one command over SSH with the testbed key (host key pinned)."""
        m = self.machine(machine) if isinstance(machine, str) else machine
        client = ssh.connect(m.ip, user, key_path=self.key_path, known_hosts=self.known_hosts)
        try:
            return ssh.execute(client, command, timeout=timeout)
        finally:
            client.close()
