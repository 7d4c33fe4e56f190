"""A testbed's state as `testbed up` would save it, without booting anything.

Why shared: the deploy.yaml writer, the bundle-layout dialect and the state file are all
tested against the same picture of a testbed (names, roles from `machine.plan_roles`, IPs
from the subnet), so one builder keeps them describing the same machines.
"""

from __future__ import annotations

from pathlib import Path

from eggo_nornir.testbed import machine, network
from eggo_nornir.testbed import state as st


def make_state(tmp: Path, count: int = 6) -> st.TestbedState:
    """`count` machines of testbed `eggotb` on 10.213.0.0/24, with `plan_roles`' roles."""
    net = network.Subnet.parse("10.213.0.0/24")
    s = st.TestbedState(
        name="eggotb",
        out_dir=str(tmp),
        bridge="eggotbbr0",
        subnet="10.213.0.0/24",
        gateway=net.gateway,
        arch="amd64",
        rootfs="/cache/rootfs/bookworm-amd64",
    )
    for i, (host, roles) in enumerate(machine.plan_roles(count), start=1):
        s.machines.append(
            st.MachineState(
                host, i, net.host_ip(i), roles, f"eggotb-{host}", f"ve-eggotb-{i}", str(tmp / host)
            )
        )
    return s
