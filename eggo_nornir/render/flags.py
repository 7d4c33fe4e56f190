"""Per-component command-line flags (and etcd's environment), by Kubernetes version.

Why a table in Python instead of flags spelled out in each template: the defaults, the user's
`config-extra-args` and the per-version removals must be merged in one place, in a fixed order,
so that

- extra args override defaults for every component (upstream panics or fails to render for
  kube-controller-manager, kube-scheduler, kube-proxy and container-engine);
- a flag that the configured version no longer has is never emitted, even if the user asked
  for it (`--container-runtime`, `--logtostderr`, `--network-plugin`,
  dockershim); dropping one raises a `RenderWarning` instead of a kubelet that will not start;
- units are byte-identical between runs (upstream iterates a Go map, so its order is random):
  flags are sorted by name.

Versions: `kubernetes-version` unset means the newest release we target (`LATEST_MINOR`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import paths as p
from eggo_nornir.render.diagnostics import warn

LATEST_MINOR = 35
KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

# klog's file/stderr flags were removed from every Kubernetes component in 1.26 (KEP-2845).
_KLOG_REMOVED = {
    f: 26
    for f in (
        "--logtostderr",
        "--alsologtostderr",
        "--log-dir",
        "--log-file",
        "--log-file-max-size",
        "--one-output",
        "--skip-headers",
        "--skip-log-headers",
        "--stderrthreshold",
        "--add-dir-header",
        "--log-backtrace-at",
    )
}

# flag -> first minor release that no longer accepts it
REMOVED_FLAGS: dict[str, dict[str, int]] = {
    "kubelet": {
        **_KLOG_REMOVED,
        # dockershim and its networking went away in 1.24
        "--network-plugin": 24,
        "--network-plugin-mtu": 24,
        "--cni-bin-dir": 24,
        "--cni-conf-dir": 24,
        "--cni-cache-dir": 24,
        "--docker-endpoint": 24,
        "--image-pull-progress-deadline": 24,
        "--experimental-dockershim-root-directory": 24,
        "--non-masquerade-cidr": 24,
        "--dynamic-config-dir": 24,
        "--container-runtime": 27,
        "--pod-infra-container-image": 35,
    },
    "kube-proxy": {**_KLOG_REMOVED},
    "kube-apiserver": {
        **_KLOG_REMOVED,
        "--kubelet-https": 22,
        "--insecure-port": 24,
        "--insecure-bind-address": 24,
        "--port": 24,
        "--address": 24,
    },
    "kube-controller-manager": {
        **_KLOG_REMOVED,
        "--port": 24,
        "--address": 24,
        "--experimental-cluster-signing-duration": 25,
        "--pod-eviction-timeout": 27,
    },
    "kube-scheduler": {
        **_KLOG_REMOVED,
        "--port": 24,
        "--address": 24,
        "--algorithm-provider": 23,
        "--policy-config-file": 23,
        "--policy-configmap": 23,
        "--policy-configmap-namespace": 23,
        "--use-legacy-policy-config": 23,
    },
}


DOCKERSHIM_LAST_MINOR = 23


def uses_dockershim(cfg: ClusterConfig) -> bool:
    """docker without cri-dockerd: only possible through the kubelet's in-tree dockershim (<= 1.23)."""
    return cfg.runtime == "docker" and not cfg.cri_dockerd


def effective_minor(cfg: ClusterConfig) -> int:
    """The Kubernetes minor the flag set targets: the configured one, else the newest we know.

    Unset with docker and no cri-dockerd (eggo's old default, as in the operator manual's
    example) can only mean a dockershim release, so that config targets 1.23, the last one.
    """
    minor = cfg.kube_minor()
    if minor is not None:
        return minor
    return DOCKERSHIM_LAST_MINOR if uses_dockershim(cfg) else LATEST_MINOR


def is_removed(component: str, flag: str, minor: int) -> bool:
    removed_in = REMOVED_FLAGS.get(component, {}).get(flag)
    return removed_in is not None and minor >= removed_in


