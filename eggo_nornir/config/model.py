"""The one typed model that both deploy.yaml dialects load into.

Why a separate, frozen model: everything downstream (rendering, inventory, tasks, the
report) must see one normalised view of the cluster, whatever dialect the user wrote.
Nothing here parses YAML or validates; `loader.py` builds these objects and
`validate.py` checks them. Every default of upstream eggo lives here,
so a reader can see at a glance what an omitted key means.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["master", "worker", "etcd", "loadbalance"]
ROLES: tuple[Role, ...] = ("master", "worker", "etcd", "loadbalance")
Arch = Literal["amd64", "arm64"]
ARCHES: tuple[Arch, ...] = ("amd64", "arm64")
ARCH_ALIASES: dict[str, Arch] = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm": "arm64",
}
PackageType = Literal["repo", "pkg", "bin", "binary", "file", "dir", "image", "yaml", "shell"]
PACKAGE_TYPES: tuple[str, ...] = ("repo", "pkg", "bin", "binary", "file", "dir", "image", "yaml", "shell")
Schedule = Literal["prejoin", "postjoin", "precleanup", "postcleanup"]
SCHEDULES: tuple[str, ...] = ("prejoin", "postjoin", "precleanup", "postcleanup")
Runtime = Literal["containerd", "docker", "iSulad"]
KeyAlgorithm = Literal["ecdsa-p256", "rsa-2048", "rsa-4096"]

# What a config value may look like where it becomes a word on a command line or a file
# name on a host, so that no value can inject an option or a path: a package name cannot
# start with `-` (it would be an option of apt-get/dnf/rpm), a flag name is one lower-case
# flag, a file name has no `/` or `..`.
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@:-]*$")
FLAG_NAME = re.compile(r"^--[a-z0-9][a-z0-9.-]*$")
TLS_SUITE_NAME = re.compile(r"^TLS_[A-Z0-9_]+$")


def plain_name(name: str) -> bool:
    """A file name that stays in its dir on the host: no `/` (or `\\`), no `..`, and no
    leading `-`, so it can be neither a path out of the dir nor an option of a command."""
    return (
        bool(name)
        and not any(c in name for c in "/\\")
        and ".." not in name
        and name != "."
        and not name.startswith("-")
    )


# Upstream's dst whitelist (pathwhitelist.go): `exact_or_below` may be the dir itself or
# anything under it, `strictly_below` only what is under it. We enforce it at load time,
# after normalisation, instead of only at removal time as upstream does.
DST_WHITELIST_EXACT_OR_BELOW: tuple[str, ...] = (
    "/opt/cni/bin",
    "/usr/libexec/cni",
    "/etc/cni/net.d",
    "/etc/kubernetes",
    "/root/.eggo",
)
DST_WHITELIST_STRICTLY_BELOW: tuple[str, ...] = (
    "/usr/bin",
    "/usr/local/bin",
    "/usr/lib/systemd/system",
    "/etc/systemd/system",
)

# install categories of the upstream dialect and the role each one installs on
CATEGORY_ROLE: dict[str, Role] = {
    "kubernetes-master": "master",
    "kubernetes-worker": "worker",
    "network": "worker",
    "etcd": "etcd",
    "loadbalance": "loadbalance",
    "container": "worker",
    "image": "worker",
    "dns": "master",
}

COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "container-engine",
)


def normalise_arch(value: str) -> Arch | None:
    """Map user spellings (`x86_64`, `aarch64`, any case) to the two arches we ship bundles for."""
    return ARCH_ALIASES.get(str(value).strip().lower())


@dataclass(frozen=True)
class Node:
    """One machine, with every role it plays merged in (the same IP may appear in several role lists).

    `username`/`password`/`private_key_path` are the effective credentials: a per-host
    value if the entry gave one, else the global one. The password is excluded from
    repr so it cannot leak through logging of the object.
    """

    name: str
    ip: str
    port: int = 22
    arch: Arch = "amd64"
    roles: tuple[Role, ...] = ()
    username: str = "root"
    password: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    sudo_password: str | None = field(default=None, repr=False)

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def is_master(self) -> bool:
        return "master" in self.roles

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles

    @property
    def is_etcd(self) -> bool:
        return "etcd" in self.roles

    @property
    def is_loadbalance(self) -> bool:
        return "loadbalance" in self.roles


@dataclass(frozen=True)
class LoadBalance:
    """The nginx stream load balancer in front of every master's apiserver."""

    name: str
    ip: str
    port: int = 22
    arch: Arch = "amd64"
    bind_port: int = 8443


