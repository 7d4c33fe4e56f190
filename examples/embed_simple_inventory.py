"""Someone else's Nornir project, with its own SimpleInventory, using eggo-nornir's tasks.

Why this example exists: people who already automate with Nornir keep their own inventory
(hosts.yaml, groups.yaml, defaults.yaml), their own group names and their own tasks. They
should be able to pick single eggo tasks off the shelf without adopting our inventory or
our CLI. This script plays that project. It

1. writes its own SimpleInventory (into a temp dir, or `--inventory-dir`) from the
   machines' IPs, SSH user and key, taken from a deploy.yaml or a testbed dir;
2. renders a small file per host with its own template and ships it with our
   `push_files` task (compare, write only what differs, atomic), twice: the second run
   reports no change;
3. runs our `etcd_health` task on its own `etcd` group;
4. adds our `EggoProgress` processor to its runs (progress on stderr, plain lines
   when stderr is not a terminal).

Run it against a testbed whose cluster is deployed (the etcd check needs a running etcd):

    python -m eggo_nornir testbed up --name demo --subnet 10.213.60.0/24 --out /tmp/demo --machines 3
    python -m eggo_nornir deploy /tmp/demo/deploy.yaml
    python examples/embed_simple_inventory.py /tmp/demo

The pushed file, /etc/eggo-embedding-example.conf, is recorded like every file eggo
writes, so `eggo-nornir cleanup` removes it again. Exit code: 0 when every host
succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Template
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.filter import F
from nornir.core.task import AggregatedResult, Result, Task

from eggo_nornir import state
from eggo_nornir.config import load_config
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine.progress import EggoProgress
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks import DeployContext, etcd_health, push_files

EXAMPLE_FILE = "/etc/eggo-embedding-example.conf"
# The project's own template: our tasks ship bytes, whoever renders them.
EXAMPLE_TEMPLATE = Template(
    "# written by examples/embed_simple_inventory.py through eggo_nornir.tasks.files.push_files\n"
    "host = {{ host.name }}\n"
    "address = {{ host.hostname }}\n"
    "site = {{ host.data.site }}\n"
)


# ---- the project's own inventory ---------------------------------------------------------
def resolve_deploy_yaml(target: Path) -> Path:
    """A testbed dir holds deploy.yaml; anything else is taken as the deploy.yaml itself."""
    return target / "deploy.yaml" if target.is_dir() else target


def write_simple_inventory(cfg: ClusterConfig, out_dir: Path, known_hosts: Path | None) -> Path:
    """Write hosts.yaml, groups.yaml and defaults.yaml in SimpleInventory's format.

    Host names must be the deploy.yaml's node names, because eggo's tasks look a host up
    in their `DeployContext` by its Nornir name. Group names are the project's own
    (`etcd`, `k8s`), not EggoInventory's. The SSH settings go under each host's own
    `paramiko` connection options, which is where `remote_for` looks in any inventory
    (it does not inherit them from groups or defaults); the `eggo_known_hosts` extra
    pins host keys in that file instead of trusting on first use.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    extras: dict[str, Any] = {"look_for_keys": False, "allow_agent": False, "timeout": 30}
    key = cfg.nodes[0].private_key_path
    if key:
        extras["key_filename"] = str(Path(key).expanduser())
    if known_hosts is not None:
        extras["eggo_known_hosts"] = str(known_hosts)
    hosts: dict[str, Any] = {}
    for node in cfg.nodes:
        hosts[node.name] = {
            "hostname": node.ip,
            "port": node.port,
            "username": node.username,
            "groups": ["k8s", *(["etcd"] if node.is_etcd else [])],
            "data": {"site": "lab", "roles": list(node.roles)},
            # per host, as remote_for reads a host's own `paramiko` options (not inherited ones)
            "connection_options": {"paramiko": {"extras": dict(extras)}},
        }
    groups = {"k8s": {"data": {"purpose": "kubernetes nodes"}}, "etcd": {"data": {"purpose": "etcd"}}}
    defaults = {"platform": "linux"}
    for name, doc in (("hosts.yaml", hosts), ("groups.yaml", groups), ("defaults.yaml", defaults)):
        (out_dir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return out_dir


def init_nornir(inventory_dir: Path) -> Nornir:
    """The project's usual InitNornir: SimpleInventory, threaded runner, no nornir.log."""
    return InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": 10}},
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(inventory_dir / "hosts.yaml"),
                "group_file": str(inventory_dir / "groups.yaml"),
                "defaults_file": str(inventory_dir / "defaults.yaml"),
            },
        },
        logging={"enabled": False},
    )


