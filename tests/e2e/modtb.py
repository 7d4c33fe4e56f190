"""What the e2e modules with a testbed of their own share: booting it, its EGGO_HOME, running the CLI.

Why one helper: each module owns its testbed (its own name and subnet, so no module sees
another's cluster), and each needs the same three things around it: boot it (or skip when the
host cannot), tear it down whatever happens, and run `python -m eggo_nornir` with an EGGO_HOME
inside the testbed's dir so the cluster state (keys included) goes away with it.

Use it from a test module (tests are not packages, so import it by name):

    from modtb import eggo_env, module_testbed, run_eggo

    @pytest.fixture(scope="module")
    def tb(bundle, tmp_path_factory):
        with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=3) as bed:
            yield bed
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from eggo_nornir.testbed import lifecycle, paths, spec
from eggo_nornir.testbed.handle import Testbed, unavailable


def cached_bundle(
    versions: spec.Versions = spec.DEFAULT_VERSIONS,
    arch: str = "amd64",
    *,
    layout: str = "typed",
    addons: bool = False,
) -> Path:
    """The cached bundle of `versions` (and `layout`, `addons`); with EGGO_E2E_BUILD=1 built first
    (a no-op when the cache is current, tens of minutes cold), else the test skips when none is
    cached."""
    target = paths.default_bundle_dir() / spec.bundle_name(arch, versions, layout=layout, addons=addons)
    if os.environ.get("EGGO_E2E_BUILD") == "1":
        from eggo_nornir.testbed import bundle as bundle_mod

        bundle_mod.build(arch, target.parent, versions, layout=layout, addons=addons)
    if not target.is_file():
        flag = "" if versions == spec.DEFAULT_VERSIONS else f" --kubernetes-version {versions.kubernetes}"
        flag += (" --layout manual" if layout == "manual" else "") + (" --addons" if addons else "")
        pytest.skip(f"no bundle at {target}; run `eggo-nornir testbed bundle{flag}` or set EGGO_E2E_BUILD=1")
    return target


@contextmanager
def module_testbed(
    tmp_path_factory: pytest.TempPathFactory,
    bundle: Path | None,
    *,
    name: str,
    subnet: str,
    machines: int,
    **up_options: Any,
) -> Iterator[Testbed]:
    """Boot `machines` testbed machines (or skip the module), and always tear them down.

    `up_options` go to `lifecycle.up` as they are (`arm64`, `rpm`, `bundles` for a mixed testbed).
    """
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp(f"{name}tb")
    state = lifecycle.up(out, name=name, machines=machines, subnet=subnet, bundle=bundle, **up_options)
    try:
        yield Testbed(state, out)
    finally:
        lifecycle.down(out)


def eggo_env(tb: Testbed) -> dict[str, str]:
    """The environment with EGGO_HOME inside the testbed's dir."""
    home = tb.out_dir / "eggo-home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "EGGO_HOME": str(home)}


def run_eggo(
    env: dict[str, str], *args: str, timeout: float = 1200, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m eggo_nornir ARGS` as a user runs it: a process of its own (in `cwd`), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "eggo_nornir", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def record_timings(label: str, file_name: str, timings: dict[str, float]) -> None:
    """Write a module's timings to the logs dir as JSON and print them with `label` (CI logs)."""
    from eggo_nornir.testbed import paths

    record = paths.logs_dir() / file_name
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(timings) + "\n")
    print(f"\n{label} {json.dumps(timings)} (also in {record})", file=sys.stderr)


def kubectl_path() -> str:
    """The bundle's own kubectl, run on the controller against the cluster's API."""
    from eggo_nornir.testbed import bundle as bundle_mod

    return str(bundle_mod.bin_dir("amd64") / "kubectl")


def kubectl_runner(kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run(*args, check=True, timeout=60)`: kubectl with `kubeconfig`; `check` fails the test
    with kubectl's stderr."""
    binary = kubectl_path()

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    return run


def probe_docs(workers: list[str], image: str) -> list[dict[str, object]]:
    """A `probe-I` Pod pinned to each worker, serving `hello-from-<worker>` on 8080 (busybox
    httpd), and a `probe-I` Service on port 80 in front of it: what the network tests reach."""
    docs: list[dict[str, object]] = []
    for i, w in enumerate(workers):
        serve = f"mkdir -p /www && echo hello-from-{w} > /www/index.html && httpd -f -p 8080 -h /www"
        container = {"name": "c", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", serve]}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"probe-{i}", "labels": {"app": f"probe-{i}"}},
                "spec": {"nodeName": w, "containers": [container]},
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"probe-{i}"},
                "spec": {"selector": {"app": f"probe-{i}"}, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
    return docs
