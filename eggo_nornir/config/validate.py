"""Every rule a deploy.yaml must pass before any host is contacted.

Why so strict: upstream eggo ignores unknown keys and checks little, which is how
clusters get deployed with the wrong CIDR or a `/usr/bin/../../etc` cleanup path. Here
every rule returns `Problem`s instead of raising, so the user sees *all* of them in one
run, each naming the key path they wrote (`nodes[0].name`, `install.etcd[1].dst`).

Two entry points: `unknown_keys(data)` walks the raw mapping against `SCHEMA`;
`validate(cfg, origins)` checks the converted model (`loader.py` already reported type
and enum problems, and marks those paths in `origins.bad` so we do not pile on).
"""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eggo_nornir.config.loader import HostEntry, Origins
from eggo_nornir.config.model import (
    CATEGORY_ROLE,
    DST_WHITELIST_EXACT_OR_BELOW,
    DST_WHITELIST_STRICTLY_BELOW,
    PACKAGE_NAME,
    ClusterConfig,
    plain_name,
)
from eggo_nornir.errors import SECRET_KEYS, Problem, join_key, problem

# ------------------------------------------------------------------------- schema
# A dict is a mapping with known keys; a one-element list is a list of that shape; ANY
# accepts any keys (its values are checked by the loader); None is a scalar.
ANY = "any"
_HOST = {
    "name": None,
    "ip": None,
    "port": None,
    "arch": None,
    "username": None,
    "password": None,
    "private-key-path": None,
    "sudo-password": None,
}
_PACKAGE = {"name": None, "type": None, "dst": None, "schedule": None, "timeout": None}
_MANUAL_PACKAGE = {**_PACKAGE, "dstpath": None}
_PORTS = [{"port": None, "protocol": None}]
_ROLE_KEYS = ("master", "worker", "node", "etcd", "loadbalance")

SCHEMA: dict[str, Any] = {
    "cluster-id": None,
    "kubernetes-version": None,
    "username": None,
    "password": None,
    "private-key-path": None,
    "masters": [_HOST],
    "workers": [_HOST],
    "nodes": [_HOST],
    "etcds": [_HOST],
    "loadbalance": {**_HOST, "bind-port": None},
    "bastion": {"ip": None, "port": None, "username": None, "password": None, "private-key-path": None},
    "external-ca": None,
    "external-ca-path": None,
    "service": {
        "cidr": None,
        "dnsaddr": None,
        "gateway": None,
        "dns": {"corednstype": None, "imageversion": None, "replicas": None},
    },
    "network": {
        "podcidr": None,
        "plugin": None,
        "pluginargs": ANY,
        "plugin-args": ANY,
        "node-cidr-mask": None,
    },
    "apiserver-endpoint": None,
    "apiserver-cert-sans": {"dnsnames": None, "ips": None},
    "apiserver-timeout": None,
    "etcd-external": None,
    "etcd-token": None,
    "dns-vip": None,
    "dns-domain": None,
    "pause-image": None,
    "network-plugin": None,
    "enable-kubelet-serving": None,
    "cni-bin-dir": None,
    "runtime": None,
    "runtime-endpoint": None,
    "cri-dockerd": None,
    "registry-mirrors": None,
    "insecure-registries": None,
    "config-extra-args": [{"name": None, "extra-args": ANY}],
    "open-ports": {role: _PORTS for role in _ROLE_KEYS},
    "install": {
        "package-source": {"type": None, "dstpath": None, "srcpath": ANY},
        **{category: [_PACKAGE] for category in CATEGORY_ROLE},
        "addition": {role: [_PACKAGE] for role in _ROLE_KEYS},
        "default-packages": None,
    },
    "package-src": {"type": None, "armsrc": None, "x86src": None, "dstpath": None},
    "pacakges": {role: [_MANUAL_PACKAGE] for role in _ROLE_KEYS},
    "packages": {role: [_MANUAL_PACKAGE] for role in _ROLE_KEYS},
    "addons": [{"type": None, "filename": None}],
    "security": {
        "audit-log": None,
        "audit-log-maxage": None,
        "audit-log-maxbackup": None,
        "audit-log-maxsize": None,
        "profiling": None,
        "anonymous-auth": None,
        "tls-min-version": None,
        "tls-cipher-suites": None,
        "service-account-extend-token-expiration": None,
        "protect-kernel-defaults": None,
        "encryption-provider": None,
    },
    "pki": {
        "key-algorithm": None,
        "ca-validity-days": None,
        "cert-validity-days": None,
        "renew-before-days": None,
    },
}