# ---- the project's own task, built on ours -------------------------------------------------
def push_example_file(task: Task) -> Result:
    """Render this host's file from the project's template and ship it with `push_files`."""
    content = EXAMPLE_TEMPLATE.render(host=task.host).encode()
    pushed = task.run(task=push_files, files=[HostFile(path=EXAMPLE_FILE, content=content, mode=0o644)])
    return Result(host=task.host, changed=pushed[0].changed, result=pushed[0].result)


# ---- readable output, without nornir-utils (its import colours every later print) ---------
def show(title: str, agg: AggregatedResult, describe: Any) -> None:
    """One line per host: ok/FAILED, changed or not, and what `describe(result)` says."""
    print(f"== {title}")
    for name in sorted(agg):
        multi = agg[name]
        if multi.failed:
            errors = [r.exception or r.result for r in multi if r.failed]
            first = str(errors[-1]).strip().splitlines()[0] if errors else "failed"
            print(f"  {name}: FAILED: {first}")
            continue
        changed = "changed" if multi[0].changed else "unchanged"
        print(f"  {name}: ok, {changed}: {describe(multi[0].result)}")


def describe_push(result: dict[str, Any]) -> str:
    return f"wrote {', '.join(result['written'])}" if result["written"] else "already up to date"


def describe_health(result: dict[str, Any]) -> str:
    members = ", ".join(m["name"] or m["id"] for m in result["members"])
    return f"healthy endpoints {', '.join(result['healthy'])}; members {members}; leader {result['leader']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a testbed dir (holding deploy.yaml) or a deploy.yaml")
    parser.add_argument(
        "--inventory-dir", type=Path, help="write the SimpleInventory here (default: a temp dir)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="the cluster's eggo state dir, for the DeployContext (default ~/.eggo/clusters/<cluster-id>)",
    )
    parser.add_argument(
        "--known-hosts", type=Path, help="known_hosts to pin (default: the testbed's, if any)"
    )
    args = parser.parse_args(argv)

    deploy_yaml = resolve_deploy_yaml(args.target)
    cfg = load_config(deploy_yaml)
    known_hosts = args.known_hosts
    if known_hosts is None and (deploy_yaml.parent / "known_hosts").is_file():
        known_hosts = deploy_yaml.parent / "known_hosts"

    with tempfile.TemporaryDirectory(prefix="embed-inventory-") as tmp:
        inventory_dir = write_simple_inventory(cfg, args.inventory_dir or Path(tmp), known_hosts)
        print(f"SimpleInventory written to {inventory_dir}")
        nr = init_nornir(inventory_dir)
        progress = nr.with_processors([EggoProgress()])
        try:
            ok = True
            for attempt in ("first", "second"):
                pushed = progress.run(task=push_example_file, name=f"push ({attempt} run)")
                show(f"push_files, {attempt} run", pushed, describe_push)
                ok = ok and not pushed.failed

            # etcd_health needs a DeployContext: the config plus the rendered files. Building it
            # on the cluster's own state dir reuses its PKI; any other dir gets a fresh PKI, which
            # is fine for this read-only task. (Its minimal path: the task only reads ctx.cfg and
            # ctx.options (defaults), so `DeployContext(cfg, Rendered({}, cfg.cluster_id), state_dir)`
            # would do without rendering.)
            state_dir = args.state_dir or state.cluster_dir(cfg.cluster_id)
            ctx = DeployContext.build(cfg, state_dir, etcd_health_timeout=60)
            members = progress.filter(F(groups__contains="etcd"))
            health = members.run(task=etcd_health, ctx=ctx, name="etcd health")
            show("etcd_health", health, describe_health)
            ok = ok and not health.failed
        finally:
            nr.close_connections(on_good=True, on_failed=True)
    print("all hosts ok" if ok else "some hosts FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
