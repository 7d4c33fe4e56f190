"""The nginx stream load balancer: content, and `nginx -t` with Debian's nginx + stream module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from render_support import exec_start, file_at, units_of

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render import paths as p
from eggo_nornir.render.cluster import render_cluster
from eggo_nornir.render.nginx import nginx_conf

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAS_STREAM = Path("/etc/nginx/modules-enabled").is_dir() and any(
    "stream" in f.name for f in Path("/etc/nginx/modules-enabled").glob("*.conf")
)


def nginx_test(conf: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `conf`, with the prefix and pid file in tmp. Debian's module snippets name
    modules relative to the prefix (`modules/...`), so the tmp prefix gets that link too."""
    prefix = tmp_path / "prefix"
    prefix.mkdir(exist_ok=True)
    link = prefix / "modules"
    if not link.exists():
        link.symlink_to("/usr/lib/nginx/modules")
    return subprocess.run(
        [NGINX, "-t", "-e", "stderr", "-p", f"{prefix}/", "-c", str(conf), "-g", f"pid {prefix}/nginx.pid;"],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(
    not Path(NGINX).exists() or not HAS_STREAM, reason="Debian nginx with the stream module needed"
)
def test_rendered_nginx_conf_passes_nginx_t(
    cluster_config: ClusterConfig, state_dir: Path, tmp_path: Path
) -> None:
    conf = tmp_path / "kube-nginx.conf"
    conf.write_bytes(file_at(render_cluster(cluster_config, state_dir)["lb"], p.NGINX_CONF).content)
    proc = nginx_test(conf, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


@pytest.mark.skipif(
    not Path(NGINX).exists() or not HAS_STREAM, reason="Debian nginx with the stream module needed"
)
def test_nginx_t_rejects_a_broken_conf(cluster_config: ClusterConfig, tmp_path: Path) -> None:
    conf = tmp_path / "broken.conf"
    conf.write_bytes(nginx_conf(cluster_config).replace(b"proxy_pass kube_apiserver;", b"proxy_pass ;"))
    assert nginx_test(conf, tmp_path).returncode != 0


def test_upstreams_are_every_master(cluster_config: ClusterConfig) -> None:
    text = nginx_conf(cluster_config).decode()
    for master in cluster_config.with_role("master"):
        assert f"server {master.ip}:6443 " in text
    assert "listen 8443;" in text
    assert "stream {" in text and "proxy_pass kube_apiserver;" in text
    assert "0.0.0.0" not in text


def test_a_drained_master_is_marked_down_and_nothing_else_moves(cluster_config: ClusterConfig) -> None:
    """`certs renew` drains one apiserver this way; the deployed config never has `down`."""
    full = nginx_conf(cluster_config).decode()
    drained = nginx_conf(cluster_config, down=("m2",)).decode()
    m2 = cluster_config.node("m2").ip
    assert " down;" not in full
    assert drained == full.replace(
        f"server {m2}:6443 max_fails=3 fail_timeout=30s;",
        f"server {m2}:6443 max_fails=3 fail_timeout=30s down;",
    )
    assert drained.count(" down;") == 1


@pytest.mark.skipif(
    not Path(NGINX).exists() or not HAS_STREAM, reason="Debian nginx with the stream module needed"
)
def test_drained_conf_passes_nginx_t(cluster_config: ClusterConfig, tmp_path: Path) -> None:
    conf = tmp_path / "drained.conf"
    conf.write_bytes(nginx_conf(cluster_config, down=("m1",)))
    proc = nginx_test(conf, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_only_the_lb_node_gets_it(cluster_config: ClusterConfig, state_dir: Path) -> None:
    rendered = render_cluster(cluster_config, state_dir)
    assert [hf.path for hf in rendered["lb"]] == [p.NGINX_CONF, "/etc/systemd/system/kube-nginx.service"]
    assert all(
        p.NGINX_CONF not in [hf.path for hf in files] for name, files in rendered.items() if name != "lb"
    )
    unit = units_of(rendered["lb"])["kube-nginx"]
    assert exec_start(unit) == ["/usr/sbin/nginx", "-c", p.NGINX_CONF, "-g", "pid /run/kube-nginx.pid;"]
    assert file_at(rendered["lb"], p.NGINX_CONF).restarts == ("kube-nginx",)


def test_no_lb_no_nginx(make_cluster, state_dir: Path) -> None:
    rendered = render_cluster(make_cluster(lb=False), state_dir)
    assert "lb" not in rendered
    assert not any(hf.path == p.NGINX_CONF for files in rendered.values() for hf in files)
