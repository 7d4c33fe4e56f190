"""Run one bundle phase as a peer-to-peer fan-out: probe, plan, seed, fetch, fall back, stop.

Why one coordinator per phase run instead of each host working alone: a receiver must wait
until its source holds a copy and listens, and every server must stop when the
phase ends, whoever failed. Host threads cannot wait on each other safely (the runner may
run fewer threads than hosts, so a waiting host could hold the thread its source needs),
so the first host task of the run to arrive drives every host of the run from its own
thread pool, in wave order, and each host task then returns its own host's outcome. The
per-host `Result` therefore says honestly how that host got its copy (`via`: `skipped`,
`seeded`, `peer` with `source`, or `direct` with a `fallback` reason) and what it served.

Failure handling, per host: a source that failed or could not start its server, a fetch
that failed or delivered the wrong bytes, a host without the tools — each falls back to the
direct upload from the controller, so peer mode is never less reliable than direct. Servers
are stopped in a `finally`, on success, failure and Ctrl-C alike; each also exits by itself
after its lifetime.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nornir.core.task import Result, Task

from eggo_nornir.config.model import Node
from eggo_nornir.engine.runner import check_stop
from eggo_nornir.remote.errors import RemoteError
from eggo_nornir.remote.nornir_plugin import remote_for_host
from eggo_nornir.tasks import bundle
from eggo_nornir.tasks._lib import fanout_plan, fanout_scripts
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to

if TYPE_CHECKING:
    from nornir.core import Nornir

    from eggo_nornir.remote import Remote

DEFAULT_POOL = 20
FETCHED = "fetched=ok"  # printed between a fetch and what the same command does next

_RUNS: weakref.WeakKeyDictionary[Nornir, FanOutRun] = weakref.WeakKeyDictionary()
_RUNS_LOCK = threading.Lock()


@dataclass
class _Host:
    """One host's state during the run (touched by its own delivery job only, plus `served`)."""

    name: str
    node: Node
    remote: Remote | None = None
    sub: bundle.SubBundle | None = None
    probe: bundle.HostBundle | None = None
    plan: fanout_plan.Assignment | None = None
    result: dict[str, Any] = field(default_factory=dict)
    changed: bool = False
    error: BaseException | None = None
    token: str | None = None  # set once a server was started, for the stop
    port: int | None = None  # set once the server listens
    ready: threading.Event = field(default_factory=threading.Event)
    served: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FanOutRun:
    """The fan-out of one `nr.run` of the bundle task; `deliver_all` runs it once."""

    def __init__(self, ctx: DeployContext, nornir: Nornir, names: list[str]) -> None:
        self.ctx = ctx
        self.nornir = nornir
        self.hosts = {n: _Host(n, ctx.node(n)) for n in names}
        self.collected: set[str] = set()
        self.done = threading.Event()
        self.crash: BaseException | None = None
        self.mode = bundle.distribution_mode(ctx)
        self.zone = ctx.options.firewall_zone or None
        self._lock = threading.Lock()

    # -- the whole run -----------------------------------------------------------------------

    def deliver_all(self) -> None:
        """Probe every host, plan each sub-bundle's fan-out, deliver in wave order, stop servers."""
        workers = int(self.ctx.options.fanout_workers or getattr(self.nornir.runner, "num_workers", 0))
        workers = max(1, min(workers or DEFAULT_POOL, len(self.hosts)))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="eggo-fanout") as pool:
                wait([pool.submit(self._guard, h, self._probe) for h in self.hosts.values()])
                order = self._plan()
                # wave order: a receiver only waits on hosts submitted before it, so it can never
                # hold the pool thread its source needs
                wait([pool.submit(self._guard, h, self._deliver) for h in order])
        except BaseException as exc:
            self.crash = exc
        finally:
            self._stop_servers()
            self.done.set()

    def _guard(self, h: _Host, step: Callable[[_Host], None]) -> None:
        try:
            if h.error is None:
                step(h)
        except Exception as exc:
            h.error = exc
        finally:
            if step == self._deliver:
                h.ready.set()

    def _probe(self, h: _Host) -> None:
        check_stop()
        h.sub = bundle.sub_bundle_for(self.ctx, h.node)
        if h.sub is None:
            h.result = {"skipped": True, "note": "no bundle for this arch", "via": "skipped"}
            return
        h.remote = remote_for_host(self.nornir.inventory.hosts[h.name], self.nornir)
        script = bundle.probe_script(self._dst, self._name(h), h.sub.members, tools=True)
        h.probe = bundle.parse_probe(h.remote.run(script, timeout=60).stdout)

    def _plan(self) -> list[_Host]:
        """Assign every probed host; return the hosts in delivery (wave) order."""
        groups: dict[str, list[_Host]] = {}
        for h in self.hosts.values():
            if h.error is None and h.sub is not None and h.probe is not None:
                groups.setdefault(h.sub.sha256, []).append(h)
        seeds = self.ctx.options.fanout_seeds
        per_source = self.ctx.options.fanout_per_source
        order: list[tuple[int, int, _Host]] = []
        for members in groups.values():
            facts = [self._facts(h) for h in members]
            plan = fanout_plan.plan_fanout(facts, mode=self.mode, seeds=seeds, per_source=per_source)
            for i, h in enumerate(members):
                h.plan = plan[h.name]
                order.append((h.plan.wave, i, h))
        return [h for _w, _i, h in sorted(order, key=lambda t: (t[0], t[1]))]

    def _facts(self, h: _Host) -> fanout_plan.PeerFacts:
        assert h.sub is not None and h.probe is not None
        has = h.probe.complete(h.sub.sha256)
        # a holder whose tarball was deleted after unpacking is complete, but has nothing to serve
        can_serve = h.probe.tarball or not has
        return fanout_plan.PeerFacts(
            name=h.name,
            ip=h.node.ip,
            has=has,
            serve=fanout_scripts.serve_tool(h.probe.tools) if can_serve else None,
            fetch=fanout_scripts.fetch_tool(h.probe.tools),
        )

    # -- one host ------------------------------------------------------------------------------

    @property
    def _dst(self) -> str:
        return bundle.dstpath(self.ctx.cfg)

    def _name(self, h: _Host) -> str:
        return bundle.remote_bundle_name(self.ctx, h.node)

    def _deliver(self, h: _Host) -> None:
        if h.plan is None:  # no bundle for this arch: the probe already set the result
            return
        assert h.sub is not None and h.probe is not None and h.remote is not None
        h.result = bundle.base_result(self.ctx, h.node, h.sub)
        a = h.plan
        if a.how == "skip":
            if a.serves:
                self._serve(h)
            return
        started = time.monotonic()
        before = h.remote.stats().get("bytes_sent", 0)
        fetched = unpacked = False
        if a.how == "peer":
            assert a.source is not None
            fetched = self._fetch(h, self.hosts[a.source], serve=a.serves)
            unpacked = fetched and not a.serves
        if not fetched:
            check_stop()
            bundle.upload(h.remote, self.ctx, h.node, h.sub)
            h.result["via"] = "seeded" if a.how == "seed" else "direct"
            if a.how == "direct":
                h.result["fallback"] = a.reason
            if a.serves:
                # served before it is verified, to start the next wave sooner: every receiver
                # verifies what it gets, and the unpack below verifies this copy
                self._serve(h)
        check_stop()
        if not unpacked:
            bundle.unpack(h.remote, self.ctx, h.node, h.sub, verify=not fetched)
        h.changed = True
        h.result.update(
            skipped=False,
            bytes_sent=h.remote.stats().get("bytes_sent", 0) - before,
            seconds=round(time.monotonic() - started, 2),
        )
        if a.wave:
            h.result["wave"] = a.wave

    def _fetch(self, h: _Host, src: _Host, serve: bool) -> bool:
        """Fetch from `src` once it serves; False, with the reason recorded, to fall back to direct.

        The same command then starts this host's server when it serves the next wave (one round
        trip per wave), or else unpacks (one round trip per leaf). An unpack that fails after a
        good fetch fails the host: an upload would land on the same full or broken disk.
        """
        assert h.sub is not None and h.remote is not None and h.probe is not None
        timeout = int(self.ctx.options.upload_timeout)
        if not src.ready.wait(timeout):
            return self._fallback(h, f"{src.name} was not serving after {timeout}s")
        if src.port is None or src.token is None:
            return self._fallback(h, f"{src.name} is not serving")
        check_stop()
        tool = fanout_scripts.fetch_tool(h.probe.tools)
        assert tool is not None
        script = fanout_scripts.receive_script(
            tool,
            ip=src.node.ip,
            port=src.port,
            token=src.token,
            directory=self._dst,
            name=self._name(h),
            sha256=h.sub.sha256,
            timeout=timeout,
        )
        then = (
            self._serve_script(h)
            if serve
            else bundle.unpack_script(self._dst, self._name(h), h.sub.sha256, verify=False)
        )
        script += f"\nprintf '{FETCHED}\\n'\n{then}"
        try:
            done = h.remote.run(script, timeout=timeout + 120, check=False)
        except RemoteError as exc:
            return self._fallback(h, f"fetch from {src.name} failed: {_first_line(exc)}")
        fetched = done.rc == 0 or FETCHED in done.stdout.splitlines()
        if not fetched:
            return self._fallback(
                h, f"fetch from {src.name} failed (rc {done.rc}): {_first_line(done.stderr)}"
            )
        h.result.update(via="peer", source=src.name)
        with self._lock:
            src.served.append(h.name)
        if serve:
            self._serving(h, done.rc, done.stdout, done.stderr)
        elif done.rc != 0:
            raise bundle.BundleError(
                f"{h.name}: unpacking the copy fetched from {src.name} failed (rc {done.rc}): "
                f"{done.stderr.strip()[-500:]}"
            )
        return True

    def _fallback(self, h: _Host, reason: str) -> bool:
        h.result["fallback"] = reason
        return False

    def _serve_script(self, h: _Host) -> str:
        """The start of the host's server, under a fresh token (kept on the host for the stop)."""
        assert h.probe is not None
        tool = fanout_scripts.serve_tool(h.probe.tools)
        assert tool is not None
        h.token = secrets.token_hex(12)
        return fanout_scripts.serve_script(
            tool,
            ip=h.node.ip,
            token=h.token,
            directory=self._dst,
            name=self._name(h),
            lifetime=self.ctx.options.fanout_server_lifetime,
            port=self.ctx.options.fanout_port,
            zone=self.zone,
        )

    def _serve(self, h: _Host) -> None:
        """Start the host's server. Never fails the host: its receivers go direct when it does not serve."""
        assert h.remote is not None
        try:
            done = h.remote.run(self._serve_script(h), timeout=120, check=False)
        except RemoteError as exc:
            h.notes.append(f"could not serve: {_first_line(exc)}")
            h.ready.set()
            return
        self._serving(h, done.rc, done.stdout, done.stderr)

    def _serving(self, h: _Host, rc: int, stdout: str, stderr: str) -> None:
        """Record the port a serve script printed (or why there is none) and release the receivers."""
        port = next((line[5:] for line in stdout.splitlines() if line.startswith("port=")), "")
        if rc == 0 and port.isdigit():
            h.port = int(port)
        else:
            h.notes.append(f"could not serve (rc {rc}): {_first_line(stderr)}")
        h.ready.set()

    def _stop_servers(self) -> None:
        serving = [h for h in self.hosts.values() if h.token and h.remote is not None]
        if not serving:
            return

        def stop(h: _Host) -> None:
            assert h.remote is not None and h.token is not None
            try:
                h.remote.run(fanout_scripts.stop_script(h.token, self.zone), timeout=60)
            except Exception as exc:
                h.notes.append(f"could not stop its server: {_first_line(exc)}")

        with ThreadPoolExecutor(
            min(len(serving), DEFAULT_POOL), thread_name_prefix="eggo-fanout-stop"
        ) as pool:
            list(pool.map(stop, serving))

    # -- what a host task gets -------------------------------------------------------------------

    def outcome(self, name: str) -> tuple[bool, dict[str, Any]]:
        """(changed, result) of host `name` once the run is over; raises its error if it failed."""
        self.done.wait()
        with self._lock:
            self.collected.add(name)
        if self.crash is not None:
            raise self.crash
        h = self.hosts[name]
        if h.error is not None:
            raise h.error
        result = dict(h.result, distribution=self.mode)
        if h.served:
            result["served"] = sorted(h.served)
        if h.notes:
            result["notes"] = list(h.notes)
        return h.changed, result