def _arg_value(value: object) -> str:
    """YAML gives bools and ints; flags want Go's spelling (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalise_flag(name: str) -> str:
    """`v`, `-v` and `--v` all mean `--v`: users copy flags from docs in every spelling."""
    return "--" + str(name).strip().lstrip("-")


def merge(
    component: str, defaults: Mapping[str, str], extra: Mapping[str, object], minor: int
) -> list[tuple[str, str]]:
    """Defaults overridden by extra args, without removed flags, sorted by flag name."""
    merged: dict[str, str] = dict(defaults)
    for name, value in extra.items():
        merged[normalise_flag(name)] = _arg_value(value)
    out: list[tuple[str, str]] = []
    for flag in sorted(merged):
        if is_removed(component, flag, minor):
            warn(
                f"{component}: dropping {flag}: Kubernetes 1.{minor} no longer has it "
                f"(removed in 1.{REMOVED_FLAGS[component][flag]})"
            )
            continue
        out.append((flag, merged[flag]))
    return out


def etcd_servers(cfg: ClusterConfig) -> str:
    """Every etcd member's client URL, in config order (fixes upstream's stale lists on join)."""
    return ",".join(f"https://{_host(n.ip)}:2379" for n in cfg.with_role("etcd")) or "https://127.0.0.1:2379"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


# ---- control plane -------------------------------------------------------------------------


# Kubernetes minors whose kube-apiserver reads `anonymous` from an AuthenticationConfiguration
# (KEP-4633: beta and on by default in 1.32, GA with the v1 API in 1.34).
ANONYMOUS_CONFIG_MINOR = 32
AUTHENTICATION_CONFIG_V1_MINOR = 34


def anonymous_config_api(cfg: ClusterConfig, minor: int) -> str | None:
    """The AuthenticationConfiguration apiVersion that limits anonymous auth to health checks,
    or None when no such file is rendered (the user chose otherwise, set the flags
    themselves, or the version predates the `anonymous` field)."""
    extra = {normalise_flag(k) for k in cfg.extra_args("kube-apiserver")}
    if cfg.security.anonymous_auth != "health" or extra & {"--anonymous-auth", "--authentication-config"}:
        return None
    if minor < ANONYMOUS_CONFIG_MINOR:
        return None
    version = "v1" if minor >= AUTHENTICATION_CONFIG_V1_MINOR else "v1beta1"
    return f"apiserver.config.k8s.io/{version}"


def tls_defaults(cfg: ClusterConfig) -> dict[str, str]:
    """TLS floor and TLS 1.2 suites for every component that serves HTTPS (CIS 1.2.x, 1.3.x, 1.4.x)."""
    return {
        "--tls-cipher-suites": ",".join(cfg.security.tls_cipher_suites),
        "--tls-min-version": cfg.security.tls_min_version,
    }


def profiling_defaults(cfg: ClusterConfig) -> dict[str, str]:
    return {"--profiling": _arg_value(cfg.security.profiling)}


def apiserver_security_defaults(cfg: ClusterConfig, minor: int) -> dict[str, str]:
    """The CIS section 1.2 flags of `cfg.security` (audit, profiling, TLS, anonymous auth)."""
    sec = cfg.security
    flags = {
        **profiling_defaults(cfg),
        **tls_defaults(cfg),
        "--service-account-extend-token-expiration": _arg_value(sec.service_account_extend_token_expiration),
    }
    if sec.audit_log:
        flags.update(
            {
                "--audit-policy-file": p.AUDIT_POLICY,
                "--audit-log-path": p.AUDIT_LOG,
                "--audit-log-maxage": str(sec.audit_log_maxage),
                "--audit-log-maxbackup": str(sec.audit_log_maxbackup),
                "--audit-log-maxsize": str(sec.audit_log_maxsize),
            }
        )
    if anonymous_config_api(cfg, minor):
        flags["--authentication-config"] = p.AUTHENTICATION_CONFIG
    elif sec.anonymous_auth == "off" or (sec.anonymous_auth == "health" and minor < ANONYMOUS_CONFIG_MINOR):
        # no way to allow only the health paths: refuse anonymous requests (our probes authenticate)
        flags["--anonymous-auth"] = "false"
    return flags


def apiserver_defaults(cfg: ClusterConfig, node: Node, minor: int) -> dict[str, str]:
    flags = {
        **apiserver_security_defaults(cfg, minor),
        "--advertise-address": node.ip,
        "--allow-privileged": "true",
        "--authorization-mode": "Node,RBAC",
        "--client-ca-file": p.CA_CRT,
        "--enable-admission-plugins": "NodeRestriction",
        "--enable-bootstrap-token-auth": "true",
        "--encryption-provider-config": p.ENCRYPTION_CONFIG,
        "--etcd-cafile": p.ETCD_CA_CRT,
        "--etcd-certfile": p.APISERVER_ETCD_CLIENT_CRT,
        "--etcd-keyfile": p.APISERVER_ETCD_CLIENT_KEY,
        "--etcd-servers": etcd_servers(cfg),
        "--kubelet-client-certificate": p.APISERVER_KUBELET_CLIENT_CRT,
        "--kubelet-client-key": p.APISERVER_KUBELET_CLIENT_KEY,
        "--kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "--proxy-client-cert-file": p.FRONT_PROXY_CLIENT_CRT,
        "--proxy-client-key-file": p.FRONT_PROXY_CLIENT_KEY,
        "--requestheader-allowed-names": "front-proxy-client",
        "--requestheader-client-ca-file": p.FRONT_PROXY_CA_CRT,
        "--requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "--requestheader-group-headers": "X-Remote-Group",
        "--requestheader-username-headers": "X-Remote-User",
        "--secure-port": "6443",
        # upstream eggo hard-codes cluster.local here, breaking any other dns-domain
        "--service-account-issuer": f"https://kubernetes.default.svc.{cfg.dns_domain}",
        "--service-account-key-file": p.SA_PUB,
        "--service-account-signing-key-file": p.SA_KEY,
        "--service-cluster-ip-range": cfg.service.cidr,
        "--service-node-port-range": "30000-32767",
        "--tls-cert-file": p.APISERVER_CRT,
        "--tls-private-key-file": p.APISERVER_KEY,
        "--v": "2",
    }
    if cfg.enable_kubelet_serving:
        # only then are kubelet serving certs signed by the cluster CA, so only then can we verify them
        flags["--kubelet-certificate-authority"] = p.CA_CRT
    return flags


def controller_manager_defaults(cfg: ClusterConfig, *, allocate_node_cidrs: bool) -> dict[str, str]:
    """Secure port only, bound to loopback (the insecure 10252 is gone since 1.24).

    `allocate_node_cidrs` is False for the built-in bridge network, whose per-node CIDRs are
    assigned statically at render time (see render/network.py for why).
    """
    flags = {
        **profiling_defaults(cfg),
        **tls_defaults(cfg),
        "--allocate-node-cidrs": "true" if allocate_node_cidrs else "false",
        "--authentication-kubeconfig": p.CONTROLLER_MANAGER_CONF,
        "--authorization-kubeconfig": p.CONTROLLER_MANAGER_CONF,
        "--bind-address": "127.0.0.1",
        "--client-ca-file": p.CA_CRT,
        "--cluster-cidr": cfg.network.podcidr,
        "--cluster-name": cfg.cluster_id,
        "--cluster-signing-cert-file": p.CA_CRT,
        "--cluster-signing-key-file": p.CA_KEY,
        "--controllers": "*,bootstrapsigner,tokencleaner",
        "--kubeconfig": p.CONTROLLER_MANAGER_CONF,
        "--leader-elect": "true",
        "--requestheader-client-ca-file": p.FRONT_PROXY_CA_CRT,
        "--root-ca-file": p.CA_CRT,
        "--service-account-private-key-file": p.SA_KEY,
        "--service-cluster-ip-range": cfg.service.cidr,
        "--use-service-account-credentials": "true",
        "--v": "2",
    }
    if allocate_node_cidrs:
        flags["--node-cidr-mask-size"] = str(cfg.network.node_cidr_mask)
    return flags


def scheduler_defaults(cfg: ClusterConfig) -> dict[str, str]:
    return {
        **profiling_defaults(cfg),
        **tls_defaults(cfg),
        "--authentication-kubeconfig": p.SCHEDULER_CONF,
        "--authorization-kubeconfig": p.SCHEDULER_CONF,
        "--bind-address": "127.0.0.1",
        "--kubeconfig": p.SCHEDULER_CONF,
        "--leader-elect": "true",
        "--v": "2",
    }


# ---- worker ----------------------------------------------------------------------------------


def runtime_endpoint(cfg: ClusterConfig) -> str:
    """The CRI socket the kubelet talks to: the configured one, else the runtime's default."""
    if cfg.runtime_endpoint:
        return cfg.runtime_endpoint
    return {
        "containerd": "unix:///run/containerd/containerd.sock",
        "iSulad": "unix:///var/run/isulad.sock",
        "docker": "unix:///run/cri-dockerd.sock",
    }[cfg.runtime]


