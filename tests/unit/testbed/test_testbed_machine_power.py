"""`lifecycle.stop_machine`/`start_machine`: one machine off and on again, the rest of the testbed kept.

The nspawn, cgroup and SSH steps are replaced by recorders; the e2e fault suite runs them for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eggo_nornir.testbed import lifecycle, machine
from eggo_nornir.testbed import state as st
from eggo_nornir.testbed.proc import TestbedError


def _testbed(tmp_path: Path) -> st.TestbedState:
    state = st.TestbedState(
        name="eggorb",
        out_dir=str(tmp_path),
        bridge="eggorbbr0",
        subnet="10.222.9.0/24",
        gateway="10.222.9.1",
        arch="amd64",
        rootfs="/nowhere",
    )
    for i, name in enumerate(("master1", "worker1"), start=1):
        state.machines.append(
            st.MachineState(
                name=name,
                index=i,
                ip=f"10.222.9.{10 + i}",
                roles=["worker"],
                netns=f"eggorb-{name}",
                veth=f"vrb{i}",
                machine_dir=str(tmp_path / name),
                pid=100 + i,
                leader_pid=200 + i,
                cgroups=[f"/sys/fs/cgroup/x/{name}"],
            )
        )
    st.save(state)
    return state


def test_stop_keeps_the_rest_and_forgets_the_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _testbed(tmp_path)
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        machine, "stop", lambda m, timeout: calls.append(("stop", (m.name, timeout))) or "killed"
    )
    monkeypatch.setattr(machine, "remove_cgroups", lambda dirs: calls.append(("cgroups", dirs)) or [])
    monkeypatch.setattr(machine, "remove_propagate_dir", lambda m, tb: calls.append(("propagate", m.name)))
    assert lifecycle.stop_machine(tmp_path, "worker1", timeout=0) == "killed"
    assert calls == [
        ("stop", ("worker1", 0)),
        ("cgroups", ["/sys/fs/cgroup/x/worker1"]),
        ("propagate", "worker1"),
    ]
    saved = st.load(tmp_path)
    assert saved is not None
    assert (saved.machine("worker1").pid, saved.machine("worker1").leader_pid) == (None, None)
    assert saved.machine("master1").pid == 101  # untouched


def test_start_boots_only_that_machine_and_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _testbed(tmp_path)
    state.machine("worker1").pid = None
    st.save(state)
    waited: list[list[str]] = []
    monkeypatch.setattr(machine, "is_our_nspawn", lambda pid, m: False)
    monkeypatch.setattr(machine, "boot", lambda m, tb: 4242)
    monkeypatch.setattr(
        lifecycle,
        "_wait_ready",
        lambda state, creds, timeout, machines: waited.append([m.name for m in machines]),
    )
    assert lifecycle.start_machine(tmp_path, "worker1") >= 0
    assert waited == [["worker1"]]
    saved = st.load(tmp_path)
    assert saved is not None and saved.machine("worker1").pid == 4242


def test_start_refuses_a_running_machine_and_both_need_a_testbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _testbed(tmp_path)
    monkeypatch.setattr(machine, "is_our_nspawn", lambda pid, m: True)
    with pytest.raises(TestbedError, match="worker1 is already running"):
        lifecycle.start_machine(tmp_path, "worker1")
    with pytest.raises(TestbedError, match="no testbed state"):
        lifecycle.stop_machine(tmp_path / "none", "worker1")
