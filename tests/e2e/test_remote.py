"""The remote seam against a real OpenSSH sshd.

Why our own sshd: these tests check exactly the things a fake cannot (stream windows,
sudo's prompt, SFTP, host keys, negotiated algorithms). Each sshd runs as root on
127.0.0.1 inside a throwaway mount namespace (`unshare -m`) with a private copy of /etc
bind-mounted over /etc and tmpfs on /home and /run, so the test users `eggo`
(passwordless sudo) and `eggopw` (sudo with a password) exist only in there, and
nothing leaks to the machine. Everything is stopped by PID at the end.

Skipped when not root, or when sshd, sudo or unshare is missing (`.ci/run` installs
openssh-server and sudo).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from eggo_nornir.config.model import Node
from eggo_nornir.remote import (
    CommandFailed,
    CommandTimeout,
    HostKeyChanged,
    SSHRemote,
    SudoError,
    Unreachable,
)
from eggo_nornir.remote.hostkeys import KnownHosts, host_id

SSHD = "/usr/sbin/sshd"
SUDO_PASSWORD = "Sekr3t-pw-7c1e9a"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (sshd, mount namespaces)"),
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed"),
    pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is missing"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class Sshd:
    """One sshd in its own mount namespace; `stop()` ends it by PID."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_sshd(
    workdir: Path,
    *,
    port: int | None = None,
    host_key: Path,
    user_key: Path,
    extra_config: str = "",
) -> Sshd:
    """Start sshd under `unshare -m` with the test users and wait until it accepts TCP."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    (workdir / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                # pytest's tmp dir is 0700, so the key list is copied into the namespace's /run
                "AuthorizedKeysFile /run/eggo-test/authorized_keys",
                "PidFile none",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin yes",
                "PasswordAuthentication yes",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100",
                "LogLevel VERBOSE",
                extra_config,
                "",
            ]
        )
    )
    etc = workdir / "etc"
    if not etc.exists():
        shutil.copytree("/etc", etc, symlinks=True)
    setup = workdir / "setup.sh"
    # The password goes through chpasswd's stdin from a file, and this shell execs sshd,
    # so it is on no command line that a later /proc scan could confuse with a leak.
    (workdir / "chpasswd.in").write_text(f"eggopw:{SUDO_PASSWORD}\n")
    setup.write_text(
        f"""set -e
mount --bind {etc} /etc
mount -t tmpfs tmpfs /home
mount -t tmpfs tmpfs /run
mkdir -p /run/sshd /run/eggo-test
cp {workdir / "authorized_keys"} /run/eggo-test/authorized_keys
chmod 0755 /run/eggo-test; chmod 0644 /run/eggo-test/authorized_keys
id eggo >/dev/null 2>&1 || useradd -m -s /bin/sh eggo
id eggopw >/dev/null 2>&1 || useradd -m -s /bin/sh eggopw
mkdir -p /home/eggo /home/eggopw
chown eggo: /home/eggo; chown eggopw: /home/eggopw
usermod -p '*' eggo
chpasswd < {workdir / "chpasswd.in"}
echo 'eggo ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/eggo-test
echo 'eggopw ALL=(ALL) ALL' > /etc/sudoers.d/eggopw-test
chmod 0440 /etc/sudoers.d/eggo-test /etc/sudoers.d/eggopw-test
{SSHD} -t -f {config}
exec {SSHD} -D -e -f {config}
"""
    )
    log = open(workdir / "sshd.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", str(setup)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(workdir / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(4).startswith(b"SSH"):
                    return Sshd(port, proc, workdir)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sshd did not come up")


@dataclass
class Lab:
    sshd: Sshd
    user_key: Path
    tmp: Path

    def node(self, username: str = "root", **kw: object) -> Node:
        params: dict[str, object] = {
            "name": f"lab-{username}",
            "ip": "127.0.0.1",
            "port": self.sshd.port,
            "username": username,
            "private_key_path": str(self.user_key),
        }
        params.update(kw)
        return Node(**params)  # type: ignore[arg-type]

    def connect(self, username: str = "root", **kw: object) -> SSHRemote:
        sudo_password = kw.pop("sudo_password", None)
        return SSHRemote.connect(
            self.node(username, sudo_password=sudo_password),
            known_hosts=self.tmp / "known_hosts",
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("remote-e2e")
    user_key = _keygen(tmp / "userkey")
    host_key = _keygen(tmp / "hostkey")
    sshd = start_sshd(tmp / "main", host_key=host_key, user_key=user_key)
    try:
        yield Lab(sshd, user_key, tmp)
    finally:
        sshd.stop()


@pytest.fixture
def root(lab: Lab) -> Iterator[SSHRemote]:
    with lab.connect("root") as r:
        yield r


@pytest.fixture(params=["root", "eggo", "eggopw"])
def anyuser(request: pytest.FixtureRequest, lab: Lab) -> Iterator[SSHRemote]:
    kw = {"sudo_password": SUDO_PASSWORD} if request.param == "eggopw" else {}
    with lab.connect(request.param, **kw) as r:
        yield r


def _in_thread(fn, limit: float):  # type: ignore[no-untyped-def]
    """Run fn in a thread and fail (rather than hang the suite) if it exceeds `limit`."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # pragma: no cover - re-raised below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        pytest.fail(f"still running after {limit}s: deadlock?")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