def kubelet_defaults(cfg: ClusterConfig, node: Node, minor: int) -> dict[str, str]:
    """Only what cannot live in the KubeletConfiguration; the rest is in /var/lib/kubelet/config.yaml.

    `containerRuntimeEndpoint` moved into the config file in 1.27; older kubelets need the flag,
    and before 1.24 also `--container-runtime=remote` for anything but dockershim, which in
    turn needs the CNI flags (all of them removed with it in 1.24, so never emitted after).
    """
    flags = {
        "--bootstrap-kubeconfig": p.BOOTSTRAP_KUBELET_CONF,
        "--config": p.KUBELET_CONFIG,
        "--hostname-override": node.name,
        "--kubeconfig": p.KUBELET_CONF,
        "--node-ip": node.ip,
        "--v": "2",
    }
    if uses_dockershim(cfg) and minor <= DOCKERSHIM_LAST_MINOR:
        # dockershim does pod networking itself and needs to be told to use CNI
        flags["--network-plugin"] = "cni"
        flags["--cni-bin-dir"] = ",".join(cfg.cni_bin_dirs)
        flags["--cni-conf-dir"] = p.CNI_CONF_DIR
        flags["--pod-infra-container-image"] = cfg.pause_image
    elif minor < 27:
        flags["--container-runtime-endpoint"] = runtime_endpoint(cfg)
        if minor < 24:
            flags["--container-runtime"] = "remote"
    return flags


