"""The nginx stream load balancer on the `loadbalance` node.

Why a separate `kube-nginx` service with its own config and pid file instead of upstream's
replacement of `nginx.service`: the LB host may run nginx for something else, and a distro
package upgrade must not undo (or be undone by) our unit. `daemon off` keeps nginx in the
foreground so systemd supervises the real process and logs go to the journal (`error_log
stderr`). The pid file is given with `-g` so `nginx -t` can check this exact file elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render

NGINX_UNIT = unit_names.NGINX
PID_FILE = "/run/kube-nginx.pid"
APISERVER_PORT = 6443


def nginx_conf(cfg: ClusterConfig, down: Collection[str] = ()) -> bytes:
    """Every master's apiserver as an upstream, listening on `bind_port` on all addresses.

    `down` names masters whose upstream is marked `down`: `certs renew` drains an apiserver
    this way (and reloads nginx gracefully) before restarting it, because a TCP proxy cannot
    see that an apiserver is shutting down or not ready yet, and `max_fails` only reacts after
    clients have already failed. The deployed config never has a `down` server.
    """
    if cfg.loadbalance is None:
        raise ValueError("no loadbalance configured")
    masters = [(f"[{n.ip}]" if ":" in n.ip else n.ip, n.name in down) for n in cfg.with_role("master")]
    return render(
        "nginx/kube-nginx.conf.j2",
        masters=masters,
        apiserver_port=APISERVER_PORT,
        bind_port=cfg.loadbalance.bind_port,
        ipv6=any(":" in n.ip for n in cfg.with_role("master")),
    )


def nginx_files(cfg: ClusterConfig, node: Node) -> list[HostFile]:
    unit = render(
        "nginx/kube-nginx.service.j2",
        description="Load balancer for kube-apiserver (nginx stream)",
        nginx=p.NGINX_BIN,
        conf=p.NGINX_CONF,
        pid=PID_FILE,
        kill=p.KILL_BIN,
    )
    return [
        HostFile(p.NGINX_CONF, nginx_conf(cfg), restarts=(NGINX_UNIT,)),
        HostFile(p.unit_path(NGINX_UNIT), unit, restarts=(NGINX_UNIT,)),
    ]
