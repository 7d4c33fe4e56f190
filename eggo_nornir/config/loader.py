"""Read a deploy.yaml, in either dialect, into the typed model.

Why a hand-written reader instead of a schema library: users write two dialects (the
operator manual's and upstream eggo's current one), YAML 1.1 turns `password: 123456`
into an int and `kubernetes-version: 1.30` into the float 1.3, and every problem must
be reported with the key path *the user wrote* (`nodes[0]` in the manual dialect,
`workers[0]` in upstream's). So this module converts field by field, records a
`Problem` instead of raising, and remembers where each host entry and package came
from (`Origins`) so that `validate.py` can name it later.

This module checks only what conversion needs (types, enums, durations, port ranges,
arch names). Cross-field and semantic rules (CIDRs, duplicates, whitelists, files on
disk) live in `validate.py`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eggo_nornir.config.model import (
    CATEGORY_ROLE,
    COMPONENTS,
    FLAG_NAME,
    PACKAGE_TYPES,
    ROLES,
    SCHEDULES,
    TLS_SUITE_NAME,
    TLS_VERSIONS,
    Addon,
    Arch,
    Bastion,
    CertSANs,
    ClusterConfig,
    DNSConfig,
    LoadBalance,
    NetworkConfig,
    Node,
    Package,
    PackageSource,
    PKIConfig,
    Port,
    Role,
    SecurityConfig,
    ServiceConfig,
    normalise_arch,
    plain_name,
)
from eggo_nornir.errors import ConfigError, Problem, join_key, problem

# Keys whose presence marks the operator manual's dialect (`addons` and `plugin-args`
# are accepted in both dialects, so they do not decide).
MANUAL_ONLY_KEYS: tuple[str, ...] = ("nodes", "package-src", "pacakges", "packages")

# Role keys of `open-ports`, `install.addition` and the manual's `pacakges`: the
# manual calls workers `node`.
ROLE_KEYS: dict[str, Role] = {
    "master": "master",
    "worker": "worker",
    "node": "worker",
    "etcd": "etcd",
    "loadbalance": "loadbalance",
}

# Upstream's built-in repo packages for an empty install category
# (pkg/utils/infra/infra.go). `container` depends on the runtime: see
# RUNTIME_PACKAGE. `dns` applies only to binary CoreDNS.
DEFAULT_PACKAGES: dict[str, tuple[str, ...]] = {
    "kubernetes-master": ("kubernetes-client", "kubernetes-master"),
    "kubernetes-worker": ("kubernetes-client", "kubernetes-node", "kubernetes-kubelet"),
    "network": ("containernetworking-plugins",),
    "etcd": ("etcd",),
    "loadbalance": ("nginx",),
    "container": (),
    "image": (),
    "dns": ("coredns",),
}
# Upstream always defaults to docker-engine because its default runtime was docker;
# ours is containerd, so the default repo package follows the chosen runtime.
RUNTIME_PACKAGE: dict[str, str] = {"docker": "docker-engine", "containerd": "containerd", "iSulad": "iSulad"}

RUNTIMES: dict[str, str] = {"docker": "docker", "isulad": "iSulad", "containerd": "containerd"}
# Filled when `runtime-endpoint` is empty, so the kubelet flag never depends on a
# distro default. docker without cri-dockerd uses the in-tree dockershim (k8s < 1.24).
DEFAULT_RUNTIME_ENDPOINTS: dict[str, str] = {
    "containerd": "unix:///run/containerd/containerd.sock",
    "iSulad": "unix:///var/run/isulad.sock",
    "docker": "",
}
CRI_DOCKERD_ENDPOINT = "unix:///run/cri-dockerd.sock"
DEFAULT_SHELL_TIMEOUT = 30.0  # upstream eggo's default for `shell` hooks

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.+-]+)?$")
_ETCD_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


DOCKER_PACKAGES = ("docker-engine", "docker-ce", "docker.io", "docker", "moby-engine")


def infer_runtime(packages: Iterable[Package]) -> str:
    """The runtime a config's packages install when it has no `runtime:` key: docker's
    packages -> docker, iSulad's -> iSulad, otherwise containerd (the default)."""
    names = {p.name.lower() for p in packages}
    if names & set(DOCKER_PACKAGES):
        return "docker"
    if "isulad" in names:
        return "iSulad"
    return "containerd"


# --------------------------------------------------------------------------- origins
@dataclass
class HostEntry:
    """One entry of a role list as the user wrote it, before merging by IP.

    Kept because duplicate checks must name *entries* (`masters[0]`, `nodes[0]`), which
    the merged `Node` no longer knows. Credentials are only the explicit per-host ones.
    """

    path: str
    role: Role
    index: int
    name: str
    ip: str
    port: int
    arch: Arch | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    sudo_password: str | None = field(default=None, repr=False)