def kube_proxy_defaults(cfg: ClusterConfig, node: Node) -> dict[str, str]:
    """kube-proxy ignores most flags when `--config` is given, so the defaults live in its config
    and only these stay flags; see `KUBE_PROXY_CONFIG_FLAGS` for how extra args reach the config."""
    return {
        "--config": p.KUBE_PROXY_CONFIG,
        "--hostname-override": node.name,
        "--v": "2",
    }


# kube-proxy flags that the KubeProxyConfiguration overrides silently when --config is set
# ("This parameter is ignored if a config file is specified by --config", cmd/kube-proxy):
# extra args naming one of these are written into the config instead. flag -> (dotted key, kind)
KUBE_PROXY_CONFIG_FLAGS: dict[str, tuple[str, str]] = {
    "--bind-address": ("bindAddress", "str"),
    "--cluster-cidr": ("clusterCIDR", "str"),
    "--config-sync-period": ("configSyncPeriod", "str"),
    "--conntrack-max-per-core": ("conntrack.maxPerCore", "int"),
    "--conntrack-min": ("conntrack.min", "int"),
    "--conntrack-tcp-timeout-close-wait": ("conntrack.tcpCloseWaitTimeout", "str"),
    "--conntrack-tcp-timeout-established": ("conntrack.tcpEstablishedTimeout", "str"),
    "--detect-local-mode": ("detectLocalMode", "str"),
    "--feature-gates": ("featureGates", "gates"),
    "--healthz-bind-address": ("healthzBindAddress", "str"),
    "--iptables-masquerade-bit": ("iptables.masqueradeBit", "int"),
    "--iptables-min-sync-period": ("iptables.minSyncPeriod", "str"),
    "--iptables-sync-period": ("iptables.syncPeriod", "str"),
    "--ipvs-scheduler": ("ipvs.scheduler", "str"),
    "--ipvs-strict-arp": ("ipvs.strictARP", "bool"),
    "--ipvs-sync-period": ("ipvs.syncPeriod", "str"),
    "--kube-api-burst": ("clientConnection.burst", "int"),
    "--kube-api-content-type": ("clientConnection.contentType", "str"),
    "--kube-api-qps": ("clientConnection.qps", "float"),
    "--kubeconfig": ("clientConnection.kubeconfig", "str"),
    "--masquerade-all": ("iptables.masqueradeAll", "bool"),
    "--metrics-bind-address": ("metricsBindAddress", "str"),
    "--nodeport-addresses": ("nodePortAddresses", "list"),
    "--oom-score-adj": ("oomScoreAdj", "int"),
    "--profiling": ("enableProfiling", "bool"),
    "--proxy-mode": ("mode", "str"),
}


def _convert(kind: str, value: str) -> object:
    if kind == "bool":
        return value.strip().lower() in ("1", "true", "yes", "on")
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "list":
        return [v.strip() for v in value.split(",") if v.strip()]
    if kind == "gates":
        gates: dict[str, bool] = {}
        for item in value.split(","):
            if "=" in item:
                k, v = item.split("=", 1)
                gates[k.strip()] = v.strip().lower() == "true"
        return gates
    return value


