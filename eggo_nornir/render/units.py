"""Units and component configs of etcd, the control plane, the kubelet and kube-proxy.

Why one function per component, each returning HostFiles with their `restarts`: the assembly in
`render/cluster.py` only chooses *which* components a node runs; what a component needs (unit,
config, the flag set for the version) and which service a change must restart stay together here.
"""

from __future__ import annotations

import copy

import yaml

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render import security, yamltext
from eggo_nornir.render import unit_names as u
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render


def _description(component: str) -> str:
    return {
        "kube-apiserver": "Kubernetes API Server",
        "kube-controller-manager": "Kubernetes Controller Manager",
        "kube-scheduler": "Kubernetes Scheduler",
    }[component]


def etcd_files(cfg: ClusterConfig, node: Node) -> list[HostFile]:
    """etcd's env file and unit; etcd reads every setting from ETCD_* variables."""
    env = render("etcd/etcd.conf.j2", env=f.etcd_env(cfg, node))
    unit = render(
        "etcd/etcd.service.j2",
        description="etcd key-value store for Kubernetes",
        env_file=p.ETCD_ENV,
        bootstrap_env_file=p.ETCD_BOOTSTRAP_ENV,
        data_dir=p.ETCD_DATA_DIR,
        binary=p.binary("etcd"),
    )
    return [
        HostFile(p.ETCD_ENV, env, restarts=(u.ETCD,)),
        HostFile(p.unit_path(u.ETCD), unit, restarts=(u.ETCD,)),
    ]


def etcd_bootstrap_file(state: str, members: list[tuple[str, str]]) -> HostFile:
    """The member's bootstrap env (`flags.etcd_bootstrap_env`), written by the etcd task before a first start.

    It restarts etcd when it changes: a member that crash-loops without data (it started
    before it was added) must pick up the corrected list.
    """
    env = render("etcd/etcd.conf.j2", env=f.etcd_bootstrap_env(state, members))
    return HostFile(p.ETCD_BOOTSTRAP_ENV, env, restarts=(u.ETCD,))


def control_plane_flags(
    cfg: ClusterConfig, node: Node, component: str, minor: int, *, allocate_node_cidrs: bool
) -> list[tuple[str, str]]:
    """The final, sorted flag list of one control-plane component (defaults + extra args)."""
    if component == "kube-apiserver":
        defaults = f.apiserver_defaults(cfg, node, minor)
    elif component == "kube-controller-manager":
        defaults = f.controller_manager_defaults(cfg, allocate_node_cidrs=allocate_node_cidrs)
    elif component == "kube-scheduler":
        defaults = f.scheduler_defaults(cfg)
    else:
        raise ValueError(component)
    return f.merge(component, defaults, cfg.extra_args(component), minor)


def control_plane_files(
    cfg: ClusterConfig, node: Node, minor: int, *, allocate_node_cidrs: bool
) -> list[HostFile]:
    """The three control-plane units and the apiserver's security files (their certs,
    kubeconfigs and the encryption config come from pki.py, kubeconfig.py and secrets.py)."""
    out: list[HostFile] = security.apiserver_security_files(cfg, minor)
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        flags = control_plane_flags(cfg, node, component, minor, allocate_node_cidrs=allocate_node_cidrs)
        after = ["etcd.service"] if component == "kube-apiserver" and node.is_etcd else []
        if component != "kube-apiserver":
            after.append(f"{u.APISERVER}.service")
        unit = render(
            f"kubernetes/{component}.service.j2",
            description=_description(component),
            binary=p.binary(component),
            flags=flags,
            after=after,
        )
        out.append(HostFile(p.unit_path(component), unit, restarts=(component,)))
    return out


def cgroup_driver(cfg: ClusterConfig) -> str:
    """Must match the runtime's: we configure containerd and docker for systemd cgroups; iSulad
    keeps its own default (cgroupfs). Override with kubelet extra arg `--cgroup-driver`."""
    return "cgroupfs" if cfg.runtime == "iSulad" else "systemd"