def _first_line(what: BaseException | str) -> str:
    text = str(what).strip()
    if text:
        return text.splitlines()[0]
    return type(what).__name__ if isinstance(what, BaseException) else "no output"


def _run_names(nornir: Nornir) -> list[str]:
    failed = nornir.data.failed_hosts
    return [n for n in nornir.inventory.hosts if n not in failed]


def _run_for(task: Task, ctx: DeployContext) -> FanOutRun:
    """The fan-out of the task's `nr.run`, driving it first if this host is the first to arrive.

    A host that already collected its outcome from the current run starts a new one (the
    same Nornir object can run the task again).
    """
    with _RUNS_LOCK:
        run = _RUNS.get(task.nornir)
        fresh = run is None or task.host.name in run.collected or task.host.name not in run.hosts
        if fresh:
            run = FanOutRun(ctx, task.nornir, _run_names(task.nornir))
            _RUNS[task.nornir] = run
    assert run is not None
    if fresh:
        run.deliver_all()
    return run


@applies_to("node")
def ship_with_peers(task: Task, ctx: DeployContext) -> Result:
    """`ship_bundle` in `peer`/`auto` mode: this host's part of the run's fan-out.

    Returns:
        Result: `changed` when the sub-bundle arrived; `result` says from where.
    """
    changed, result = _run_for(task, ctx).outcome(task.host.name)
    return Result(host=task.host, changed=changed, result=result)