def _schema_paths(spec: Any, prefix: str = "") -> Iterator[str]:
    """Every known key path, without list indexes (`network.podcidr`, `masters.name`)."""
    if isinstance(spec, list):
        spec = spec[0]
    if isinstance(spec, dict):
        for key, sub in spec.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from _schema_paths(sub, path)


_ALL_PATHS: tuple[str, ...] = tuple(_schema_paths(SCHEMA))


def _suggest(key: str, spec: dict[str, Any], display_prefix: str) -> str:
    """`did you mean network.podcidr?`: a sibling first, else any key anywhere in the schema."""
    close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
    if close:
        return f"did you mean {display_prefix + '.' if display_prefix else ''}{close[0]}?"
    leaves = {p.rsplit(".", 1)[-1]: p for p in reversed(_ALL_PATHS)}
    close = difflib.get_close_matches(key, list(leaves), n=1, cutoff=0.75)
    if close:
        return f"did you mean {leaves[close[0]]}?"
    return "remove it"


def unknown_keys(data: Any, spec: Any = SCHEMA, path: str = "") -> list[Problem]:
    """Unknown keys anywhere in the raw mapping, each with the closest known key.

    Suggestions use the user's own path as prefix (`masters[1].name` for `masters[1].nmae`),
    so the message can be acted on without looking anything up. Wrong types are left to
    the loader, which reports them with the expected type.
    """
    problems: list[Problem] = []
    if spec is ANY or spec is None:
        return problems
    if isinstance(spec, list):
        if isinstance(data, list):
            for i, item in enumerate(data):
                problems += unknown_keys(item, spec[0], f"{path}[{i}]")
        return problems
    if not isinstance(data, dict):
        return problems
    for key, value in data.items():
        child = join_key(path, key)
        if key not in spec:
            problems.append(problem(child, f"unknown key; {_suggest(str(key), spec, path)}"))
            continue
        problems += unknown_keys(value, spec[key], child)
    return problems


# ------------------------------------------------------------------------- control characters
def has_control(text: str) -> bool:
    """A C0/C1 control (newline, CR, NUL, ESC, DEL...) or a Unicode line/paragraph separator:
    anything that can end a line of a systemd unit, an EnvironmentFile, a YAML or TOML file
    or a shell command, or rewrite a terminal."""
    return any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in text)