# -- run -------------------------------------------------------------------------------------


def test_run_as_each_user_gets_root(anyuser: SSHRemote) -> None:
    res = anyuser.run("id -u; echo out; echo err >&2")
    assert res.rc == 0
    assert res.stdout == "0\nout\n"
    assert res.stderr == "err\n"
    assert anyuser.run(["id", "-un"], sudo=False).stdout.strip() == anyuser.username


def test_large_stderr_does_not_deadlock(anyuser: SSHRemote) -> None:
    four_mib = 4 * 1024 * 1024
    cmd = f"head -c {four_mib} /dev/zero | tr '\\0' e >&2; head -c {four_mib} /dev/zero | tr '\\0' o"
    res = _in_thread(lambda: anyuser.run(cmd, timeout=60), limit=90)
    assert len(res.stderr) == four_mib and set(res.stderr) == {"e"}
    assert len(res.stdout) == four_mib and set(res.stdout) == {"o"}
    assert anyuser.stats()["bytes_received"] >= 2 * four_mib


def test_timeout_fires_and_names_host(anyuser: SSHRemote) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        anyuser.run("sleep 30", timeout=1.5)
    assert time.monotonic() - start < 10
    assert anyuser.host in str(info.value) and "sleep 30" in str(info.value)
    assert anyuser.run("true").rc == 0  # the connection is still usable


def test_env_is_passed_quoted(anyuser: SSHRemote) -> None:
    env = {"EGGO_A": 'it\'s a "test" $HOME', "EGGO_B": "x y"}
    res = anyuser.run('printf "%s|%s" "$EGGO_A" "$EGGO_B"', env=env)
    assert res.stdout == 'it\'s a "test" $HOME|x y'


def test_stdin_reaches_the_command(anyuser: SSHRemote) -> None:
    data = os.urandom(3 * 1024 * 1024)
    res = anyuser.run("sha256sum", stdin=data)
    import hashlib

    assert res.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_check_raises_command_failed(anyuser: SSHRemote) -> None:
    with pytest.raises(CommandFailed) as info:
        anyuser.run("echo boom >&2; exit 3")
    assert info.value.rc == 3 and "boom" in info.value.stderr_tail
    assert anyuser.run("exit 4", check=False).rc == 4


def test_sudo_without_password_rule_is_a_clear_error(lab: Lab) -> None:
    with lab.connect("eggopw") as r, pytest.raises(SudoError) as info:
        r.run("true", check=False)
    assert "no NOPASSWD rule" in str(info.value)