def kubelet_flags(cfg: ClusterConfig, node: Node, minor: int) -> list[tuple[str, str]]:
    return f.merge("kubelet", f.kubelet_defaults(cfg, node, minor), cfg.extra_args("kubelet"), minor)


def kubelet_files(
    cfg: ClusterConfig, node: Node, minor: int, *, pod_cidr: str | None, runtime_units: tuple[str, ...]
) -> list[HostFile]:
    """The kubelet unit and its KubeletConfiguration (TLS bootstrapping, webhook authn/authz)."""
    config = render(
        "kubernetes/kubelet-config.yaml.j2",
        client_ca=p.CA_CRT,
        cgroup_driver=cgroup_driver(cfg),
        cluster_dns=cfg.dns_vip,
        cluster_domain=cfg.dns_domain,
        runtime_endpoint=f.runtime_endpoint(cfg) if minor >= 27 else "",
        fail_cgroup_v1_false=minor >= 35,
        pod_cidr=pod_cidr,
        server_tls_bootstrap=cfg.enable_kubelet_serving,
        protect_kernel_defaults=cfg.security.protect_kernel_defaults,
        tls_min_version=cfg.security.tls_min_version,
        tls_cipher_suites=cfg.security.tls_cipher_suites,
    )
    unit = render(
        "kubernetes/kubelet.service.j2",
        description="Kubernetes node agent (kubelet)",
        binary=p.binary("kubelet"),
        flags=kubelet_flags(cfg, node, minor),
        runtime_units=[f"{unit}.service" for unit in runtime_units],
    )
    return [
        HostFile(p.KUBELET_CONFIG, config, restarts=(u.KUBELET,)),
        HostFile(p.unit_path(u.KUBELET), unit, restarts=(u.KUBELET,)),
    ]


def kube_proxy_config(cfg: ClusterConfig, node: Node) -> tuple[bytes, dict[str, str]]:
    """The KubeProxyConfiguration with extra args merged in, and the flags that remain flags.

    kube-proxy ignores most flags once `--config` is given, so extra args that have a config
    field are written into the file (see flags.KUBE_PROXY_CONFIG_FLAGS); the rest stay flags.
    """
    overrides, rest = f.kube_proxy_config_overrides(cfg.extra_args("kube-proxy"))
    text = render(
        "kubernetes/kube-proxy-config.yaml.j2",
        kubeconfig=p.KUBE_PROXY_CONF,
        cluster_cidr=cfg.network.podcidr,
        hostname=node.name,
    )
    if overrides:
        doc = copy.deepcopy(yaml.safe_load(text))
        for key in sorted(overrides):
            f.set_in(doc, key.split("."), overrides[key])
        text = yamltext.dump(doc, sort_keys=False, default_flow_style=False).encode()
    return text, rest


def kube_proxy_flags(cfg: ClusterConfig, node: Node, minor: int) -> list[tuple[str, str]]:
    _, rest = f.kube_proxy_config_overrides(cfg.extra_args("kube-proxy"))
    return f.merge("kube-proxy", f.kube_proxy_defaults(cfg, node), rest, minor)


def kube_proxy_files(cfg: ClusterConfig, node: Node, minor: int) -> list[HostFile]:
    config, _ = kube_proxy_config(cfg, node)
    unit = render(
        "kubernetes/kube-proxy.service.j2",
        description="Kubernetes network proxy (kube-proxy)",
        binary=p.binary("kube-proxy"),
        flags=kube_proxy_flags(cfg, node, minor),
    )
    return [
        HostFile(p.KUBE_PROXY_CONFIG, config, restarts=(u.KUBE_PROXY,)),
        HostFile(p.unit_path(u.KUBE_PROXY), unit, restarts=(u.KUBE_PROXY,)),
    ]
