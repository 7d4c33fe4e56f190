"""`testbed up`, `down` and `status`, plus `stop_machine`/`start_machine` for one machine.

Why this order in `up`: every resource is recorded in the state file right after it is
created, and any failure runs `down`, so a half-built testbed never lingers. Machines
are prepared one by one (milliseconds each) but booted all at once and waited for in
parallel, so boot time is that of the slowest machine, not the sum.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eggo_nornir.testbed import (
    credentials,
    deployyaml,
    dnfrepo,
    emulation,
    hostlimits,
    machine,
    network,
    paths,
    rootfs,
    spec,
    ssh,
)
from eggo_nornir.testbed import state as st
from eggo_nornir.testbed.proc import TestbedError

log = logging.getLogger(__name__)

DEFAULT_MACHINES = 6
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_NAME = "eggotb"


def preflight() -> None:
    """Name what is missing up front instead of failing halfway through."""
    if os.geteuid() != 0:
        raise TestbedError("testbed: must run as root (it creates a bridge, netns and mounts)")
    missing = [t for t in ("systemd-nspawn", "ip", "mount", "openssl", "useradd") if shutil.which(t) is None]
    if missing:
        raise TestbedError(f"testbed: missing tools: {', '.join(missing)} (run .ci/testbed-deps.sh)")


def default_bundle(arch: str, family: str = "deb") -> Path:
    return paths.default_bundle_dir() / spec.bundle_name(arch, family=family)


def machine_kinds(
    plan: list[tuple[str, list[str]]], arm64: Sequence[str] = (), rpm: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """name -> (arch, package family) for every planned machine; unknown names are an error."""
    names = [host for host, _ in plan]
    unknown = sorted({n for n in (*arm64, *rpm) if n not in names})
    if unknown:
        raise TestbedError(
            f"testbed: no machine named {', '.join(unknown)} (this testbed has {', '.join(names)})"
        )
    return {n: ("arm64" if n in arm64 else "amd64", "rpm" if n in rpm else "deb") for n in names}


def up(
    out_dir: Path,
    *,
    name: str = DEFAULT_NAME,
    machines: int = DEFAULT_MACHINES,
    subnet: str = DEFAULT_SUBNET,
    bridge: str | None = None,
    arch: str = "amd64",
    boot_timeout: float = 180.0,
    bundle: Path | None = None,
    arm64: Sequence[str] = (),
    rpm: Sequence[str] = (),
    bundles: Mapping[str, Path] | None = None,
    lb: bool | None = None,
) -> st.TestbedState:
    """Create, boot and wait for the machines; write key, password, known_hosts, deploy.yaml, state.

    `arm64` and `rpm` name machines that boot from the arm64 rootfs (under qemu-user) or
    from the rpm rootfs (rpm and dnf, no dpkg or apt). `bundles` maps an arch to its
    bundle tarball (default: the cached bundle of the arch, in the family its machines use).
    `lb` forces a load-balancer machine in or out (see `machine.plan_roles`).
    """
    t0 = time.monotonic()
    preflight()
    network.validate_name(name)
    net = network.Subnet.parse(subnet)
    out_dir = out_dir.resolve()
    previous = st.load(out_dir)
    if previous is not None:
        if any(machine.is_our_nspawn(m.pid, m) for m in previous.machines):
            raise TestbedError(
                f"testbed: {previous.name!r} is already up in {out_dir}; run `testbed down` first"
            )
        log.info("cleaning up a stale testbed state in %s", out_dir)
        down(out_dir)
    plan = machine.plan_roles(machines, lb)
    for i in range(1, len(plan) + 1):
        net.host_ip(i)  # fail now if the subnet is too small
    kinds = machine_kinds(plan, arm64, rpm)
    if not arm64 and not rpm:
        kinds = {n: (arch, "deb") for n in kinds}

    creds = credentials.ensure_credentials(out_dir)
    hostlimits.raise_limits()
    trees = {kind: rootfs.ensure_rootfs(kind[0], family=kind[1]) for kind in sorted(set(kinds.values()))}
    fs = trees.get((arch, "deb")) or next(iter(trees.values()))
    workarounds = emulation.prepare_host() if any(a == "arm64" for a, _ in kinds.values()) else {}
    t_rootfs = time.monotonic() - t0

    state = st.TestbedState(
        name=name,
        out_dir=str(out_dir),
        bridge=bridge or network.bridge_name(name),
        subnet=str(net.network),
        gateway=net.gateway,
        arch=arch,
        rootfs=str(fs.path),
    )
    for i, (host, roles) in enumerate(plan, start=1):
        state.machines.append(
            st.MachineState(
                name=host,
                index=i,
                ip=net.host_ip(i),
                roles=roles,
                netns=network.netns_name(name, host),
                veth=network.veth_name(name, i),
                machine_dir=str(out_dir / "machines" / host),
                arch=kinds[host][0],
                family=kinds[host][1],
                rootfs=str(trees[kinds[host]].path),
            )
        )
    st.save(state)
    try:
        rpm_machines = any(m.family == "rpm" for m in state.machines)
        state.repo_url = dnfrepo.base_url(net) if rpm_machines else ""
        _create(state, creds, net, workarounds)
        if rpm_machines:
            state.repo_pid = dnfrepo.serve(state, net)
            st.save(state)
        t_prepared = time.monotonic()
        for m in state.machines:
            m.pid = machine.boot(m, name)
        st.save(state)
        _wait_ready(state, creds, boot_timeout)
        t_ready = time.monotonic()
        state.timings = {
            "rootfs_seconds": round(t_rootfs, 2),
            "rootfs_cached": 1.0 if all(t.cached for t in trees.values()) else 0.0,
            "prepare_seconds": round(t_prepared - t0 - t_rootfs, 2),
            "boot_seconds": round(t_ready - t_prepared, 2),
            "total_seconds": round(t_ready - t0, 2),
        }
        deployyaml.write(state, creds.key_path, _bundles(state, bundle, bundles))
        st.save(state)
    except BaseException:
        log.error("testbed up failed; tearing down what was created")
        _keep_console_logs(state)
        try:
            down(out_dir)
        except TestbedError as exc:
            log.error("teardown after failed up also failed: %s", exc)
        raise
    return state


def _bundles(
    state: st.TestbedState, bundle: Path | None, bundles: Mapping[str, Path] | None
) -> dict[str, Path]:
    """arch -> bundle for deploy.yaml: given ones first, else the cached one in the machines' family."""
    out: dict[str, Path] = dict(bundles or {})
    if bundle is not None:
        out.setdefault(state.arch, bundle)
    for m in state.machines:
        out.setdefault(m.arch, default_bundle(m.arch, m.family))
    return out


