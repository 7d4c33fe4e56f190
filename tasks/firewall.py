"""Open the ports a node's roles need in firewalld, when (and only when) firewalld runs.

Why these ports and not upstream eggo's: 10251/10252 are the insecure
scheduler/controller-manager ports removed from Kubernetes years ago; the secure ones are
10259/10257. Upstream also never opened the NodePort range or etcd's client/peer pair as
a range. Ports already covered, in the runtime or the permanent config, are compared as
port ranges, so `2379/tcp 2380/tcp` satisfies `2379-2380/tcp` and nothing is re-added.

Why `--permanent` plus the same runtime add, not `--reload` or `--runtime-to-permanent`:
a reload throws away runtime-only rules other tools added, and runtime-to-permanent
would persist them behind the administrator's back. Adding our ports to both
configurations changes nothing else.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render.roles import COREDNS_PORTS, ROLE_PORTS
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to

Range = tuple[int, int, str]


def ports_for(cfg: ClusterConfig, node: Node) -> list[str]:
    """firewalld port specs (`6443/tcp`, `2379-2380/tcp`) the node's roles need, in a stable order."""
    out: list[str] = []
    for role in node.roles:
        out += ROLE_PORTS.get(role, ())
        if role == "loadbalance" and cfg.loadbalance is not None:
            out.append(f"{cfg.loadbalance.bind_port}/tcp")
        if role == "master" and cfg.service.dns.corednstype == "binary":
            out += COREDNS_PORTS
        out += [f"{p.port}/{p.protocol}" for p in cfg.open_ports.get(role, ())]
    return list(dict.fromkeys(out))


def parse_spec(spec: str) -> Range | None:
    """`80/tcp` -> (80, 80, 'tcp'); `1-3/udp` -> (1, 3, 'udp'); None for anything else."""
    port, sep, proto = spec.strip().partition("/")
    if not sep:
        return None
    lo, _, hi = port.partition("-")
    try:
        return int(lo), int(hi or lo), proto.lower()
    except ValueError:
        return None


def covered(want: str, have: Iterable[str]) -> bool:
    """Is every port of `want` in the union of the `have` specs (same protocol)?"""
    w = parse_spec(want)
    if w is None:
        return False
    ranges = sorted(r for r in (parse_spec(h) for h in have) if r is not None and r[2] == w[2])
    need = w[0]
    for lo, hi, _proto in ranges:
        if lo <= need <= hi:
            need = hi + 1
        if need > w[1]:
            return True
    return need > w[1]


def missing(want: Iterable[str], have: Iterable[str]) -> list[str]:
    have = list(have)
    return [w for w in want if not covered(w, have)]


def probe_script(zone: str | None) -> str:
    z = f" --zone={shlex.quote(zone)}" if zone else ""
    return (
        'a=$(systemctl is-active firewalld 2>/dev/null); echo "active=$a"; '
        'if [ "$a" = active ]; then '
        f'echo "runtime=$(firewall-cmd{z} --list-ports)"; '
        f'echo "permanent=$(firewall-cmd --permanent{z} --list-ports)"; fi'
    )


def action_script(runtime: list[str], permanent: list[str], zone: str | None) -> str:
    z = f" --zone={shlex.quote(zone)}" if zone else ""
    steps = []
    if permanent:
        steps.append(
            f"firewall-cmd -q --permanent{z} " + " ".join(f"--add-port={shlex.quote(p)}" for p in permanent)
        )
    if runtime:
        steps.append(f"firewall-cmd -q{z} " + " ".join(f"--add-port={shlex.quote(p)}" for p in runtime))
    return " && ".join(steps)


@applies_to("node")
def open_firewall(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Add the node's missing ports to firewalld's runtime and permanent config (default zone,
    or `ctx.options.firewall_zone`).

    Result: `{"active": bool, "ports": [...wanted], "added_runtime": [...], "added_permanent": [...]}`.

    Returns:
        Result: `changed` when ports were (or would be) opened; `result` {active, ports, ...}.
    """
    node = ctx.node(task.host.name)
    zone = ctx.options.firewall_zone
    zone = str(zone) if zone else None
    want = ports_for(ctx.cfg, node)
    remote = remote_for(task)
    facts = dict(
        line.split("=", 1)
        for line in remote.run(probe_script(zone), timeout=60).stdout.splitlines()
        if "=" in line
    )
    if facts.get("active") != "active":
        return Result(
            host=task.host,
            changed=False,
            result={"active": False, "ports": want, "note": "firewalld is not running; nothing to open"},
        )
    add_runtime = missing(want, facts.get("runtime", "").split())
    add_permanent = missing(want, facts.get("permanent", "").split())
    out = {"active": True, "ports": want, "added_runtime": add_runtime, "added_permanent": add_permanent}
    if not add_runtime and not add_permanent:
        return Result(host=task.host, changed=False, result=out)
    if task.is_dry_run(dry_run):
        diff = "".join(f"would open {p} (runtime)\n" for p in add_runtime) + "".join(
            f"would open {p} (permanent)\n" for p in add_permanent
        )
        return Result(host=task.host, changed=True, diff=diff, result=out)
    remote.run(action_script(add_runtime, add_permanent, zone), timeout=120)
    return Result(host=task.host, changed=True, result=out)
