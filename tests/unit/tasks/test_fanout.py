"""The fan-out coordinator on FakeRemotes: seeds, peers, fallbacks, server stops, and re-runs."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import shlex
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from task_fakes import fake_nornir, make_ctx, small_cluster
from test_bundle import PACKAGES, make_bundle

from eggo_nornir.config.model import Node, PackageSource
from eggo_nornir.remote.fake import FakeCall, FakeFile, FakeRemote
from eggo_nornir.tasks.bundle import ship_bundle

DST = "/root/.eggo/package"
TAR = f"{DST}/packages-amd64.tar.gz"
MARKER = f"{TAR}.sha256"


@dataclass
class Net:
    """The cluster network: which (ip, port) serves which host's file under which token."""

    servers: dict[tuple[str, int], tuple[SimHost, str]] = field(default_factory=dict)
    ports: itertools.count = field(default_factory=lambda: itertools.count(40000))
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


class SimHost:
    """A host's side of the fan-out scripts, over its FakeRemote's files."""

    def __init__(self, net: Net, name: str, ip: str, tools: tuple[str, ...] = ("python3", "curl")) -> None:
        self.net, self.name, self.ip, self.tools = net, name, ip, tools
        self.fake = FakeRemote(host=name)
        self.unpacked: set[str] = set()
        self.unpacks: list[bool] = []  # whether each unpack verified first
        self.fail_fetch = False
        self.fail_serve = False
        self.fail_unpack = False
        self.fake.on(re.compile(r'^printf "sha='), handler=self.probe)
        self.fake.on(re.compile(r"\nd=/run/eggo-fanout-"), handler=self.serve)
        self.fake.on(re.compile(r"eggo-fetch-"), handler=self.receive)
        self.fake.on(re.compile(r"^set -e; cd "), handler=self.unpack)
        self.fake.on(re.compile(r"^d=/run/eggo-fanout-"), handler=self.stop)

    def probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        marker = fake.files.get(MARKER)
        out = f"sha={marker.content.decode().strip() if marker else ''}\n"
        out += "".join(f"tool={t}\n" for t in self.tools)
        if TAR in fake.files:
            out += "tarball=yes\n"
        members = re.search(r"for f in (.*?); do ", call.command)
        out += "".join(f"missing={m}\n" for m in shlex.split(members.group(1)) if m not in self.unpacked)
        return 0, out, ""

    def serve(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        if self.fail_serve:
            return 4, "", "server did not start: Address already in use"
        assert "sha256sum" not in call.command.split("\nd=/run/eggo-fanout-")[-1]
        token = re.search(r"d=/run/eggo-fanout-([0-9a-f]+)", call.command).group(1)
        assert f" {self.ip} 0 /{token}/packages-amd64.tar.gz {TAR} " in call.command
        port = next(self.net.ports)
        self.net.servers[(self.ip, port)] = (self, token)
        self.net.started.append(self.name)
        return 0, f"port={port}\n", ""

    def receive(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        url = re.search(r"http://([0-9.]+):(\d+)/([0-9a-f]+)/(\S+)", call.command)
        assert url and "--noproxy" in call.command
        src, token = self.net.servers.get((url.group(1), int(url.group(2))), (None, None))
        if self.fail_fetch or src is None or token != url.group(3):
            return 7, "", "curl: (7) Failed to connect"
        data = src.fake.files[TAR].content
        want = re.search(r'"\$got" != ([0-9a-f]{64})', call.command).group(1)
        if hashlib.sha256(data).hexdigest() != want:
            return 3, "", "sha256 mismatch after fetch"
        fake.files[TAR] = FakeFile(data, 0o600)
        assert "\nprintf 'fetched=ok\\n'\n" in call.command
        if "\nd=/run/eggo-fanout-" in call.command:  # the server starts in the same command
            rc, out, err = self.serve(call, fake)
        else:  # a leaf unpacks in the same command
            rc, out, err = self.unpack(call, fake, verified=False)
        return rc, f"fetched=ok\n{out}", err

    def unpack(self, call: FakeCall, fake: FakeRemote, verified: bool | None = None) -> tuple[int, str, str]:
        if self.fail_unpack:
            return 2, "", "tar: write error: No space left on device"
        data = fake.files[TAR].content
        want = re.search(r"printf '%s\\n' ([0-9a-f]{64})", call.command).group(1)
        assert hashlib.sha256(data).hexdigest() == want
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            self.unpacked = {m.name for m in tf if m.isreg()}
        fake.files[MARKER] = FakeFile(f"{want}\n".encode())
        self.unpacks.append("sha256sum" in call.command if verified is None else verified)
        return 0, "", ""

    def stop(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        token = re.search(r"^d=/run/eggo-fanout-([0-9a-f]+)", call.command).group(1)
        for key, (host, tok) in list(self.net.servers.items()):
            if host is self and tok == token:
                del self.net.servers[key]
        self.net.stopped.append(self.name)
        return 0, "", ""


WORKERS = 6


@pytest.fixture
def cluster_cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    base = small_cluster()
    workers = tuple(
        Node(f"w{i}", f"10.9.0.{20 + i}", roles=("worker",), username="eggo") for i in range(WORKERS)
    )
    src = PackageSource(dstpath=DST, srcpath={"amd64": str(make_bundle(tmp_path / "packages-amd64.tar.gz"))})
    nodes = tuple(n for n in base.nodes if n.name != "w0") + workers
    return replace(
        base, nodes=nodes, workers=tuple(w.name for w in workers), package_source=src, packages=PACKAGES
    )


def run_bundle(cfg, tmp_path: Path, sims: dict[str, SimHost], count: int = WORKERS, **options):  # type: ignore[no-untyped-def]
    nr = fake_nornir(cfg, **{n: s.fake for n, s in sims.items()})
    names = [f"w{i}" for i in range(count)]
    nr = nr.filter(filter_func=lambda h: h.name in names)
    ctx = make_ctx(cfg, tmp_path / "state", **options)
    agg = nr.run(task=ship_bundle, ctx=ctx)
    return {n: agg[n][0] for n in names}


@pytest.fixture
def sims(cluster_cfg) -> dict[str, SimHost]:  # type: ignore[no-untyped-def]
    net = Net()
    return {n.name: SimHost(net, n.name, n.ip) for n in cluster_cfg.nodes if n.name.startswith("w")}


def test_peer_mode_seeds_once_then_hosts_fetch_from_each_other(cluster_cfg, sims, tmp_path) -> None:
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    assert all(r.changed and not r.failed for r in res.values()), [r.exception for r in res.values()]
    via = {n: r.result["via"] for n, r in res.items()}
    assert via == {"w0": "seeded", **{f"w{i}": "peer" for i in range(1, WORKERS)}}
    size = res["w0"].result["size"]
    assert res["w0"].result["bytes_sent"] == size
    assert all(res[f"w{i}"].result["bytes_sent"] == 0 for i in range(1, WORKERS))
    # wave 1 from the seed, wave 2 also from the hosts of wave 1
    assert res["w1"].result["source"] == res["w2"].result["source"] == "w0"
    assert {res[f"w{i}"].result["source"] for i in range(3, WORKERS)} <= {"w0", "w1", "w2"}
    assert res["w0"].result["served"] == sorted(n for n, r in res.items() if r.result.get("source") == "w0")
    digests = {hashlib.sha256(s.fake.files[TAR].content).hexdigest() for s in sims.values()}
    assert digests == {res["w0"].result["sha256"]}
    # every server started was stopped
    net = sims["w0"].net
    assert sorted(net.started) == sorted(net.stopped) and not net.servers
    # a fetched copy is verified once, on arrival; an uploaded one when it is unpacked
    assert sims["w5"].unpacks == [False] and sims["w0"].unpacks == [True]
    assert all(r.result["distribution"] == "peer" for r in res.values())


def test_a_rerun_skips_every_host_and_serves_nothing(cluster_cfg, sims, tmp_path) -> None:
    run_bundle(cluster_cfg, tmp_path, sims, distribution="peer")
    started = len(sims["w0"].net.started)
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer")
    assert not any(r.changed for r in res.values())
    assert {r.result["via"] for r in res.values()} == {"skipped"}
    assert len(sims["w0"].net.started) == started


def test_a_failed_fetch_falls_back_to_direct(cluster_cfg, sims, tmp_path) -> None:
    sims["w3"].fail_fetch = True
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    r = res["w3"]
    assert r.changed and not r.failed and r.result["via"] == "direct"
    assert r.result["fallback"].startswith("fetch from w") and r.result["bytes_sent"] == r.result["size"]
    assert sims["w3"].unpacks == [True]  # an upload is verified before it is unpacked


def test_a_source_that_cannot_serve_sends_its_receivers_direct(cluster_cfg, sims, tmp_path) -> None:
    sims["w0"].fail_serve = True
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    assert res["w0"].result["via"] == "seeded" and "could not serve" in res["w0"].result["notes"][0]
    assert res["w1"].result["via"] == "direct" and res["w1"].result["fallback"] == "w0 is not serving"
    assert not any(r.failed for r in res.values())


def test_hosts_without_tools_get_it_directly(cluster_cfg, sims, tmp_path) -> None:
    sims["w4"].tools = ()
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer")
    assert res["w4"].result["via"] == "direct" and "no fetch tool" in res["w4"].result["fallback"]


def test_a_new_host_fetches_from_the_hosts_that_have_it(cluster_cfg, sims, tmp_path) -> None:
    run_bundle(cluster_cfg, tmp_path, sims, count=3, distribution="direct")
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="auto")
    assert {res[f"w{i}"].result["via"] for i in range(3)} == {"skipped"}
    assert {res[f"w{i}"].result["via"] for i in range(3, WORKERS)} == {"peer"}
    assert all(res[f"w{i}"].result["bytes_sent"] == 0 for i in range(WORKERS))


def test_auto_with_few_hosts_is_direct(cluster_cfg, sims, tmp_path) -> None:
    res = run_bundle(cluster_cfg, tmp_path, sims, count=3)
    assert {r.result["via"] for r in res.values()} == {"direct"}
    assert res["w0"].result["fallback"].startswith("auto:")
    assert not sims["w0"].net.started


def test_an_unreachable_host_fails_alone(cluster_cfg, sims, tmp_path) -> None:
    sims["w2"].fake.on(re.compile(r'^printf "sha='), rc=255, stderr="ssh: connection lost")
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    assert res["w2"].failed
    assert all(not r.failed and r.changed for n, r in res.items() if n != "w2")


def test_direct_mode_is_the_old_path(cluster_cfg, sims, tmp_path) -> None:
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="direct")
    assert {r.result["via"] for r in res.values()} == {"direct"}
    assert not any("tool=" in c for s in sims.values() for c in s.fake.commands)


def test_a_peer_that_cannot_serve_keeps_its_copy_and_its_receivers_go_direct(
    cluster_cfg, sims, tmp_path
) -> None:
    sims["w1"].fail_serve = True  # fetches in wave 1, would serve wave 2
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    assert res["w1"].result["via"] == "peer" and "could not serve" in res["w1"].result["notes"][0]
    orphans = [n for n, r in res.items() if r.result.get("fallback") == "w1 is not serving"]
    assert orphans and all(res[n].result["via"] == "direct" for n in orphans)
    assert not any(r.failed for r in res.values())


def test_a_leaf_fetches_and_unpacks_in_one_command_and_a_failed_unpack_fails_it(
    cluster_cfg, sims, tmp_path
) -> None:
    sims["w5"].fail_unpack = True
    res = run_bundle(cluster_cfg, tmp_path, sims, distribution="peer", fanout_seeds=1)
    leaf = sims["w4"].fake.commands
    assert sum("eggo-fetch-" in c for c in leaf) == 1 and not any(c.startswith("set -e; cd ") for c in leaf)
    assert res["w4"].result["via"] == "peer" and not res["w4"].failed
    assert res["w5"].failed and "No space left" in str(res["w5"].exception)