def kube_proxy_config_overrides(extra: Mapping[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """Split kube-proxy extra args into (dotted config key -> value) and the flags left over."""
    config: dict[str, object] = {}
    rest: dict[str, str] = {}
    for name, value in extra.items():
        flag = normalise_flag(name)
        text = _arg_value(value)
        if flag in KUBE_PROXY_CONFIG_FLAGS:
            key, kind = KUBE_PROXY_CONFIG_FLAGS[flag]
            config[key] = _convert(kind, text)
        else:
            rest[flag] = text
    return config, rest


def set_in(doc: dict[str, Any], path: Sequence[str], value: object) -> None:
    """Set `value` at `path` in a config tree, making (or replacing) the maps on the way.

    Why here: extra args that a component reads from its config file instead of a flag (the
    container runtime's, kube-proxy's) are written into the rendered tree by this one rule.
    """
    cur = doc
    for part in path[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[path[-1]] = value


# ---- etcd --------------------------------------------------------------------------------------


def etcd_env_name(name: str) -> str:
    """etcd extra args are environment variables, as in upstream eggo; accept `--quota-backend-bytes`
    too and map it the way etcd does (`ETCD_QUOTA_BACKEND_BYTES`)."""
    name = str(name).strip()
    if name.startswith("-"):
        return "ETCD_" + name.lstrip("-").replace("-", "_").upper()
    return name


def etcd_peer_url(ip: str) -> str:
    """A member's peer URL: what `--initial-cluster` and `member add --peer-urls` name it by."""
    return f"https://{_host(ip)}:2380"


def etcd_initial_cluster(members: Iterable[tuple[str, str]]) -> str:
    """`name=peer-url,...` from (name, peer URL) pairs, in the given order."""
    return ",".join(f"{name}={url}" for name, url in members)


def etcd_bootstrap_env(state: str, members: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`/etc/etcd/bootstrap.conf`: how a member without data starts (`new` or `existing`).

    Why not in etcd.conf: etcd reads the initial cluster only when its data dir is empty, yet
    the list changes with every join and delete. Rendered into etcd.conf it would change every
    member's file, and restart every member at once, for a setting they all ignore. So the deploy
    writes it once, before a member's first start, from what is true then (all members of a new
    cluster, or the live member list plus the joiner), and never touches it again.
    """
    if state not in ("new", "existing"):
        raise ValueError(f"etcd initial cluster state must be new or existing, not {state!r}")
    return [
        ("ETCD_INITIAL_CLUSTER", etcd_initial_cluster(members)),
        ("ETCD_INITIAL_CLUSTER_STATE", state),
    ]


def etcd_env(cfg: ClusterConfig, node: Node) -> list[tuple[str, str]]:
    """`/etc/etcd/etcd.conf`: mTLS for clients and peers; the same on every run and every join.

    Fixes upstream's swapped ETCDCTL cert/key and uses etcdctl v3's variable names. Metrics are
    served on loopback over plain HTTP, as kubeadm does, so a local health probe needs no cert.
    The initial cluster is not here but in the bootstrap file (see `etcd_bootstrap_env`).
    """
    ip = _host(node.ip)
    env = {
        "ETCD_NAME": node.name,
        "ETCD_DATA_DIR": p.ETCD_DATA_DIR,
        "ETCD_LISTEN_CLIENT_URLS": f"https://127.0.0.1:2379,https://{ip}:2379",
        "ETCD_ADVERTISE_CLIENT_URLS": f"https://{ip}:2379",
        "ETCD_LISTEN_PEER_URLS": f"https://{ip}:2380",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"https://{ip}:2380",
        "ETCD_LISTEN_METRICS_URLS": "http://127.0.0.1:2381",
        "ETCD_INITIAL_CLUSTER_TOKEN": cfg.etcd_token,
        "ETCD_SNAPSHOT_COUNT": "10000",
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_TRUSTED_CA_FILE": p.ETCD_CA_CRT,
        "ETCD_CERT_FILE": p.ETCD_SERVER_CRT,
        "ETCD_KEY_FILE": p.ETCD_SERVER_KEY,
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_TRUSTED_CA_FILE": p.ETCD_CA_CRT,
        "ETCD_PEER_CERT_FILE": p.ETCD_PEER_CRT,
        "ETCD_PEER_KEY_FILE": p.ETCD_PEER_KEY,
        "ETCDCTL_ENDPOINTS": "https://127.0.0.1:2379",
        "ETCDCTL_CACERT": p.ETCD_CA_CRT,
        "ETCDCTL_CERT": p.ETCD_HEALTHCHECK_CRT,
        "ETCDCTL_KEY": p.ETCD_HEALTHCHECK_KEY,
    }
    for name, value in cfg.extra_args("etcd").items():
        env[etcd_env_name(name)] = _arg_value(value)
    return sorted(env.items())


def flag_names(flags: Iterable[tuple[str, str]]) -> list[str]:
    return [name for name, _ in flags]