def _keep_console_logs(state: st.TestbedState) -> None:
    """Copy each machine's console log out of machines/ (which `down` removes) for diagnosis."""
    dest = Path(state.out_dir) / "failed-up-logs"
    for m in state.machines:
        if m.console_log.is_file():
            dest.mkdir(exist_ok=True)
            shutil.copyfile(m.console_log, dest / f"{m.name}.console.log")


def _create(
    state: st.TestbedState,
    creds: credentials.Credentials,
    net: network.Subnet,
    workarounds: Mapping[str, Path],
) -> None:
    network.create_bridge(state.bridge, net, state.name)
    state.bridge_created = True
    st.save(state)
    password_hash = credentials.hash_password(creds.password())
    known_hosts = []
    for m in state.machines:
        network.create_machine_net(m.netns, m.veth, state.bridge, net.cidr(m.ip))
        st.save(state)
        machine.mount_root(Path(m.rootfs or state.rootfs), m)
        host_pub = machine.prepare_root(m, creds, password_hash)
        if m.arch == "arm64":
            emulation.install_into(m.root, dict(workarounds))
        if m.family == "rpm":
            dnfrepo.configure_machine(m.root, state.repo_url, m.arch)
        known_hosts.append(f"{m.ip} {' '.join(host_pub.split()[:2])}")
    kh = Path(state.out_dir) / credentials.KNOWN_HOSTS_FILE
    kh.write_text("\n".join(known_hosts) + "\n")