@dataclass(frozen=True)
class Bastion:
    """The jump host every SSH connection to the nodes goes through (ssh's ProxyJump,
    k0sctl's `bastion:`), for nodes the controller cannot reach directly.

    Credentials are the effective ones: the block's own `password`/`private-key-path`
    if it gives either, else the global ones. Only the controller uses it: the nodes
    still reach each other directly (the bundle fan-out, etcd, the apiserver).
    """

    ip: str
    port: int = 22
    username: str = "root"
    password: str | None = field(default=None, repr=False)
    private_key_path: str | None = None


@dataclass(frozen=True)
class DNSConfig:
    corednstype: Literal["binary", "pod"] = "binary"
    imageversion: str = "1.8.4"
    replicas: int = 2


@dataclass(frozen=True)
class ServiceConfig:
    cidr: str = "10.32.0.0/16"
    dnsaddr: str = "10.32.0.10"
    gateway: str = "10.32.0.1"
    dns: DNSConfig = field(default_factory=DNSConfig)

    @property
    def first_ip(self) -> str:
        """The `kubernetes` Service ClusterIP: always the first host of the service CIDR."""
        return str(next(iter(ipaddress.ip_network(self.cidr, strict=False).hosts())))  # /32: a list


@dataclass(frozen=True)
class NetworkConfig:
    """Pod network. `plugin` is `bridge` (built in, no internet needed) or the name of an addon
    manifest such as `calico`; `plugin_args` carries the manual's `NetworkYamlPath`."""

    podcidr: str = "10.244.0.0/16"
    plugin: str = "bridge"
    plugin_args: dict[str, str] = field(default_factory=dict)
    node_cidr_mask: int = 24


@dataclass(frozen=True)
class CertSANs:
    dnsnames: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Port:
    port: int
    protocol: Literal["tcp", "udp"] = "tcp"