def test_wrong_sudo_password_is_refused_quickly(lab: Lab) -> None:
    with lab.connect("eggopw", sudo_password="wrong-password") as r:
        start = time.monotonic()
        with pytest.raises(SudoError) as info:
            r.run("true")
        assert "rejected" in str(info.value)
        assert "wrong-password" not in str(info.value)
        assert time.monotonic() - start < 15


def test_sudo_password_not_in_ps_logs_or_errors(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with lab.connect("eggopw", sudo_password=SUDO_PASSWORD) as r, lab.connect("root") as watcher:
        box: dict[str, object] = {}
        t = threading.Thread(target=lambda: box.update(res=r.run("sleep 3; id -u")))
        t.start()
        time.sleep(1.5)
        scan = watcher.run(
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done",
            check=False,
        )
        t.join(20)
        assert "sleep 3" in scan.stdout  # we did look while it ran
        assert SUDO_PASSWORD not in scan.stdout
        assert box["res"].stdout == "0\n"  # type: ignore[attr-defined]
        with pytest.raises(CommandFailed) as info:
            r.run("echo nope >&2; exit 1")
        assert SUDO_PASSWORD not in str(info.value)
        assert SUDO_PASSWORD not in repr(r)
    assert caplog.records
    assert all(SUDO_PASSWORD not in rec.getMessage() for rec in caplog.records)


def test_password_not_written_when_sudo_does_not_ask(lab: Lab) -> None:
    """eggo has NOPASSWD: a configured password must not reach the command's stdin."""
    with lab.connect("eggo", sudo_password=SUDO_PASSWORD) as r:
        res = r.run("cat")
    assert res.stdout == ""


def test_stdin_after_sudo_password(lab: Lab) -> None:
    with lab.connect("eggopw", sudo_password=SUDO_PASSWORD) as r:
        assert r.run("cat", stdin=b"payload\n").stdout == "payload\n"


# -- files -------------------------------------------------------------------------------------


def test_put_is_idempotent_and_mode_change_alone_is_a_change(anyuser: SSHRemote, root: SSHRemote) -> None:
    dest = f"/tmp/eggo-e2e-{anyuser.username}/sub/dir/file.conf"
    root.run(["rm", "-rf", f"/tmp/eggo-e2e-{anyuser.username}"])
    first = anyuser.put(dest, b"hello\n", mode=0o640, owner="root", group="root")
    assert first.changed and first.action == "write" and first.old_sha256 is None
    again = anyuser.put(dest, b"hello\n", mode=0o640)
    assert not again.changed and again.action == "none" and again.old_sha256 == first.new_sha256
    chmod = anyuser.put(dest, b"hello\n", mode=0o600)
    assert chmod.changed and chmod.action == "attrs"
    assert root.run(["stat", "-c", "%a:%U:%G", dest]).stdout.strip() == "600:root:root"
    chown = anyuser.put(dest, b"hello\n", mode=0o600, owner="nobody", group="nogroup")
    assert chown.changed and chown.action == "attrs"
    dry = anyuser.put(dest, b"bye\n", mode=0o600, owner="nobody", group="nogroup", dry_run=True)
    assert dry.changed and dry.action == "write"
    assert anyuser.get(dest) == b"hello\n"
    assert anyuser.put(dest, b"bye\n", mode=0o600, owner="nobody", group="nogroup").changed
    assert anyuser.get(dest) == b"bye\n"
    assert anyuser.read_if_exists(dest + ".missing") is None
    leftovers = root.run("ls -a /tmp /home/eggo /home/eggopw " + os.path.dirname(dest), check=False)
    assert ".eggo-put-" not in leftovers.stdout and "eggo-tmp" not in leftovers.stdout


def test_put_streams_large_src(anyuser: SSHRemote, root: SSHRemote, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(20):
            fh.write(os.urandom(1024 * 1024))
    dest = f"/tmp/eggo-e2e-big-{anyuser.username}.bin"
    res = anyuser.put(dest, src=src, mode=0o600)
    assert res.changed and not res.diff_allowed
    remote_sum = root.run(["sha256sum", dest]).stdout.split()[0]
    assert remote_sum == res.new_sha256
    assert not anyuser.put(dest, src=src, mode=0o600).changed
    root.run(["rm", "-f", dest])


def test_get_reads_root_only_file(anyuser: SSHRemote) -> None:
    assert anyuser.get("/etc/shadow").startswith(b"root:")


def test_interrupted_upload_leaves_destination_intact(anyuser: SSHRemote, root: SSHRemote) -> None:
    dest = f"/tmp/eggo-e2e-atomic-{anyuser.username}"
    root.put(dest, b"old content\n")

    class Exploding(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            if self.tell() > 256 * 1024:
                raise OSError("link dropped")
            return super().read(size)

    from eggo_nornir.remote import put as putlib

    real_open = putlib.open_local
    putlib.open_local = lambda content, src: Exploding(content or b"")  # type: ignore[assignment]
    try:
        with pytest.raises(Exception, match="link dropped"):
            anyuser.put(dest, os.urandom(1024 * 1024))
    finally:
        putlib.open_local = real_open  # type: ignore[assignment]
    assert root.get(dest) == b"old content\n"
    leftovers = root.run("ls -a /tmp /home/eggo /home/eggopw", check=False).stdout
    assert ".eggo-put-" not in leftovers and "eggo-tmp" not in leftovers
    root.run(["rm", "-f", dest])


# -- host keys and algorithms --------------------------------------------------------------------


def test_host_key_tofu_verify_change_override(lab: Lab) -> None:
    tmp = lab.tmp / "tofu"
    tmp.mkdir()
    key1 = _keygen(tmp / "hk1")
    key2 = _keygen(tmp / "hk2")
    known = tmp / "known_hosts"
    port = _free_port()
    node = lab.node("root", port=port)

    sshd = start_sshd(tmp / "a", port=port, host_key=key1, user_key=lab.user_key)
    try:
        with SSHRemote.connect(node, known_hosts=known) as r:  # first use: recorded
            r.run("true")
        recorded = KnownHosts(known).lookup(host_id("127.0.0.1", port))
        assert list(recorded) == ["ssh-ed25519"]
        with SSHRemote.connect(node, known_hosts=known) as r:  # verified
            r.run("true")
    finally:
        sshd.stop()

    sshd = start_sshd(tmp / "b", port=port, host_key=key2, user_key=lab.user_key)
    try:
        with pytest.raises(HostKeyChanged) as info:
            SSHRemote.connect(node, known_hosts=known)
        msg = str(info.value)
        old_fp = info.value.old_fingerprint
        new_fp = info.value.new_fingerprint
        assert node.name in msg and old_fp in msg and new_fp in msg and old_fp != new_fp
        assert "--accept-new-host-keys" in msg and "trust_new_host_keys=True" in msg
        fp1 = subprocess.run(["ssh-keygen", "-lf", str(key1)], capture_output=True, text=True).stdout
        assert old_fp.split()[1] in fp1  # the same SHA256 form ssh-keygen prints
        with SSHRemote.connect(node, known_hosts=known, trust_new_host_keys=True) as r:
            r.run("true")
        with SSHRemote.connect(node, known_hosts=known) as r:  # the new key is now the recorded one
            r.run("true")
    finally:
        sshd.stop()


def test_negotiated_algorithms_exclude_terrapin_modes(root: SSHRemote) -> None:
    t = root.client.get_transport()
    assert t is not None
    negotiated = [t.local_cipher, t.remote_cipher, t.local_mac, t.remote_mac]
    assert all(n for n in negotiated)
    assert not any("chacha20" in n or n.endswith("-etm@openssh.com") for n in negotiated)
    # Our sshd offers both; without our exclusions paramiko would have picked an -etm MAC?
    # Not necessarily (paramiko prefers plain hmac-sha2-256), so prove the exclusion below.


def test_server_offering_only_etm_or_chacha_is_refused(lab: Lab) -> None:
    for name, line in (
        ("etm", "MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"),
        ("chacha", "Ciphers chacha20-poly1305@openssh.com"),
    ):
        port = _free_port()
        sshd = start_sshd(
            lab.tmp / f"algo-{name}",
            port=port,
            host_key=lab.tmp / "hostkey",
            user_key=lab.user_key,
            extra_config=line,
        )
        try:
            with pytest.raises(Unreachable):
                SSHRemote.connect(lab.node("root", port=port), known_hosts=lab.tmp / f"kh-{name}")
            if name == "etm":
                # Plain paramiko (no exclusions) does connect with -etm here: the test is meaningful.
                client = paramiko.SSHClient()
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
                client.connect(
                    "127.0.0.1",
                    port=port,
                    username="root",
                    key_filename=str(lab.user_key),
                    look_for_keys=False,
                    allow_agent=False,
                )
                t = client.get_transport()
                assert t is not None and t.remote_mac.endswith("-etm@openssh.com")
                client.close()
        finally:
            sshd.stop()


def test_password_login_and_auth_failure_message(lab: Lab) -> None:
    node = lab.node("eggopw", private_key_path=None, password=SUDO_PASSWORD)
    with SSHRemote.connect(node, known_hosts=lab.tmp / "known_hosts") as r:
        assert r.run("id -u").stdout == "0\n"  # sudo password defaults to the login password
    bad = lab.node("eggopw", private_key_path=None, password="not-the-password")
    with pytest.raises(Unreachable) as info:
        SSHRemote.connect(bad, known_hosts=lab.tmp / "known_hosts")
    assert "authentication failed" in str(info.value)
    assert "not-the-password" not in str(info.value)


# -- through Nornir ------------------------------------------------------------------------------


def test_remote_for_through_nornir_with_threaded_runner(lab: Lab, tmp_path: Path) -> None:
    """Three hosts (root, eggo, eggopw) sharing one defaults extras dict, in parallel."""
    from nornir import InitNornir
    from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
    from nornir.core.plugins.inventory import InventoryPluginRegister
    from nornir.core.task import Result, Task

    from eggo_nornir.remote.nornir_plugin import remote_for, remote_stats

    shared = {"key_filename": str(lab.user_key), "timeout": 10}
    defaults = Defaults(connection_options={"paramiko": ConnectionOptions(extras=shared)})
    hosts = Hosts()
    for user in ("root", "eggo", "eggopw"):
        data = {"eggo_sudo_password": SUDO_PASSWORD} if user == "eggopw" else {}
        hosts[f"h-{user}"] = Host(
            name=f"h-{user}",
            hostname="127.0.0.1",
            port=lab.sshd.port,
            username=user,
            data=data,
            defaults=defaults,
            connection_options={
                "paramiko": ConnectionOptions(
                    extras={**shared, "eggo_known_hosts": str(tmp_path / "known_hosts")}
                )
            },
        )
    inventory = Inventory(hosts=hosts, groups=Groups(), defaults=defaults)

    class Inv:
        def __init__(self, **_: object) -> None:
            pass

        def load(self) -> Inventory:
            return inventory

    InventoryPluginRegister.register("EggoRemoteE2EInventory", Inv)
    nr = InitNornir(
        inventory={"plugin": "EggoRemoteE2EInventory"},
        runner={"plugin": "threaded", "options": {"num_workers": 3}},
        logging={"enabled": False},
    )

    def task(task: Task) -> Result:
        r = remote_for(task)
        put = r.put(f"/tmp/eggo-nr-{task.host.name}", b"x\n", mode=0o600)
        uid = r.run("id -u").stdout.strip()
        return Result(host=task.host, result=uid, changed=put.changed)

    try:
        first = nr.run(task=task)
        assert not first.failed, {h: str(r.exception) for h, r in first.items()}
        assert {h: r.result for h, r in first.items()} == {h: "0" for h in hosts}
        assert all(r.changed for r in first.values())
        second = nr.run(task=task)
        assert not any(r.changed for r in second.values())
        stats = remote_stats(nr)
        assert set(stats) == set(hosts) and all(s["commands"] >= 5 for s in stats.values())
        assert shared == {"key_filename": str(lab.user_key), "timeout": 10}
        assert len((tmp_path / "known_hosts").read_text().splitlines()) == 1
    finally:
        nr.close_connections()
        with lab.connect("root") as root:
            root.run("rm -f /tmp/eggo-nr-h-*")


# -- on the shared testbed (real systemd machines; skipped when it cannot boot) -------------------


@pytest.fixture(scope="module")
def tb_remotes(testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SSHRemote]]:  # type: ignore[no-untyped-def]
    """root, eggo (NOPASSWD) and eggopw (sudo password) on the testbed's first machine."""
    m = testbed.machines[0]
    known = tmp_path_factory.mktemp("tb") / "known_hosts"
    remotes: dict[str, SSHRemote] = {}
    try:
        for user in ("root", "eggo", "eggopw"):
            node = Node(
                name=m.name,
                ip=m.ip,
                username=user,
                private_key_path=str(testbed.key_path),
                sudo_password=testbed.password() if user == "eggopw" else None,
            )
            remotes[user] = SSHRemote.connect(node, known_hosts=known)
        yield remotes
    finally:
        for r in remotes.values():
            r.close()


@pytest.mark.parametrize("user", ["eggo", "eggopw"])
def test_testbed_sudo_env_stderr_and_put(tb_remotes: dict[str, SSHRemote], user: str) -> None:
    r, root = tb_remotes[user], tb_remotes["root"]
    assert r.run("id -u").stdout == "0\n"
    assert r.run(["id", "-un"], sudo=False).stdout.strip() == user
    assert r.run('printf %s "$K"', env={"K": "a 'b'"}).stdout == "a 'b'"
    four_mib = 4 * 1024 * 1024
    big = _in_thread(lambda: r.run(f"head -c {four_mib} /dev/zero >&2; echo done", timeout=60), limit=90)
    assert len(big.stderr) == four_mib and big.stdout == "done\n"
    dest = f"/etc/eggo-remote-test/{user}.conf"
    root.run(["rm", "-rf", "/etc/eggo-remote-test"])
    assert r.put(dest, b"a=1\n", mode=0o640).changed
    assert not r.put(dest, b"a=1\n", mode=0o640).changed
    mode_only = r.put(dest, b"a=1\n", mode=0o600)
    assert mode_only.changed and mode_only.action == "attrs"
    assert root.run(["stat", "-c", "%a:%U", dest]).stdout == "600:root\n"
    assert r.get("/etc/shadow").startswith(b"root:")
    root.run(["rm", "-rf", "/etc/eggo-remote-test"])


def test_testbed_sudo_password_never_visible(
    testbed,  # type: ignore[no-untyped-def]
    tb_remotes: dict[str, SSHRemote],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = testbed.password()
    r, root = tb_remotes["eggopw"], tb_remotes["root"]
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(res=r.run("sleep 3; echo ok")))
    t.start()
    time.sleep(1.5)
    scan = root.run(
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done", check=False
    )
    t.join(20)
    assert "sleep 3" in scan.stdout and password not in scan.stdout
    assert box["res"].stdout == "ok\n"  # type: ignore[attr-defined]
    with pytest.raises(CommandFailed) as info:
        r.run("exit 7")
    assert password not in str(info.value)
    assert all(password not in rec.getMessage() for rec in caplog.records)


def test_testbed_host_key_matches_what_the_testbed_recorded(  # type: ignore[no-untyped-def]
    testbed, tb_remotes: dict[str, SSHRemote]
) -> None:
    transport = tb_remotes["root"].client.get_transport()
    assert transport is not None
    ours = transport.get_remote_server_key()
    theirs = paramiko.HostKeys(str(testbed.known_hosts))
    m = testbed.machines[0]
    recorded = theirs.lookup(m.ip) or theirs.lookup(m.name)
    assert recorded is not None and ours in recorded.values()