def _wait_ready(
    state: st.TestbedState,
    creds: credentials.Credentials,
    timeout: float,
    machines: list[st.MachineState] | None = None,
) -> None:
    kh = Path(state.out_dir) / credentials.KNOWN_HOSTS_FILE
    machines = state.machines if machines is None else machines

    def one(m: st.MachineState) -> tuple[str, float]:
        try:
            result = ssh.wait_system_running(m.ip, creds.key_path, kh, timeout)
        except TimeoutError as exc:
            alive = machine.is_our_nspawn(m.pid, m)
            tail = m.console_log.read_text(errors="replace").strip().splitlines()[-8:]
            raise TestbedError(
                f"machine {m.name}: boot wait failed ({exc}); nspawn {'running' if alive else 'exited'}; "
                f"console log (kept in failed-up-logs/ after teardown) ends with:\n" + "\n".join(tail)
            ) from exc
        m.leader_pid = machine.find_leader(m.pid or 0, m, timeout=2)
        return result

    with ThreadPoolExecutor(max_workers=max(1, len(machines))) as pool:
        results = list(pool.map(one, machines))
    bad = [
        f"{m.name}: {s}"
        for m, (s, _) in zip(machines, results, strict=True)
        if s not in ("running", "degraded")
    ]
    if bad:
        raise TestbedError("machines did not finish booting: " + "; ".join(bad))
    for m, (s, secs) in zip(machines, results, strict=True):
        log.info("%s %s after %.1fs", m.name, s, secs)


def down(out_dir: Path, timeout: float = 20.0) -> dict[str, Any]:
    """Stop every machine and remove every netns, veth, mount and the bridge that `up` recorded."""
    out_dir = out_dir.resolve()
    state = st.load(out_dir)
    if state is None:
        return {"status": "absent", "out_dir": str(out_dir)}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, len(state.machines))) as pool:
        futures = {m.name: pool.submit(machine.stop, m, timeout) for m in state.machines}
    stopped: dict[str, str] = {}
    for host, fut in futures.items():
        try:
            stopped[host] = fut.result()
        except TestbedError as exc:
            errors.append(str(exc))
    for m in state.machines:
        errors += machine.remove_cgroups(m.cgroups)
        machine.remove_propagate_dir(m, state.name)
        for step in (
            lambda m=m: machine.unmount_root(m),
            lambda m=m: network.delete_veth(m.veth),
            lambda m=m: network.delete_netns(m.netns),
        ):
            try:
                step()
            except TestbedError as exc:
                errors.append(str(exc))
    dnfrepo.stop(state.repo_pid)
    try:
        network.delete_bridge(state.bridge, state.name)
    except TestbedError as exc:
        errors.append(str(exc))
    machines_dir = out_dir / "machines"
    if not errors and machines_dir.is_dir():
        mounts = Path("/proc/mounts").read_text()
        if str(machines_dir) in mounts:
            errors.append(f"down: something is still mounted under {machines_dir}; not removing it")
        else:
            shutil.rmtree(machines_dir)
    if errors:
        raise TestbedError("testbed down incomplete:\n" + "\n".join(errors))
    st.state_path(out_dir).unlink(missing_ok=True)
    if not _any_nspawn_running():
        hostlimits.restore_limits()
    return {"status": "down", "out_dir": str(out_dir), "machines": stopped}


def _loaded(out_dir: Path) -> st.TestbedState:
    state = st.load(out_dir.resolve())
    if state is None:
        raise TestbedError(f"testbed: no testbed state in {out_dir}; run `testbed up` first")
    return state