@dataclass(frozen=True)
class Package:
    """One package after comma-splitting of `name`; `role` is the role whose nodes install it,
    `category` where it came from (`kubernetes-master`, `addition`, the manual's role key...)."""

    name: str
    type: PackageType
    role: Role
    category: str
    dst: str | None = None
    schedule: Schedule | None = None
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class PackageSource:
    type: str = "tar.gz"
    dstpath: str = "/root/.eggo/package"
    srcpath: dict[Arch, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Addon:
    """The manual dialect's `addons: [{type: file, filename}]`: a manifest from the bundle's
    addons/ (or file/) dir, applied with kubectl once the cluster is up."""

    type: str
    filename: str


@dataclass(frozen=True)
class PKIConfig:
    """Beyond eggo: key algorithm and validity, kubeadm-like defaults."""

    key_algorithm: KeyAlgorithm = "ecdsa-p256"
    ca_validity_days: int = 3650
    cert_validity_days: int = 365
    renew_before_days: int = 30


AnonymousAuth = Literal["health", "off", "on"]
EncryptionProvider = Literal["secretbox", "aesgcm", "aescbc"]

# Go's names of the TLS 1.2 suites CIS (and kubeadm's hardening guides) keep: ECDHE key exchange
# with an AEAD cipher only. TLS 1.3 suites are not configurable in Go and always on.
STRONG_TLS_CIPHER_SUITES: tuple[str, ...] = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
TLS_VERSIONS: tuple[str, ...] = ("VersionTLS12", "VersionTLS13")


@dataclass(frozen=True)
class SecurityConfig:
    """The CIS Kubernetes Benchmark controls (issue 15, item 6), each on by default.

    Why a block of its own instead of only `config-extra-args`: several controls are not one
    flag but a file plus flags (the audit policy, the anonymous-auth AuthenticationConfiguration,
    the kernel sysctls that `protectKernelDefaults` needs), and turning one off must remove all
    of its parts together. Plain flags can still be overridden one by one with extra args,
    which always win over these defaults.
    """

    audit_log: bool = True
    audit_log_maxage: int = 30
    audit_log_maxbackup: int = 10
    audit_log_maxsize: int = 100
    profiling: bool = False
    anonymous_auth: AnonymousAuth = "health"
    tls_min_version: str = "VersionTLS12"
    tls_cipher_suites: tuple[str, ...] = STRONG_TLS_CIPHER_SUITES
    service_account_extend_token_expiration: bool = False
    protect_kernel_defaults: bool = True
    encryption_provider: EncryptionProvider = "secretbox"


@dataclass(frozen=True)
class ClusterConfig:
    """A whole, validated cluster description.

    `nodes` holds each machine once, in first-appearance order (masters, workers, etcds,
    loadbalance), with merged roles. `masters`, `workers`, `etcds` keep the user's order as
    node names; the first master is the control-plane init node. When the user gave no
    `etcds`, they are the masters (upstream's fillEtcdsIfNotExist).
    """

    cluster_id: str
    nodes: tuple[Node, ...]
    masters: tuple[str, ...]
    workers: tuple[str, ...] = ()
    etcds: tuple[str, ...] = ()
    loadbalance: LoadBalance | None = None
    bastion: Bastion | None = None
    username: str = "root"
    password: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    external_ca: bool = False
    external_ca_path: str = ""
    service: ServiceConfig = field(default_factory=ServiceConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    apiserver_endpoint: str = ""
    apiserver_cert_sans: CertSANs = field(default_factory=CertSANs)
    apiserver_timeout_seconds: float = 120.0
    etcd_external: bool = False
    etcd_token: str = "etcd-cluster"
    dns_vip: str = "10.32.0.10"
    dns_domain: str = "cluster.local"
    pause_image: str = "registry.k8s.io/pause:3.10"
    network_plugin: str = "cni"
    enable_kubelet_serving: bool = True
    cni_bin_dirs: tuple[str, ...] = ("/opt/cni/bin",)
    runtime: Runtime = "containerd"
    runtime_endpoint: str = ""
    cri_dockerd: bool = False
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    # component -> {flag or env name -> value}; keys keep their leading dashes for flags
    config_extra_args: dict[str, dict[str, str]] = field(default_factory=dict)
    # role -> extra ports (built-in per-role ports are added by the firewall task, not here)
    open_ports: dict[Role, tuple[Port, ...]] = field(default_factory=dict)
    package_source: PackageSource | None = None
    packages: tuple[Package, ...] = ()
    addons: tuple[Addon, ...] = ()
    kubernetes_version: str | None = None
    pki: PKIConfig = field(default_factory=PKIConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # which dialect the file was written in: "manual" (operator manual) or "upstream"
    dialect: Literal["manual", "upstream"] = "upstream"
    # what the loader accepted but the user should know (one line each), printed by every command
    warnings: tuple[str, ...] = field(default=(), compare=False)

    # ---- lookups used everywhere -------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def with_role(self, role: Role) -> tuple[Node, ...]:
        """Nodes playing `role`, in the user's order for that role."""
        order = {
            "master": self.masters,
            "worker": self.workers,
            "etcd": self.etcds,
            "loadbalance": (self.loadbalance.name,) if self.loadbalance else (),
        }[role]
        return tuple(self.node(n) for n in order)

    @property
    def first_master(self) -> Node:
        return self.node(self.masters[0])

    @property
    def arches(self) -> tuple[Arch, ...]:
        """Every arch in use, etcd-only and LB nodes included (upstream forgets etcd-only ones)."""
        return tuple(a for a in ARCHES if any(n.arch == a for n in self.nodes))

    @property
    def endpoint_host(self) -> str:
        return self.apiserver_endpoint.rsplit(":", 1)[0].strip("[]")

    @property
    def endpoint_port(self) -> int:
        return int(self.apiserver_endpoint.rsplit(":", 1)[1])

    @property
    def apiserver_url(self) -> str:
        host = self.endpoint_host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"https://{host}:{self.endpoint_port}"

    def packages_for(self, node: Node) -> tuple[Package, ...]:
        """Packages a node installs: those of every role it plays, in config order, de-duplicated."""
        seen: set[tuple[str, str, str | None]] = set()
        out: list[Package] = []
        for p in self.packages:
            key = (p.name, p.type, p.dst)
            if p.role in node.roles and key not in seen:
                seen.add(key)
                out.append(p)
        return tuple(out)

    def extra_args(self, component: str) -> dict[str, str]:
        return dict(self.config_extra_args.get(component, {}))

    def kube_minor(self) -> int | None:
        """Minor version of `kubernetes-version` (1.35.4 -> 35), or None when unset."""
        if not self.kubernetes_version:
            return None
        parts = self.kubernetes_version.lstrip("v").split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