@dataclass
class Origins:
    """Where things came from in the user's file, so problems name the user's key paths."""

    dialect: str = "upstream"
    workers_key: str = "workers"
    hosts: list[HostEntry] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)  # parallel to ClusterConfig.packages
    package_source: str = "install.package-source"
    srcpath: dict[str, str] = field(default_factory=dict)  # arch -> key path
    # paths whose value had the wrong type or shape: semantic checks skip them
    bad: set[str] = field(default_factory=set)

    def srcpath_key(self, arch: str) -> str:
        if arch in self.srcpath:
            return self.srcpath[arch]
        if self.dialect == "manual" and self.package_source == "package-src":
            return "package-src." + ("armsrc" if arch == "arm64" else "x86src")
        return f"{self.package_source}.srcpath.{arch}"


# --------------------------------------------------------------------------- YAML
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys, which PyYAML silently collapses
    (two `network:` blocks would otherwise lose the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; unreadable files and YAML errors become a clean ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem("", f"{path}: no such file")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem("", f"{path}: is a directory, not a deploy.yaml")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([Problem("", f"{path}: cannot read: {reason}")]) from None
    return parse_yaml(text, str(path))


# ` //` after a value, outside quotes and comments: the manual prints its example annotated so
_SLASH_ANNOTATION = re.compile(r"""^[^#"'\n]*\s//(\s|$)""")


def slash_annotations(text: str) -> list[int]:
    """Line numbers (1-based) carrying a ` //` annotation, which YAML would keep in the value."""
    return [i for i, line in enumerate(text.splitlines(), 1) if _SLASH_ANNOTATION.match(line)]


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; errors carry the line and column, never a traceback.

    The manual's example, as printed, annotates values with ` // ...`; YAML has no such
    comments (the text would end up inside the values), so that is one clear problem.
    """
    if lines := slash_annotations(text):
        more = f" and {len(lines) - 1} more line{'s' if len(lines) > 2 else ''}" if len(lines) > 1 else ""
        raise ConfigError(
            [
                Problem(
                    "",
                    f"{source}:{lines[0]}{more}: ' //' annotations (as in the manual's printed example) "
                    "are not YAML comments; write them as '# ...'",
                )
            ]
        )
    try:
        return yaml.load(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError([Problem("", f"{where}: invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"{source}: invalid YAML: {exc}")]) from None


# --------------------------------------------------------------------------- helpers
def parse_duration(text: str) -> float | None:
    """Parse a Go duration (`30s`, `2m`, `1h30m`, `500ms`) into seconds; None if invalid.

    A bare number is rejected (as Go does), except `0`, so that `timeout: 30` gets a
    clear "add a unit" message rather than a silent guess.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total if text else None


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, for writing configs back (`120.0` -> `120s`)."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _nth_address(cidr: str, n: int) -> str | None:
    """The n-th address of a CIDR (0 = network address), or None if the CIDR is invalid."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return str(net.network_address + n) if net.num_addresses > n else None


def _machine_key(h: HostEntry) -> str:
    """Entries merge by IP; one without a usable IP (already a problem) stays on its own."""
    return h.ip or f"<no ip: {h.path}>"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Reader:
    """Typed getters that record a Problem (with the user's key path) instead of raising.

    Every getter returns a usable value (the default on error) so conversion continues
    and all problems of a file are found in one pass.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.bad: set[str] = set()

    def fail(self, path: str, message: str, *got: object) -> None:
        self.problems.append(problem(path, message, *got))
        self.bad.add(path)

    def wrong_type(self, path: str, expected: str, value: Any) -> None:
        self.fail(path, f"must be {expected}, not {_type_name(value)}")

    def text(
        self, m: dict[str, Any], key: str, path: str, default: str | None = None, *, secret: bool = False
    ) -> str | None:
        return self.scalar(m.get(key), _join(path, key), default, secret=secret)

    def scalar(
        self, value: Any, path: str, default: str | None = None, *, secret: bool = False
    ) -> str | None:
        """A string; ints are accepted (`password: 123456`), floats and booleans are not,
        because YAML already mangled them (`1.30` -> 1.3, `yes` -> true). An empty string
        means "not set", as in upstream. Secrets are never echoed back."""
        if value is None:
            return default
        if isinstance(value, (bool, float)):
            message = f"must be a string, not {_type_name(value)}: quote it"
            if secret:
                self.fail(path, message)
            else:
                self.fail(path, message, value)
            return default
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            self.wrong_type(path, "a string", value)
            return default
        if not secret:
            value = value.strip()
        return value if value != "" else default

    def integer(
        self,
        m: dict[str, Any],
        key: str,
        path: str,
        default: int | None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> int | None:
        path = _join(path, key)
        value = m.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be a whole number", value)
            return default
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            self.fail(path, f"must be {bounds}", value)
            return default
        return value

    def port(self, m: dict[str, Any], key: str, path: str, default: int | None) -> int | None:
        return self.integer(m, key, path, default, 1, 65535)

    def boolean(self, m: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
        path = _join(path, key)
        value = m.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            self.fail(path, "must be true or false", value)
            return default
        return value

    def seq(self, m: dict[str, Any], key: str, path: str) -> list[Any]:
        return self.as_seq(m.get(key), _join(path, key))

    def as_seq(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.wrong_type(path, "a list", value)
            return []
        return value

    def mapping(self, m: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        path = _join(path, key)
        value = m.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.wrong_type(path, "a mapping", value)
            return {}
        return value

    def str_list(self, m: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
        path = _join(path, key)
        items = (self.scalar(v, f"{path}[{i}]") for i, v in enumerate(self.as_seq(m.get(key), path)))
        return tuple(t for t in items if t is not None)

    def choice(self, m: dict[str, Any], key: str, path: str, choices: dict[str, str], default: str) -> str:
        """A case-insensitive enum; `choices` maps lower-case spellings to canonical values."""
        value = self.text(m, key, path)
        if value is None:
            return default
        canonical = choices.get(value.lower())
        if canonical is None:
            options = ", ".join(sorted(set(choices.values())))
            self.fail(_join(path, key), f"must be one of {options}", value)
            return default
        return canonical

    def duration(self, m: dict[str, Any], key: str, path: str, default: float | None) -> float | None:
        path = _join(path, key)
        value = m.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.fail(path, "must be a duration with a unit, such as 30s or 2m", value)
            return default
        if not isinstance(value, str) or (seconds := parse_duration(value)) is None:
            self.fail(path, "must be a duration such as 30s, 2m or 1h30m", value)
            return default
        return seconds

    def local_path(self, m: dict[str, Any], key: str, path: str) -> str | None:
        """A path on the controller: `~` expands, a relative path resolves against the
        config file's dir (so a config and its tarballs can move together)."""
        return self.as_local_path(m.get(key), _join(path, key))

    def as_local_path(self, value: Any, path: str) -> str | None:
        value = self.scalar(value, path)
        if value is None:
            return None
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())


# --------------------------------------------------------------------------- builder
class _Builder:
    """Converts one raw deploy.yaml mapping into a ClusterConfig plus its Origins."""

    def __init__(self, data: dict[str, Any], base_dir: Path) -> None:
        self.data = data
        self.r = _Reader(base_dir)
        manual = any(k in data for k in MANUAL_ONLY_KEYS)
        self.origins = Origins(dialect="manual" if manual else "upstream")
        self.warnings: list[str] = []

    # ---- top level ------------------------------------------------------------
    def build(self) -> ClusterConfig:
        r, d = self.r, self.data
        cluster_id = r.text(d, "cluster-id", "") or ""
        username = r.text(d, "username", "", "root") or "root"
        password = r.text(d, "password", "", secret=True)
        key_path = r.local_path(d, "private-key-path", "")
        runtime = r.choice(d, "runtime", "", RUNTIMES, "containerd")
        cri_dockerd = r.boolean(d, "cri-dockerd", "")
        service = self._service()
        network = self._network()
        nodes, roles, lb = self._hosts(cluster_id, username, password, key_path)
        origins_packages = len(self.origins.packages)
        packages, package_source = self._install(runtime, service.dns.corednstype)
        if "runtime" not in d and (inferred := infer_runtime(packages)) != runtime:
            # the config ships another runtime's packages: follow them (upstream's own samples
            # carry docker's packages and no `runtime:` key); redo the defaults for that runtime
            runtime = inferred
            del self.origins.packages[origins_packages:]
            packages, package_source = self._install(runtime, service.dns.corednstype)
        endpoint = r.text(d, "apiserver-endpoint", "") or self._default_endpoint(nodes, roles, lb)
        default_endpoint = CRI_DOCKERD_ENDPOINT if runtime == "docker" and cri_dockerd else ""
        self.origins.bad = r.bad
        return ClusterConfig(
            cluster_id=cluster_id,
            nodes=nodes,
            masters=roles["master"],
            workers=roles["worker"],
            etcds=roles["etcd"],
            loadbalance=lb,
            bastion=self._bastion(username, password, key_path),
            username=username,
            password=password,
            private_key_path=key_path,
            external_ca=r.boolean(d, "external-ca", ""),
            external_ca_path=r.local_path(d, "external-ca-path", "") or "",
            service=service,
            network=network,
            apiserver_endpoint=endpoint,
            apiserver_cert_sans=self._sans(),
            apiserver_timeout_seconds=r.duration(d, "apiserver-timeout", "", 120.0) or 120.0,
            etcd_external=r.boolean(d, "etcd-external", ""),
            etcd_token=r.text(d, "etcd-token", "", "etcd-cluster") or "etcd-cluster",
            dns_vip=r.text(d, "dns-vip", "", service.dnsaddr) or service.dnsaddr,
            dns_domain=r.text(d, "dns-domain", "", "cluster.local") or "cluster.local",
            pause_image=r.text(d, "pause-image", "", ClusterConfig.pause_image) or ClusterConfig.pause_image,
            network_plugin=r.text(d, "network-plugin", "", "cni") or "cni",
            enable_kubelet_serving=r.boolean(d, "enable-kubelet-serving", "", True),
            cni_bin_dirs=self._cni_bin_dirs(),
            runtime=runtime,  # type: ignore[arg-type]  # checked against RUNTIMES above; str, not the Literal
            runtime_endpoint=r.text(d, "runtime-endpoint", "")
            or DEFAULT_RUNTIME_ENDPOINTS[runtime]
            or default_endpoint,
            cri_dockerd=cri_dockerd,
            registry_mirrors=r.str_list(d, "registry-mirrors", ""),
            insecure_registries=r.str_list(d, "insecure-registries", ""),
            config_extra_args=self._extra_args(),
            open_ports=self._open_ports(),
            package_source=package_source,
            packages=packages,
            addons=self._addons(),
            kubernetes_version=self._kubernetes_version(),
            pki=self._pki(),
            security=self._security(),
            # why ignored: set from DIALECTS only; typed str in Origins
            dialect=self.origins.dialect,  # type: ignore[arg-type]
            warnings=tuple(self.warnings),
        )

    def _bastion(self, username: str, password: str | None, key_path: str | None) -> Bastion | None:
        """The `bastion:` block; without its own password or key it uses the global ones.
        An empty `bastion:` (as `template` writes it) means none."""
        r = self.r
        if self.data.get("bastion") is None:
            return None
        raw = r.mapping(self.data, "bastion", "")
        if "bastion" in r.bad:
            return None
        ip = r.text(raw, "ip", "bastion")
        if ip is None:
            if "bastion.ip" not in r.bad:
                r.fail("bastion.ip", "is required: the address the controller reaches the bastion on")
            return None
        own_password = r.text(raw, "password", "bastion", secret=True)
        own_key = r.local_path(raw, "private-key-path", "bastion")
        explicit = bool(own_password or own_key)
        return Bastion(
            ip=ip,
            port=r.port(raw, "port", "bastion", 22) or 22,
            username=r.text(raw, "username", "bastion") or username,
            password=own_password if explicit else password,
            private_key_path=own_key if explicit else key_path,
        )

    def _kubernetes_version(self) -> str | None:
        value = self.data.get("kubernetes-version")
        if isinstance(value, float):
            self.r.fail(
                "kubernetes-version",
                'must be a string: YAML read it as a number; quote it, e.g. "1.30"',
                value,
            )
            return None
        text = self.r.text(self.data, "kubernetes-version", "")
        if text is not None and not _VERSION.match(text):
            self.r.fail("kubernetes-version", "must be a version such as 1.30 or v1.30.2", text)
            return None
        return text

    def _cni_bin_dirs(self) -> tuple[str, ...]:
        value = self.data.get("cni-bin-dir")
        if isinstance(value, list):  # each entry may itself be comma-separated, as the string form is
            parts = [p for entry in self.r.str_list(self.data, "cni-bin-dir", "") for p in entry.split(",")]
        else:
            text = self.r.text(self.data, "cni-bin-dir", "")
            parts = (text or "").split(",")
        dirs = tuple(p.strip() for p in parts if p.strip())
        return dirs or ("/opt/cni/bin",)

    # ---- service / network ------------------------------------------------------
    def _service(self) -> ServiceConfig:
        r = self.r
        svc = r.mapping(self.data, "service", "")
        cidr = r.text(svc, "cidr", "service", "10.32.0.0/16") or "10.32.0.0/16"
        dnsaddr = r.text(svc, "dnsaddr", "service") or _nth_address(cidr, 10) or "10.32.0.10"
        gateway = r.text(svc, "gateway", "service") or _nth_address(cidr, 1) or "10.32.0.1"
        dns = r.mapping(svc, "dns", "service")
        replicas = r.integer(dns, "replicas", "service.dns", 2) or 2
        return ServiceConfig(
            cidr=cidr,
            dnsaddr=dnsaddr,
            gateway=gateway,
            dns=DNSConfig(
                # why ignored: choice() returns one of the given values, typed str
                corednstype=r.choice(  # type: ignore[arg-type]
                    dns, "corednstype", "service.dns", {"binary": "binary", "pod": "pod"}, "binary"
                ),
                imageversion=r.text(dns, "imageversion", "service.dns", "1.8.4") or "1.8.4",
                replicas=replicas if replicas > 0 else 2,
            ),
        )

    def _network(self) -> NetworkConfig:
        r = self.r
        net = r.mapping(self.data, "network", "")
        podcidr = r.text(net, "podcidr", "network", "10.244.0.0/16") or "10.244.0.0/16"
        if "plugin-args" in net and "pluginargs" in net:
            r.fail("network.pluginargs", "use either plugin-args (manual) or pluginargs (upstream), not both")
        args: dict[str, str] = {}
        for key in ("pluginargs", "plugin-args"):
            for k, v in r.mapping(net, key, "network").items():
                args[str(k)] = r.scalar(v, join_key(f"network.{key}", k)) or ""
        default_mask = 64 if ":" in podcidr else 24
        return NetworkConfig(
            podcidr=podcidr,
            plugin=r.text(net, "plugin", "network", "bridge") or "bridge",
            plugin_args=args,
            node_cidr_mask=r.integer(net, "node-cidr-mask", "network", default_mask, 1, 128) or default_mask,
        )

    def _sans(self) -> CertSANs:
        sans = self.r.mapping(self.data, "apiserver-cert-sans", "")
        path = "apiserver-cert-sans"
        return CertSANs(
            dnsnames=self.r.str_list(sans, "dnsnames", path), ips=self.r.str_list(sans, "ips", path)
        )

    # ---- hosts --------------------------------------------------------------------
    def _host_entry(self, raw: Any, path: str, role: Role, index: int) -> HostEntry | None:
        r = self.r
        if not isinstance(raw, dict):
            r.wrong_type(path, "a mapping with at least ip (and name, port, arch)", raw)
            return None
        ip = r.text(raw, "ip", path) or ""
        if not ip and f"{path}.ip" not in r.bad:
            r.fail(f"{path}.ip", "is required")
        arch_text = r.text(raw, "arch", path)
        arch = normalise_arch(arch_text) if arch_text else "amd64"
        if arch is None:
            r.fail(
                f"{path}.arch",
                "unsupported arch: use amd64 or arm64 (x86_64 and aarch64 also work)",
                arch_text,
            )
        return HostEntry(
            path=path,
            role=role,
            index=index,
            name=r.text(raw, "name", path) or "",
            ip=ip,
            port=r.port(raw, "port", path, 22) or 22,
            arch=arch,
            username=r.text(raw, "username", path),
            password=r.text(raw, "password", path, secret=True),
            private_key_path=r.local_path(raw, "private-key-path", path),
            sudo_password=r.text(raw, "sudo-password", path, secret=True),
        )

    def _role_list(self, key: str, role: Role) -> list[HostEntry]:
        entries = []
        for i, raw in enumerate(self.r.seq(self.data, key, "")):
            entry = self._host_entry(raw, f"{key}[{i}]", role, i)
            if entry:
                entries.append(entry)
        return entries

    def _loadbalance(self) -> tuple[HostEntry | None, int]:
        r = self.r
        raw = r.mapping(self.data, "loadbalance", "")
        bind_port = r.port(raw, "bind-port", "loadbalance", 8443) or 8443
        if not raw:
            return None, bind_port
        if "ip" not in raw:
            r.fail("loadbalance.ip", "is required when loadbalance is set (remove loadbalance to go without)")
            return None, bind_port
        if raw.get("ip") in (None, ""):  # upstream: an empty ip means no load balancer
            return None, bind_port
        return self._host_entry(raw, "loadbalance", "loadbalance", 0), bind_port

    def _usable_key(self, key: str | None, where: str, has_password: bool) -> str | None:
        """upstream's rule for a `private-key-path` that does not exist: skipped (one warning)
        when a password is there, else a config error naming the path. Why: every `eggo
        template` output carries `$HOME/.ssh/id_rsa` next to a password, and paramiko would
        raise on the missing file before it ever tried the password."""
        if not key or Path(key).is_file():
            return key
        if has_password:
            note = f"{where}: {key} does not exist; logging in with the password (as upstream eggo does)"
            if note not in self.warnings:
                self.warnings.append(note)
            return None
        if where not in self.r.bad:
            self.r.fail(where, "the key file does not exist and there is no password to fall back on", key)
        return key

    def _hosts(
        self, cluster_id: str, username: str, password: str | None, key_path: str | None
    ) -> tuple[tuple[Node, ...], dict[Role, tuple[str, ...]], LoadBalance | None]:
        o = self.origins
        masters = self._role_list("masters", "master")
        if "nodes" in self.data and "workers" in self.data:
            self.r.fail("nodes", "use either workers (upstream) or nodes (manual), not both")
        o.workers_key = "nodes" if "nodes" in self.data and "workers" not in self.data else "workers"
        workers = self._role_list("workers", "worker") + self._role_list("nodes", "worker")
        etcds = self._role_list("etcds", "etcd")
        lb_entry, bind_port = self._loadbalance()
        o.hosts = masters + workers + etcds + ([lb_entry] if lb_entry else [])

        groups: dict[str, list[HostEntry]] = {}
        for h in o.hosts:
            groups.setdefault(_machine_key(h), []).append(h)
        prefix = cluster_id or "node"
        nodes: list[Node] = []
        name_of: dict[str, str] = {}
        for key, group in groups.items():
            first = group[0]
            default_name = (
                f"{prefix}-loadbalance"
                if first.role == "loadbalance"
                else f"{prefix}-{first.role}-{first.index}"
            )

            def pick(attr: str, fallback: Any, group: list[HostEntry] = group) -> Any:
                return next((getattr(h, attr) for h in group if getattr(h, attr)), fallback)

            node_password = pick("password", password)
            own_key = next((h for h in group if h.private_key_path), None)
            node_key = self._usable_key(
                pick("private_key_path", key_path),
                f"{own_key.path}.private-key-path" if own_key else "private-key-path",
                bool(node_password),
            )
            node = Node(
                name=pick("name", default_name),
                ip=first.ip,
                port=first.port,
                arch=first.arch or "amd64",
                roles=tuple(role for role in ROLES if any(h.role == role for h in group)),
                username=pick("username", username),
                password=node_password,
                private_key_path=node_key,
                sudo_password=pick("sudo_password", None),
            )
            nodes.append(node)
            name_of[key] = node.name

        def names(entries: list[HostEntry]) -> tuple[str, ...]:
            out: list[str] = []
            for h in entries:
                n = name_of[_machine_key(h)]
                if n not in out:
                    out.append(n)
            return tuple(out)

        roles: dict[Role, tuple[str, ...]] = {
            "master": names(masters),
            "worker": names(workers),
            "etcd": names(etcds) or names(masters),
        }
        if not etcds:  # upstream fillEtcdsIfNotExist: one etcd member per master
            nodes = [
                dataclasses.replace(n, roles=tuple(r for r in ROLES if r in (*n.roles, "etcd")))
                if n.name in roles["master"]
                else n
                for n in nodes
            ]
        lb = None
        if lb_entry:
            lb_node = next(n for n in nodes if n.name == name_of[_machine_key(lb_entry)])
            lb = LoadBalance(lb_node.name, lb_node.ip, lb_entry.port, lb_node.arch, bind_port)
        return tuple(nodes), roles, lb

    def _default_endpoint(
        self, nodes: tuple[Node, ...], roles: dict[Role, tuple[str, ...]], lb: LoadBalance | None
    ) -> str:
        """Upstream: the LB's `ip:bind-port`, else the first master's `ip:6443`."""
        if lb:
            return _endpoint(lb.ip, lb.bind_port)
        first = next((n for n in nodes if roles["master"] and n.name == roles["master"][0]), None)
        return _endpoint(first.ip, 6443) if first and first.ip else ""

    # ---- misc blocks -------------------------------------------------------------
    def _extra_args(self) -> dict[str, dict[str, str]]:
        r = self.r
        out: dict[str, dict[str, str]] = {}
        for i, raw in enumerate(r.seq(self.data, "config-extra-args", "")):
            path = f"config-extra-args[{i}]"
            if not isinstance(raw, dict):
                r.wrong_type(path, "a mapping with name and extra-args", raw)
                continue
            name = r.text(raw, "name", path)
            if name is None:
                r.fail(f"{path}.name", "is required")
                continue
            if name not in COMPONENTS:
                r.fail(f"{path}.name", f"unknown component; use one of {', '.join(COMPONENTS)}", name)
                continue
            args = out.setdefault(name, {})
            for k, v in r.mapping(raw, "extra-args", path).items():
                self._extra_arg(join_key(f"{path}.extra-args", k), name, str(k), v, args)
        return out

    def _extra_arg(self, path: str, component: str, key: str, value: Any, args: dict[str, str]) -> None:
        if component == "etcd" and not _ETCD_ENV.match(key):
            self.r.fail(
                path, "etcd extra args are environment variables such as ETCD_QUOTA_BACKEND_BYTES", key
            )
        elif component not in ("etcd", "container-engine") and not key.startswith("-"):
            self.r.fail(path, f"flag names need their leading dashes, e.g. --{key}", key)
        elif component not in ("etcd", "container-engine") and not FLAG_NAME.match(key):
            self.r.fail(path, "must be one flag name such as --v (lower case, digits, '.', '-')", key)
        if isinstance(value, bool):
            args[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            args[key] = str(value)
        elif value is None:
            args[key] = ""
        else:
            self.r.wrong_type(path, "a string", value)

    def _open_ports(self) -> dict[Role, tuple[Port, ...]]:
        r = self.r
        out: dict[Role, list[Port]] = {}
        for key, items in r.mapping(self.data, "open-ports", "").items():
            role = ROLE_KEYS.get(str(key))
            path = f"open-ports.{key}"
            if role is None:  # reported by the unknown-key check, with a suggestion
                continue
            for i, raw in enumerate(r.as_seq(items, path)):
                ipath = f"{path}[{i}]"
                if not isinstance(raw, dict):
                    r.wrong_type(ipath, "a mapping with port and protocol", raw)
                    continue
                port = r.port(raw, "port", ipath, None)
                if port is None and f"{ipath}.port" not in r.bad:
                    r.fail(f"{ipath}.port", "is required")
                proto = r.choice(raw, "protocol", ipath, {"tcp": "tcp", "udp": "udp"}, "tcp")
                if port is not None:
                    # why ignored: choice() returns tcp or udp, typed str
                    out.setdefault(role, []).append(Port(port, proto))  # type: ignore[arg-type]
        return {role: tuple(ports) for role, ports in out.items()}

    def _addons(self) -> tuple[Addon, ...]:
        r = self.r
        out = []
        for i, raw in enumerate(r.seq(self.data, "addons", "")):
            path = f"addons[{i}]"
            if not isinstance(raw, dict):
                r.wrong_type(path, "a mapping with type and filename", raw)
                continue
            kind = r.choice(raw, "type", path, {"file": "file"}, "file")
            filename = r.text(raw, "filename", path)
            if filename is None:
                r.fail(f"{path}.filename", "is required")
            elif not plain_name(filename):
                r.fail(
                    f"{path}.filename",
                    "must be a plain file name (no '/', not '..') in the bundle's addons/ dir",
                    filename,
                )
            else:
                out.append(Addon(kind, filename))
        return tuple(out)

    def _pki(self) -> PKIConfig:
        r = self.r
        pki = r.mapping(self.data, "pki", "")
        algos = {"ecdsa-p256": "ecdsa-p256", "rsa-2048": "rsa-2048", "rsa-4096": "rsa-4096"}
        d = PKIConfig()

        def days(key: str, default: int, lo: int) -> int:
            value = r.integer(pki, key, "pki", default, lo)
            return default if value is None else value

        return PKIConfig(
            # why ignored: choice() returns one of algos, typed str
            key_algorithm=r.choice(pki, "key-algorithm", "pki", algos, d.key_algorithm),  # type: ignore[arg-type]
            ca_validity_days=days("ca-validity-days", d.ca_validity_days, 1),
            cert_validity_days=days("cert-validity-days", d.cert_validity_days, 1),
            renew_before_days=days("renew-before-days", d.renew_before_days, 0),
        )

    def _security(self) -> SecurityConfig:
        """The `security:` block (CIS controls); every key optional, every default the safe one."""
        r = self.r
        sec = r.mapping(self.data, "security", "")
        d = SecurityConfig()
        where = "security"

        def count(key: str, default: int) -> int:
            value = r.integer(sec, key, where, default, 0)
            return default if value is None else value

        suites = r.str_list(sec, "tls-cipher-suites", where)  # empty: the default list
        for i, suite in enumerate(suites):
            if not TLS_SUITE_NAME.match(suite):
                r.fail(
                    f"{where}.tls-cipher-suites[{i}]",
                    "must be a Go TLS cipher suite name such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                    suite,
                )
        return SecurityConfig(
            audit_log=r.boolean(sec, "audit-log", where, d.audit_log),
            audit_log_maxage=count("audit-log-maxage", d.audit_log_maxage),
            audit_log_maxbackup=count("audit-log-maxbackup", d.audit_log_maxbackup),
            audit_log_maxsize=count("audit-log-maxsize", d.audit_log_maxsize),
            profiling=r.boolean(sec, "profiling", where, d.profiling),
            anonymous_auth=r.choice(  # type: ignore[arg-type]
                sec, "anonymous-auth", where, {"health": "health", "off": "off", "on": "on"}, d.anonymous_auth
            ),
            tls_min_version=r.choice(
                sec, "tls-min-version", where, {v.lower(): v for v in TLS_VERSIONS}, d.tls_min_version
            ),
            tls_cipher_suites=suites or d.tls_cipher_suites,
            service_account_extend_token_expiration=r.boolean(
                sec,
                "service-account-extend-token-expiration",
                where,
                d.service_account_extend_token_expiration,
            ),
            protect_kernel_defaults=r.boolean(
                sec, "protect-kernel-defaults", where, d.protect_kernel_defaults
            ),
            encryption_provider=r.choice(  # type: ignore[arg-type]
                sec,
                "encryption-provider",
                where,
                {"secretbox": "secretbox", "aesgcm": "aesgcm", "aescbc": "aescbc"},
                d.encryption_provider,
            ),
        )

    # ---- packages -----------------------------------------------------------------
    def _package(
        self, raw: Any, path: str, role: Role, category: str, dst_keys: tuple[str, ...]
    ) -> list[Package]:
        """One package entry; `name` may list several packages separated by commas."""
        r = self.r
        if not isinstance(raw, dict):
            r.wrong_type(path, "a mapping with name and type", raw)
            return []
        names = [n.strip() for n in (r.text(raw, "name", path) or "").split(",") if n.strip()]
        if not names and f"{path}.name" not in r.bad:
            r.fail(f"{path}.name", "is required")
        ptype = (r.text(raw, "type", path) or "").lower()
        if not ptype and f"{path}.type" not in r.bad:
            r.fail(f"{path}.type", f"is required: one of {', '.join(PACKAGE_TYPES)}")
        elif ptype and ptype not in PACKAGE_TYPES:
            r.fail(f"{path}.type", f"unknown package type; use one of {', '.join(PACKAGE_TYPES)}", ptype)
            ptype = ""
        ptype = "bin" if ptype == "binary" else ptype  # the manual's spelling of upstream's bin
        dst = None
        for key in dst_keys:
            dst = dst or r.text(raw, key, path)
        schedule = r.text(raw, "schedule", path)
        if schedule is not None and schedule.lower() not in SCHEDULES:
            r.fail(f"{path}.schedule", f"must be one of {', '.join(SCHEDULES)}", schedule)
            schedule = None
        timeout = r.duration(raw, "timeout", path, DEFAULT_SHELL_TIMEOUT if ptype == "shell" else None)
        if not ptype:
            return []
        return [
            Package(
                name=n,
                # why ignored: checked against PACKAGE_TYPES above ("" only when a problem is reported)
                type=ptype,  # type: ignore[arg-type]
                role=role,
                category=category,
                dst=posixpath.normpath(dst) if dst else None,
                # why ignored: checked against the schedules above, typed str
                schedule=schedule.lower() if schedule else None,  # type: ignore[arg-type]
                timeout_seconds=timeout,
            )
            for n in names
        ]

    def _add(self, out: list[Package], pkgs: list[Package], path: str) -> None:
        out.extend(pkgs)
        self.origins.packages.extend([path] * len(pkgs))

    def _defaults(self, out: list[Package], category: str, runtime: str) -> None:
        names = DEFAULT_PACKAGES[category] or ((RUNTIME_PACKAGE[runtime],) if category == "container" else ())
        role = CATEGORY_ROLE[category]
        pkgs = [Package(n, "repo", role, category) for n in names]
        self._add(out, pkgs, f"install.{category} (default)")

    def _install(self, runtime: str, corednstype: str) -> tuple[tuple[Package, ...], PackageSource | None]:
        d, r = self.data, self.r
        manual_pkgs = [k for k in ("pacakges", "packages") if k in d]
        if "install" in d and manual_pkgs:
            r.fail(manual_pkgs[0], "use either install (upstream) or pacakges/packages (manual), not both")
        if "install" in d and "package-src" in d:
            r.fail(
                "package-src",
                "use either install.package-source (upstream) or package-src (manual), not both",
            )
        source = self._package_source()
        out: list[Package] = []
        if manual_pkgs:
            self._manual_packages(out, manual_pkgs, runtime, corednstype)
        else:
            self._upstream_packages(out, runtime, corednstype)
        return tuple(out), source

    def _upstream_packages(self, out: list[Package], runtime: str, corednstype: str) -> None:
        r = self.r
        inst = r.mapping(self.data, "install", "")
        fill = r.boolean(inst, "default-packages", "install", True)
        for category, role in CATEGORY_ROLE.items():
            given: list[Package] = []
            for i, raw in enumerate(r.seq(inst, category, "install")):
                path = f"install.{category}[{i}]"
                pkgs = self._package(raw, path, role, category, ("dst",))
                if category != "dns" or corednstype == "binary":
                    self._add(given, pkgs, path)
            out.extend(given)
            skip_dns = category == "dns" and corednstype != "binary"
            if not given and fill and not skip_dns and f"install.{category}" not in r.bad:
                self._defaults(out, category, runtime)
        for key, items in r.mapping(inst, "addition", "install").items():
            extra_role = ROLE_KEYS.get(str(key))
            if extra_role is None:
                continue
            for i, raw in enumerate(r.as_seq(items, f"install.addition.{key}")):
                path = f"install.addition.{key}[{i}]"
                self._add(out, self._package(raw, path, extra_role, "addition", ("dst",)), path)

    def _manual_packages(
        self, out: list[Package], keys: Sequence[str], runtime: str, corednstype: str
    ) -> None:
        """The manual's `pacakges:` map keyed by role; a role left empty gets upstream's
        defaults for the categories of that role, so an online install still works."""
        r = self.r
        seen: set[Role] = set()
        for top in keys:
            for key, items in r.mapping(self.data, top, "").items():
                role = ROLE_KEYS.get(str(key))
                if role is None:
                    continue
                for i, raw in enumerate(r.as_seq(items, f"{top}.{key}")):
                    path = f"{top}.{key}[{i}]"
                    pkgs = self._package(raw, path, role, f"{top}.{key}", ("dstpath", "dst"))
                    if pkgs:
                        seen.add(role)
                    self._add(out, pkgs, path)
        for category, role in CATEGORY_ROLE.items():
            if role not in seen and not (category == "dns" and corednstype != "binary"):
                self._defaults(out, category, runtime)

    def _package_source(self) -> PackageSource | None:
        d, r, o = self.data, self.r, self.origins
        if "package-src" in d and "install" not in d:
            o.package_source = "package-src"
            raw = r.mapping(d, "package-src", "")
            srcpath: dict[Arch, str] = {}
            for key, arch in (("x86src", "amd64"), ("armsrc", "arm64")):
                value = r.local_path(raw, key, "package-src")
                if value:
                    # why ignored: arch is amd64 or arm64 from the tuple; mypy widens it to str
                    srcpath[arch] = value  # type: ignore[index]
                    o.srcpath[arch] = f"package-src.{key}"
            path = "package-src"
        else:
            inst = r.mapping(d, "install", "")
            if "package-source" not in inst:
                return None
            raw = r.mapping(inst, "package-source", "install")
            path = "install.package-source"
            srcpath = {}
            for key, value in r.mapping(raw, "srcpath", path).items():
                kpath = join_key(f"{path}.srcpath", key)
                key_arch = normalise_arch(str(key))
                if key_arch is None:
                    r.fail(
                        kpath, "unknown arch key: use amd64 or arm64 (x86_64 and aarch64 also work)", str(key)
                    )
                    continue
                local = r.as_local_path(value, kpath)
                if local:
                    srcpath[key_arch] = local
                    o.srcpath[key_arch] = kpath
        kind = r.choice(raw, "type", path, {"tar.gz": "tar.gz", "tgz": "tar.gz"}, "tar.gz")
        dstpath = r.text(raw, "dstpath", path, "/root/.eggo/package") or "/root/.eggo/package"
        return PackageSource(type=kind, dstpath=posixpath.normpath(dstpath), srcpath=srcpath)


# --------------------------------------------------------------------------- API
def build_config(
    data: Any, base_dir: Path | None = None
) -> tuple[ClusterConfig | None, Origins, list[Problem]]:
    """Convert raw YAML data into a model without semantic validation.

    Returns the model (None when `data` is not a mapping at all), the origins of hosts and
    packages, and the conversion problems found.
    """
    if data is None:
        return None, Origins(), [Problem("", "the config is empty")]
    if not isinstance(data, dict):
        return None, Origins(), [Problem("", f"the config must be a mapping of keys, not {_type_name(data)}")]
    builder = _Builder(data, (base_dir or Path.cwd()).resolve())
    cfg = builder.build()
    return cfg, builder.origins, builder.r.problems