def stop_machine(out_dir: Path, name: str, timeout: float = 10.0) -> str:
    """Power one machine off and keep everything else, so `start_machine` can boot it again.

    Why: the fault suites power a worker off in the middle of a deploy and bring it back
    for the re-run. Its root overlay (with whatever the deploy wrote), netns, veth and the
    bridge stay; only the nspawn process and the machine's cgroups go. `timeout` is the
    grace before SIGKILL; 0 pulls the plug (the machine's processes die at once, so its
    kernel-side sockets are reset instead of closed by sshd). Returns how it ended:
    "absent", "terminated" or "killed".
    """
    state = _loaded(out_dir)
    m = state.machine(name)
    how = machine.stop(m, timeout)
    problems = machine.remove_cgroups(m.cgroups)
    machine.remove_propagate_dir(m, state.name)
    m.pid = m.leader_pid = None
    st.save(state)
    if problems:
        raise TestbedError(f"machine {name} stopped ({how}) but its cgroups remain:\n" + "\n".join(problems))
    return how


def start_machine(out_dir: Path, name: str, boot_timeout: float = 120.0) -> float:
    """Boot one stopped machine again and wait until systemd reports running over SSH.

    Returns the seconds it took. Refuses a machine that is still running.
    """
    t0 = time.monotonic()
    out_dir = out_dir.resolve()
    state = _loaded(out_dir)
    m = state.machine(name)
    if machine.is_our_nspawn(m.pid, m):
        raise TestbedError(f"machine {name} is already running (nspawn pid {m.pid})")
    m.pid = machine.boot(m, state.name)
    st.save(state)
    _wait_ready(state, credentials.ensure_credentials(out_dir), boot_timeout, [m])
    st.save(state)
    return time.monotonic() - t0


def _any_nspawn_running() -> bool:
    """Whether any systemd-nspawn process is left on the host (another testbed still up)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "systemd-nspawn":
                return True
        except OSError:
            continue
    return False


def status(out_dir: Path, check_ssh: bool = True) -> dict[str, Any]:
    """What is running, from the state file plus live checks (process, netns, sshd, systemd state)."""
    out_dir = out_dir.resolve()
    state = st.load(out_dir)
    if state is None:
        return {"status": "absent", "out_dir": str(out_dir), "machines": []}
    key = out_dir / credentials.KEY_FILE
    kh = out_dir / credentials.KNOWN_HOSTS_FILE

    def one(m: st.MachineState) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": m.name,
            "ip": m.ip,
            "roles": m.roles,
            "arch": m.arch,
            "family": m.family,
            "pid": m.pid,
            "running": machine.is_our_nspawn(m.pid, m),
            "netns": network.netns_exists(m.netns),
            "ssh": ssh.port_open(m.ip, 22, timeout=1.0) if check_ssh else None,
            "system": None,
        }
        if check_ssh and info["ssh"]:
            try:
                info["system"] = ssh.run_as(
                    m.ip, "root", "systemctl is-system-running", key_path=key, known_hosts=kh
                ).stdout.strip()
            except Exception as exc:  # status must report, never crash
                info["system"] = f"error: {type(exc).__name__}"
        return info

    with ThreadPoolExecutor(max_workers=max(1, len(state.machines))) as pool:
        infos = list(pool.map(one, state.machines))
    all_up = bool(infos) and all(i["running"] for i in infos)
    return {
        "status": "up" if all_up else ("partial" if any(i["running"] for i in infos) else "stopped"),
        "name": state.name,
        "out_dir": str(out_dir),
        "bridge": state.bridge,
        "bridge_present": network.link_exists(state.bridge),
        "subnet": state.subnet,
        "deploy_yaml": str(out_dir / "deploy.yaml"),
        "private_key": str(key),
        "timings": state.timings,
        "machines": infos,
    }
