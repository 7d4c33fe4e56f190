"""The `EggoInventory` plugin through `InitNornir` config alone, running a task of your own.

Why this example exists: a Nornir user who has a cluster's deploy.yaml should not need to
maintain a second inventory of the same machines. `EggoInventory` is registered by entry
point, so naming it in `InitNornir(inventory={"plugin": "EggoInventory", ...})` is all the
glue there is: the hosts, their SSH settings, `data["roles"]`, `data["arch"]` and the
groups (masters, workers, etcds, loadbalance, amd64, arm64) all come from the deploy.yaml.

The task here is the project's own and has nothing to do with Kubernetes: it runs
`uname -m` through `remote_for(task)` (eggo's SSH session: host keys checked against the
cluster's state dir, trust on first use, Terrapin-affected algorithms off) and checks the
machine's architecture against the arch the deploy.yaml declares.

    python examples/embed_eggo_inventory.py /tmp/demo            # a testbed dir
    python examples/embed_eggo_inventory.py path/to/deploy.yaml

Host keys are recorded in (and then checked against) `~/.eggo/clusters/<cluster-id>/
known_hosts`, the same file the CLI uses (`EGGO_HOME` moves `~/.eggo`). Exit code: 0 when
every host answered and matched its declared arch, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nornir import InitNornir
from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for

# `uname -m` spellings of the arches a deploy.yaml can declare
UNAME_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def machine_arch(task: Task) -> Result:
    """Run `uname -m` on the host (no sudo: it needs none) and compare it with `data["arch"]`.

    A mismatch fails the host: deploying amd64 binaries to an arm64 machine is the mistake
    this check exists to catch before a deploy does.
    """
    uname = remote_for(task).run(["uname", "-m"], sudo=False, timeout=30).stdout.strip()
    declared = task.host.data["arch"]
    found = UNAME_ARCH.get(uname, uname)
    if found != declared:
        raise RuntimeError(f"{task.host.name} is {uname} ({found}) but deploy.yaml says {declared}")
    return Result(host=task.host, result={"uname": uname, "arch": declared, "roles": task.host.data["roles"]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a testbed dir (holding deploy.yaml) or a deploy.yaml")
    args = parser.parse_args(argv)
    deploy_yaml = args.target / "deploy.yaml" if args.target.is_dir() else args.target

    nr = InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": 10}},
        inventory={"plugin": "EggoInventory", "options": {"config_file": str(deploy_yaml)}},
        logging={"enabled": False},
    )
    print(f"groups: {', '.join(sorted(g for g in nr.inventory.groups if nr.inventory.children_of_group(g)))}")
    try:
        results = nr.run(task=machine_arch, name="uname -m")
    finally:
        nr.close_connections(on_good=True, on_failed=True)

    # readable output without nornir-utils' print_result (its import colours every later print)
    for name, multi in results.items():
        if multi.failed:
            print(f"{name}: FAILED: {str(multi[0].exception or multi[0].result).strip().splitlines()[0]}")
        else:
            r = multi[0].result
            print(f"{name}: {r['uname']} (arch {r['arch']}), roles {', '.join(r['roles'])}")
    print(
        "all hosts ok" if not results.failed else f"failed hosts: {', '.join(sorted(results.failed_hosts))}"
    )
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
