"""The nginx stream load balancer in front of the apiservers, changed without dropping it.

Why the extra care compared to other units: every kubelet, kube-proxy and admin client goes
through this one process, so
- a new config is tested with `nginx -t` *before* it replaces the running one: a bad config
  is refused and the LB keeps serving the old one (the unit's own `ExecStartPre` test would
  only catch it after the old process is gone);
- when only the config changed and the LB is running, it is reloaded (`ExecReload`, a HUP:
  nginx starts new workers and lets the old ones finish their connections) instead of
  restarted;
- when it is not running, a port already taken by something else (Debian's own
  `nginx.service`, which the package step disables, or anything else) is reported by name
  before the start, instead of a unit that loops on "Address already in use".
"""

from __future__ import annotations

import shlex

from nornir.core.task import Result, Task

from eggo_nornir.remote import Remote
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks._lib.waiting import journal_tail, poll
from eggo_nornir.tasks.files import PENDING_DIR, push_files
from eggo_nornir.tasks.services import converge_services

LB_UNIT = unit_names.NGINX
PID_GLOBAL = "pid /run/kube-nginx.pid;"
CANDIDATE = f"{p.K8S_DIR}/.kube-nginx.conf.eggo-candidate"


def has_exec_reload(unit: HostFile | None) -> bool:
    return unit is not None and any(
        line.strip().startswith("ExecReload=") for line in unit.content.decode(errors="replace").splitlines()
    )


def _probe(remote: Remote, port: int) -> dict[str, str]:
    """One round trip: is the LB active, is a restart pending, who listens on the port."""
    q = shlex.quote
    script = (
        f"echo active=$(systemctl is-active {LB_UNIT} 2>/dev/null); "
        f"[ -e {PENDING_DIR}/{LB_UNIT} ] && echo pending=yes || echo pending=no; "
        f"if command -v ss >/dev/null 2>&1; then echo listeners=$(ss -Hltnp {q(f'( sport = :{port} )')} "
        "2>/dev/null | tr '\\n' ' '); fi"
    )
    out = remote.run(script, check=False, timeout=60).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _test_config(remote: Remote, conf: HostFile) -> None:
    """`nginx -t` of the new config at a temporary path; raise with nginx's message if bad."""
    remote.put(CANDIDATE, conf.content, mode=0o644)
    try:
        res = remote.run(
            [p.NGINX_BIN, "-t", "-q", "-c", CANDIDATE, "-g", PID_GLOBAL], check=False, timeout=60
        )
    finally:
        remote.run(["rm", "-f", CANDIDATE], check=False, timeout=60)
    if res.rc != 0:
        text = (res.stderr or res.stdout).strip()
        raise RuntimeError(
            f"the new load balancer config fails `nginx -t`; it was not installed and the running "
            f"LB was left alone:\n{text[-2000:]}{_hint(text)}"
        )


def _hint(nginx_says: str) -> str:
    """The one cause an operator meets most: nginx built with `stream` as a module nobody loads."""
    if 'unknown directive "stream"' not in nginx_says:
        return ""
    return (
        "\nnginx has no stream module loaded: install it with the LB's packages (Debian/Ubuntu "
        "libnginx-mod-stream, openEuler/CentOS nginx-mod-stream), which puts its load_module stub in "
        "/etc/nginx/modules-enabled/ or /usr/share/nginx/modules/"
    )


@applies_to("loadbalance")
def deploy_loadbalancer(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship kube-nginx.conf and its unit (STEP_FILES["loadbalancer"]) and converge `kube-nginx`.

    Order: test the new config, push, then reload (config-only change on a running LB, no
    pending restart from an earlier run) or converge (start / restart), then wait until the
    bind port listens (`ctx.options.lb_start_timeout`).

    Returns:
        Result: `changed` when a file or unit changed; `result` {files, services, notes}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    cfg = ctx.cfg
    port = cfg.loadbalance.bind_port if cfg.loadbalance else 8443
    files = files_for(ctx, "loadbalancer", task.host.name)
    conf = next((f for f in files if f.path == p.NGINX_CONF), None)
    unit = next((f for f in files if f.path == p.unit_path(LB_UNIT)), None)
    before = _probe(remote, port)
    running = before.get("active") in ("active", "reloading", "activating")
    conf_changes = (
        conf is not None and remote.put(conf.path, conf.content, mode=conf.mode, dry_run=True).changed
    )
    if conf is not None and conf_changes and not dry:
        _test_config(remote, conf)
    if not running and before.get("listeners", "").strip() and not dry:
        raise RuntimeError(
            f"port {port} on {task.host.name} is already in use, so {LB_UNIT} cannot start: "
            f"{before['listeners'].strip()}\n(Debian's nginx.service? the package step should have "
            "disabled it: `systemctl disable --now nginx`; or change loadbalance.bind-port)"
        )
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    written = set(pushed[0].result["written"])
    reload = running and written == {p.NGINX_CONF} and before.get("pending") == "no" and has_exec_reload(unit)
    notes: list[str] = []
    if reload:
        if dry:
            notes.append(f"would reload {LB_UNIT}")
        else:
            remote.run(f"systemctl reload {LB_UNIT} && rm -f {PENDING_DIR}/{LB_UNIT}", timeout=60)
            notes.append(f"reloaded {LB_UNIT}")
    converged = task.run(converge_services, units=[LB_UNIT], dry_run=dry_run)
    if not dry:
        _wait_listening(remote, task.host.name, port, ctx)
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged) or bool(reload),
        diff="".join(f"{n}\n" for n in notes if n.startswith("would")),
        result={"files": sorted(written), "services": converged[0].result, "notes": notes},
    )


def swap_config(remote: Remote, conf: HostFile) -> bool:
    """Install `conf` (the LB config) and reload nginx, if it differs from the file on the host.

    Returns whether it did. The config passes `nginx -t` first, and no pending-restart marker
    is left: a later restart would drop every connection through the LB, while the reload
    lets the old workers finish theirs. `certs renew` drains and restores apiservers with it.
    """
    if not remote.put(conf.path, conf.content, mode=conf.mode, dry_run=True).changed:
        return False
    _test_config(remote, conf)
    remote.put(conf.path, conf.content, mode=conf.mode, owner=conf.owner, group=conf.group)
    remote.run(["systemctl", "reload", LB_UNIT], timeout=60)
    return True


def _wait_listening(remote: Remote, host: str, port: int, ctx: DeployContext) -> None:
    """nginx runs as `Type=simple`: `systemctl start` returns before it binds; check it did."""
    check = f"ss -Hltn {shlex.quote(f'( sport = :{port} )')} | grep -q . || ! command -v ss >/dev/null"

    def attempt() -> tuple[bool, None]:
        return remote.run(check, check=False, timeout=30).rc == 0, None

    ok, _ = poll(attempt, ctx.options.lb_start_timeout, interval=1.0)
    if not ok:
        raise RuntimeError(
            f"{LB_UNIT} on {host} does not listen on port {port}:\n{journal_tail(remote, [LB_UNIT])}"
        )