def control_characters(data: Any, path: str = "") -> list[Problem]:
    """Every key and string value, anywhere in the raw document, that holds a control
    character: such a value would reach a unit, a file or a command line, where a
    newline starts a new directive. Checked on the raw data, before the loader strips
    whitespace, so `"x\\n"` cannot slip through as `x`."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = join_key(path, key)
            if isinstance(key, str) and has_control(key):
                problems.append(problem(child, "key holds a control character (newline, tab, NUL...)"))
                continue
            if isinstance(value, str) and has_control(value) and str(key) in SECRET_KEYS:
                problems.append(problem(child, "holds a control character (newline, tab, NUL...)"))
                continue
            problems += control_characters(value, child)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            problems += control_characters(item, f"{path}[{i}]")
    elif isinstance(data, str) and has_control(data):
        problems.append(problem(path, "holds a control character (newline, tab, NUL...)", data))
    return problems


# ------------------------------------------------------------------------- primitives
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
CA_FILES: tuple[str, ...] = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
)
# package types that come out of the tarball (yaml too, unless it is a URL)
TARBALL_TYPES: tuple[str, ...] = ("pkg", "bin", "binary", "file", "dir", "image", "shell", "yaml")
COPY_TYPES: tuple[str, ...] = ("bin", "binary", "file", "dir")  # copied to dst, removed at cleanup


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def dst_allowed(path: str) -> bool:
    """Is `path` (after normalisation) inside upstream's dst whitelist?

    Normalising first is the fix: upstream compares string prefixes of the raw path only
    at removal time, so `/usr/bin/../../etc` would pass its prefix test.
    """
    p = posixpath.normpath(path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    if any(p == d or p.startswith(d + "/") for d in DST_WHITELIST_EXACT_OR_BELOW):
        return True
    return any(p.startswith(d + "/") for d in DST_WHITELIST_STRICTLY_BELOW)


def dst_dir_allowed(path: str) -> bool:
    """A package `dst` dir: one of the whitelisted dirs itself, or below one."""
    p = posixpath.normpath(path)
    dirs = DST_WHITELIST_EXACT_OR_BELOW + DST_WHITELIST_STRICTLY_BELOW
    return any(p == d or p.startswith(d + "/") for d in dirs)


def _whitelist_text() -> str:
    return ", ".join(DST_WHITELIST_EXACT_OR_BELOW + DST_WHITELIST_STRICTLY_BELOW)


def split_host_port(endpoint: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; raises ValueError with a message a user can act on."""
    if "://" in endpoint:
        raise ValueError("must be host:port without a scheme")
    if endpoint.startswith("["):
        host, sep, rest = endpoint[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("must be host:port; write IPv6 addresses as [addr]:port")
        port_text = rest[1:]
    else:
        if endpoint.count(":") != 1:
            raise ValueError("must be host:port; write IPv6 addresses as [addr]:port")
        host, port_text = endpoint.split(":")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("must end in a port between 1 and 65535")
    if not host or not (is_ip(host) or is_dns1123_subdomain(host)):
        raise ValueError("host must be an IP address or a DNS name")
    return host, int(port_text)


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None


def _cidr_problem(path: str, value: str) -> Problem | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return problem(path, "not a valid CIDR such as 10.32.0.0/16", value)
        return problem(path, f"has host bits set; did you mean {loose}?", value)
    return None


# ------------------------------------------------------------------------- rules
def _check_cluster(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    if not cfg.cluster_id:
        if "cluster-id" not in o.bad:
            yield problem("cluster-id", "is required")
    elif not is_dns1123_subdomain(cfg.cluster_id):
        yield problem("cluster-id", "must be a lower-case DNS name (a-z, 0-9, '-', '.')", cfg.cluster_id)
    if not cfg.masters and "masters" not in o.bad:
        yield problem("masters", "at least one master is required")
    if not is_dns1123_subdomain(cfg.dns_domain) and "dns-domain" not in o.bad:
        yield problem("dns-domain", "must be a lower-case DNS name", cfg.dns_domain)
    for i, d in enumerate(cfg.cni_bin_dirs):
        if not posixpath.isabs(d):
            yield problem("cni-bin-dir", f"entry {i + 1} must be an absolute path", d)
    if cfg.runtime_endpoint and "runtime-endpoint" not in o.bad:
        scheme, sep, rest = cfg.runtime_endpoint.partition("://")
        if not sep or scheme not in ("unix", "tcp") or not rest:
            yield problem("runtime-endpoint", "must be a unix:// or tcp:// URL", cfg.runtime_endpoint)


def _check_hosts(o: Origins) -> Iterator[Problem]:
    """Per-entry values, then duplicates: a name on two IPs, an IP with two identities."""
    for h in o.hosts:
        if h.ip and f"{h.path}.ip" not in o.bad and not is_ip(h.ip):
            yield problem(f"{h.path}.ip", "not a valid IP address", h.ip)
        if h.name and not is_dns1123_subdomain(h.name):
            yield problem(f"{h.path}.name", "must be a lower-case DNS name (a-z, 0-9, '-', '.')", h.name)
    yield from _duplicate_names(o.hosts)
    yield from _duplicate_ips(o.hosts)


def _duplicate_names(hosts: list[HostEntry]) -> Iterator[Problem]:
    first_by_name: dict[str, HostEntry] = {}
    for h in hosts:
        if not h.name or not h.ip:
            continue
        first = first_by_name.setdefault(h.name, h)
        if first.ip != h.ip:
            yield problem(
                f"{h.path}.name",
                f"name {h.name!r} is given to two machines: {first.path} ({first.ip}) "
                f"and {h.path} ({h.ip}); names must be unique",
            )


def _duplicate_ips(hosts: list[HostEntry]) -> Iterator[Problem]:
    by_ip: dict[str, list[HostEntry]] = {}
    for h in hosts:
        if h.ip:
            by_ip.setdefault(h.ip, []).append(h)
    for ip, group in by_ip.items():
        first = group[0]
        seen_lists: dict[str, str] = {first.path.split("[")[0]: first.path}
        for h in group[1:]:
            lst = h.path.split("[")[0]
            if lst in seen_lists and lst != "loadbalance":
                yield problem(f"{h.path}.ip", f"IP {ip} is listed twice in {lst} (also {seen_lists[lst]})")
            seen_lists.setdefault(lst, h.path)
            for attr, label in (("name", "name"), ("port", "port"), ("arch", "arch")):
                a, b = getattr(first, attr), getattr(h, attr)
                if a and b and a != b:
                    yield problem(
                        f"{h.path}.{label}",
                        f"the machine {ip} has {label} {a!r} in {first.path} but {b!r} here; "
                        "the same IP must describe the same machine",
                    )
            # credentials: no value is echoed (passwords must never reach a message)
            for attr, label in (
                ("username", "username"),
                ("private_key_path", "private-key-path"),
                ("password", "password"),
                ("sudo_password", "sudo-password"),
            ):
                a = next((getattr(x, attr) for x in group if getattr(x, attr)), None)
                b = getattr(h, attr)
                if a and b and a != b:
                    yield problem(
                        f"{h.path}.{label}", f"the machine {ip} has a different {label} in another entry"
                    )


def _default_key_exists() -> bool:
    ssh = Path.home() / ".ssh"
    return any((ssh / name).is_file() for name in ("id_rsa", "id_ecdsa", "id_ed25519"))


def _check_credentials(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    """upstream: without a key, a password is required. A default key in ~/.ssh counts."""
    missing = [n for n in cfg.nodes if not n.password and not n.private_key_path]
    if not missing or "password" in o.bad or _default_key_exists():
        return
    if len(missing) == len(cfg.nodes):
        yield problem(
            "password", "no SSH credential: set password or private-key-path (globally or per host)"
        )
        return
    for n in missing:
        entry = next((h for h in o.hosts if h.ip == n.ip), None)
        where = entry.path if entry else n.name
        yield problem(where, f"no SSH credential for {n.name}: set password or private-key-path")


def _check_bastion(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    """The bastion's address and a credential for it; its key file must exist, because a
    missing one would otherwise surface only as every host failing to connect."""
    b = cfg.bastion
    if b is None:
        return
    if "bastion.ip" not in o.bad and not is_ip(b.ip):
        yield problem("bastion.ip", "not a valid IP address", b.ip)
    no_credential = not b.password and not b.private_key_path and not _default_key_exists()
    if no_credential and "bastion.password" not in o.bad and "password" not in o.bad:
        yield problem(
            "bastion",
            "no SSH credential for the bastion: set its password or private-key-path (or the "
            "global ones), or give the password with --ask-pass or EGGO_PASSWORD",
        )
    if (
        b.private_key_path
        and "bastion.private-key-path" not in o.bad
        and not Path(b.private_key_path).is_file()
    ):
        key = "bastion.private-key-path" if b.private_key_path != cfg.private_key_path else "private-key-path"
        yield problem(key, "no such key file (used for the bastion)", b.private_key_path)


def _check_loadbalance(cfg: ClusterConfig) -> Iterator[Problem]:
    lb = cfg.loadbalance
    if lb is None:
        return
    lb_node = next((n for n in cfg.nodes if n.name == lb.name), None)
    if lb_node and lb_node.is_master and lb.bind_port == 6443:
        yield problem(
            "loadbalance.bind-port",
            "the load balancer shares a machine with a master, whose apiserver already listens on 6443",
            lb.bind_port,
        )


def _check_endpoint(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    if not cfg.apiserver_endpoint or "apiserver-endpoint" in o.bad:
        return
    try:
        split_host_port(cfg.apiserver_endpoint)
    except ValueError as exc:
        yield problem("apiserver-endpoint", str(exc), cfg.apiserver_endpoint)


def _check_service_network(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    svc_cidr, pod_cidr = cfg.service.cidr, cfg.network.podcidr
    for path, value in (("service.cidr", svc_cidr), ("network.podcidr", pod_cidr)):
        if path not in o.bad and (p := _cidr_problem(path, value)):
            yield p
    svc, pod = _network(svc_cidr), _network(pod_cidr)
    if svc and pod and svc.version == pod.version and svc.overlaps(pod):
        yield problem("network.podcidr", f"overlaps service.cidr {svc_cidr}", pod_cidr)
    yield from _check_service_ips(cfg, svc, o)
    if pod and "network.node-cidr-mask" not in o.bad:
        # the rules render.network.node_pod_cidrs enforces: a node's slice holds the bridge's
        # gateway and a pod (so at most /30, /126), and every worker gets a slice
        mask, top = cfg.network.node_cidr_mask, pod.max_prefixlen - 2
        if not pod.prefixlen <= mask <= top:
            yield problem(
                "network.node-cidr-mask",
                f"must be between the pod CIDR's prefix ({pod.prefixlen}) and {top}",
                mask,
            )
        elif len(cfg.workers) > 2 ** (mask - pod.prefixlen):
            yield problem(
                "network.podcidr",
                f"{pod} split into /{mask} holds {2 ** (mask - pod.prefixlen)} node CIDRs, "
                f"but there are {len(cfg.workers)} workers",
            )
    for h in o.hosts:
        if not is_ip(h.ip):
            continue
        addr = ipaddress.ip_address(h.ip)
        for net, key in ((svc, "service.cidr"), (pod, "network.podcidr")):
            if net and addr.version == net.version and addr in net:
                yield problem(
                    f"{h.path}.ip", f"lies inside {key} {net}; machines need addresses outside it", h.ip
                )


def _check_service_ips(cfg: ClusterConfig, svc: Any, o: Origins) -> Iterator[Problem]:
    checks = (
        ("service.dnsaddr", cfg.service.dnsaddr),
        ("service.gateway", cfg.service.gateway),
        ("dns-vip", cfg.dns_vip),
    )
    for path, value in checks:
        if path in o.bad:
            continue
        if not is_ip(value):
            yield problem(path, "not a valid IP address", value)
        elif svc and ipaddress.ip_address(value) not in svc:
            yield problem(path, f"must lie inside service.cidr {svc}", value)
    if svc and is_ip(cfg.service.gateway) and "service.gateway" not in o.bad:
        first = next(iter(svc.hosts()), None)  # a /32 network gives a list, not an iterator
        if (
            first is not None
            and ipaddress.ip_address(cfg.service.gateway) in svc
            and str(first) != str(ipaddress.ip_address(cfg.service.gateway))
        ):
            yield problem(
                "service.gateway",
                f"must be the first address of service.cidr ({first}), the `kubernetes` Service IP",
                cfg.service.gateway,
            )
    if is_ip(cfg.dns_vip) and is_ip(cfg.service.dnsaddr) and cfg.dns_vip != cfg.service.dnsaddr:
        yield problem(
            "dns-vip",
            f"must equal service.dnsaddr ({cfg.service.dnsaddr}): kubelets would ask an unserved address",
            cfg.dns_vip,
        )
    if cfg.service.dnsaddr == cfg.service.gateway and is_ip(cfg.service.dnsaddr):
        yield problem("service.dnsaddr", "must differ from service.gateway", cfg.service.dnsaddr)


def _check_sans(cfg: ClusterConfig) -> Iterator[Problem]:
    for i, name in enumerate(cfg.apiserver_cert_sans.dnsnames):
        if not is_dns1123_subdomain(name.removeprefix("*.")):
            yield problem(f"apiserver-cert-sans.dnsnames[{i}]", "not a valid DNS name", name)
    for i, ip in enumerate(cfg.apiserver_cert_sans.ips):
        if not is_ip(ip):
            yield problem(f"apiserver-cert-sans.ips[{i}]", "not a valid IP address", ip)


def _check_external_ca(cfg: ClusterConfig) -> Iterator[Problem]:
    if not cfg.external_ca:
        return
    if not cfg.external_ca_path:
        yield problem("external-ca-path", "is required when external-ca is true")
        return
    base = Path(cfg.external_ca_path)
    if not base.is_dir():
        yield problem("external-ca-path", "directory not found", cfg.external_ca_path)
        return
    missing = [f for f in CA_FILES if not (base / f).is_file()]
    if missing:
        yield problem("external-ca-path", f"lacks {', '.join(missing)}", cfg.external_ca_path)


def _check_runtime(cfg: ClusterConfig) -> Iterator[Problem]:
    minor = cfg.kube_minor()
    major = (cfg.kubernetes_version or "").lstrip("v").split(".")[0]
    if (
        cfg.runtime == "docker"
        and not cfg.cri_dockerd
        and minor is not None
        and (major != "1" or minor >= 24)
    ):
        yield problem(
            "runtime",
            f"docker needs cri-dockerd from Kubernetes 1.24 on (kubernetes-version is "
            f"{cfg.kubernetes_version}): set cri-dockerd: true or use containerd",
            cfg.runtime,
        )
    if cfg.cri_dockerd and cfg.runtime != "docker":
        yield problem("cri-dockerd", f"only applies to runtime docker (runtime is {cfg.runtime})", True)


def _check_pki(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    pki = cfg.pki
    if pki.cert_validity_days > pki.ca_validity_days and "pki.cert-validity-days" not in o.bad:
        yield problem(
            "pki.cert-validity-days",
            f"must not exceed pki.ca-validity-days ({pki.ca_validity_days})",
            pki.cert_validity_days,
        )
    if pki.renew_before_days >= pki.cert_validity_days and "pki.renew-before-days" not in o.bad:
        yield problem(
            "pki.renew-before-days",
            f"must be less than pki.cert-validity-days ({pki.cert_validity_days})",
            pki.renew_before_days,
        )


def _check_packages(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    for pkg, path in zip(cfg.packages, o.packages, strict=True):
        yield from _check_package_name(pkg.name, pkg.type, f"{path}.name")
        if pkg.dst is not None:
            dst_path = f"{path}.{'dst' if path.startswith('install.') else 'dstpath'}"
            yield from _check_dst(pkg.name, pkg.type, pkg.dst, dst_path)
        if pkg.type == "shell" and pkg.schedule is None:
            yield problem(
                f"{path}.schedule", f"shell hook {pkg.name!r} has no schedule, so it would never run"
            )
        if pkg.type != "shell" and pkg.schedule is not None:
            yield problem(f"{path}.schedule", f"only shell packages have a schedule (type is {pkg.type})")


def _check_package_name(name: str, ptype: str, path: str) -> Iterator[Problem]:
    """A repo or pkg name becomes a word on an apt-get/dnf/rpm command line, the other types a
    file name under the bundle's dirs and on the host (a yaml may also be a URL)."""
    if ptype in ("repo", "pkg"):
        if not PACKAGE_NAME.match(name):
            yield problem(
                path,
                "not a package name (letters, digits, '.', '_', '+', '@', ':', '-'; no leading '-')",
                name,
            )
    elif not (ptype == "yaml" and name.startswith(("http://", "https://"))) and not plain_name(name):
        yield problem(
            path, f"a {ptype} package must be a plain file name (no '/', no '..', no leading '-')", name
        )


def _check_dst(name: str, ptype: str, dst: str, path: str) -> Iterator[Problem]:
    if not posixpath.isabs(dst):
        yield problem(path, "must be an absolute path", dst)
        return
    if ptype not in COPY_TYPES:
        return
    target = posixpath.normpath(posixpath.join(dst, name))
    dst_norm = posixpath.normpath(dst)
    if (
        not dst_dir_allowed(dst)
        or not dst_allowed(target)
        or not target.startswith(dst_norm.rstrip("/") + "/")
    ):
        yield problem(
            path,
            f"{target} is outside the allowed destinations ({_whitelist_text()})",
            dst,
        )


def _check_package_source(cfg: ClusterConfig, o: Origins) -> Iterator[Problem]:
    src = cfg.package_source
    if src is not None and "package-src" not in o.package_source:
        if not posixpath.isabs(src.dstpath):
            yield problem(f"{o.package_source}.dstpath", "must be an absolute path", src.dstpath)
        elif not dst_allowed(src.dstpath):
            yield problem(
                f"{o.package_source}.dstpath",
                f"is removed at cleanup, so it must be inside {_whitelist_text()}",
                src.dstpath,
            )
    srcpath = src.srcpath if src else {}
    if not srcpath:
        needy = sorted({p.name for p in cfg.packages if _from_tarball(p.type, p.name)})
        if needy:
            key = "package-src" if o.package_source == "package-src" else f"{o.package_source}.srcpath"
            shown = ", ".join(needy[:5]) + (", ..." if len(needy) > 5 else "")
            yield problem(key, f"packages {shown} come from a package tarball, but none is configured")
        return
    for arch in cfg.arches:
        users = [n.name for n in cfg.nodes if n.arch == arch]
        if arch not in srcpath:
            yield problem(
                o.srcpath_key(arch), f"no package tarball for arch {arch}, used by {', '.join(users)}"
            )
        elif not Path(srcpath[arch]).is_file():
            yield problem(o.srcpath_key(arch), "package tarball not found", srcpath[arch])


def _from_tarball(ptype: str, name: str) -> bool:
    if ptype == "yaml":
        return not name.startswith(("http://", "https://"))
    return ptype in TARBALL_TYPES


def validate(cfg: ClusterConfig, origins: Origins) -> list[Problem]:
    """Every semantic rule, in file order; returns problems rather than raising."""
    rules = (
        _check_cluster(cfg, origins),
        _check_hosts(origins),
        _check_credentials(cfg, origins),
        _check_bastion(cfg, origins),
        _check_loadbalance(cfg),
        _check_external_ca(cfg),
        _check_service_network(cfg, origins),
        _check_endpoint(cfg, origins),
        _check_sans(cfg),
        _check_runtime(cfg),
        _check_packages(cfg, origins),
        _check_package_source(cfg, origins),
        _check_pki(cfg, origins),
    )
    return [p for rule in rules for p in rule]
