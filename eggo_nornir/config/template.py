"""The commented deploy.yaml that `eggo-nornir template` writes.

Why hand-written text instead of `yaml.safe_dump`: a template is documentation. Every
optional key is present with its default and a comment saying what it does, so a user
edits values instead of looking keys up. The output is in upstream eggo's dialect with
our defaults (containerd, registry.k8s.io/pause:3.10, the `bridge` CNI), and
`check` accepts it except for the tarball path, which names a bundle not built yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from eggo_nornir.config.loader import DEFAULT_RUNTIME_ENDPOINTS
from eggo_nornir.config.model import ClusterConfig, PKIConfig, SecurityConfig

COMMENT_COLUMN = 40
DEFAULT_TARBALL = "/root/packages/packages-amd64.tar.gz"


@dataclass(frozen=True)
class TemplateOptions:
    """The flags of `template`, with upstream eggo's defaults."""

    name: str = "k8s-cluster"
    user: str = "root"
    password: str = "123456"
    masters: tuple[str, ...] = ("192.168.0.2",)
    workers: tuple[str, ...] = ("192.168.0.3", "192.168.0.4")
    etcds: tuple[str, ...] = ()
    loadbalancer: str = "192.168.0.1"  # "" for no load balancer
    tarball: str = DEFAULT_TARBALL


def _q(value: str) -> str:
    """A YAML-safe scalar: JSON strings are valid YAML double-quoted strings."""
    return json.dumps(value, ensure_ascii=False)


def _line(content: str, comment: str = "") -> str:
    if not comment:
        return content
    if len(content) < COMMENT_COLUMN - 3:
        return f"{content:<{COMMENT_COLUMN - 3}} # {comment}"
    return f"{content}  # {comment}"


def _names(opts: TemplateOptions) -> dict[str, str]:
    """One name per IP, first role wins: an IP given as master and worker is one machine."""
    names: dict[str, str] = {}
    for role, ips in (("master", opts.masters), ("worker", opts.workers), ("etcd", opts.etcds)):
        for i, ip in enumerate(ips):
            names.setdefault(ip, f"k8s-{role}-{i}")
    if opts.loadbalancer:
        names.setdefault(opts.loadbalancer, "k8s-loadbalance")
    return names


def _hosts(key: str, ips: Sequence[str], names: dict[str, str], comment: str) -> list[str]:
    if not ips:
        return [_line(f"{key}: []", comment)]
    out = [_line(f"{key}:", comment)]
    for n, ip in enumerate(ips):
        out += [
            _line(
                f"- name: {names[ip]}", "node name: hostname, k8s Node and etcd member name" if n == 0 else ""
            ),
            _line(f"  ip: {ip}"),
            _line("  port: 22", "SSH port" if n == 0 else ""),
            _line("  arch: amd64", "amd64 or arm64 (x86_64 and aarch64 also work)" if n == 0 else ""),
        ]
        if n == 0:
            out.append("  # username, password, private-key-path, sudo-password: per-host overrides")
    return out


def _loadbalance(opts: TemplateOptions, names: dict[str, str]) -> list[str]:
    if not opts.loadbalancer:
        return [_line("loadbalance: {}", "no load balancer: clients use the first master's apiserver")]
    return [
        _line("loadbalance:", "nginx stream proxy in front of every master's apiserver; {} for none"),
        _line(f"  name: {names[opts.loadbalancer]}"),
        _line(f"  ip: {opts.loadbalancer}"),
        _line("  port: 22", "SSH port"),
        _line("  arch: amd64"),
        _line("  bind-port: 8443", "the port it listens on; apiserver-endpoint uses it"),
    ]


def _endpoint(opts: TemplateOptions) -> str:
    if opts.loadbalancer:
        return f"{opts.loadbalancer}:8443"
    return f"{opts.masters[0]}:6443" if opts.masters else ""


_INSTALL = """\
install:                              # what to install on which role; an omitted category gets
                                      # upstream's default repo packages (online install)
  package-source:                     # the offline bundle, copied to every host and unpacked there
    type: tar.gz                      # only tar.gz is supported
    dstpath: /root/.eggo/package      # where it is unpacked on the hosts (removed at cleanup)
    srcpath:                          # local tarball per arch in use; relative paths are next to this file
      amd64: {tarball}
      # arm64: /root/packages/packages-arm64.tar.gz
  kubernetes-master:                  # -> masters. types: repo pkg bin file dir image yaml shell
  - name: kube-apiserver,kube-controller-manager,kube-scheduler,kubectl
    type: bin                         # bin: <bundle>/bin/<name> copied to dst, made executable
    dst: /usr/bin                     # must lie in the whitelist: /usr/bin, /opt/cni/bin, /etc/kubernetes...
  kubernetes-worker:                  # -> workers
  - name: kubelet,kube-proxy,kubectl
    type: bin
    dst: /usr/bin
  network:                            # -> workers: CNI plugins
  - name: bridge,host-local,loopback,portmap
    type: bin
    dst: /opt/cni/bin
  etcd:                               # -> etcd members
  - name: etcd,etcdctl
    type: bin
    dst: /usr/bin
  loadbalance:                        # -> the load balancer
  - name: nginx
    type: repo                        # repo: installed with apt or yum from the host's repositories
  container:                          # -> workers: the container runtime
  - name: containerd,containerd-shim-runc-v2,ctr,runc
    type: bin
    dst: /usr/bin
  image: []                           # -> workers: image archives loaded into the runtime, e.g.
                                      # - {{name: images.tar, type: image}}
  dns:                                # -> masters, only with service.dns.corednstype binary
  - name: coredns
    type: bin
    dst: /usr/bin
  addition:                           # extra packages and hooks per role, e.g.
                                      # - {{name: calico.yaml, type: yaml}}  (kubectl apply, masters)
                                      # - {{name: prejoin.sh, type: shell, schedule: prejoin, timeout: 30s}}
    master: []
    worker: []
    etcd: []
    loadbalance: []
"""


def render_template(opts: TemplateOptions | None = None) -> str:
    """The full, commented deploy.yaml for `opts` (upstream dialect, our defaults)."""
    opts = opts or TemplateOptions()
    names = _names(opts)
    pki = PKIConfig()
    sec = SecurityConfig()
    d = ClusterConfig(cluster_id=opts.name, nodes=(), masters=())
    lines = [
        "# deploy.yaml for eggo-nornir, in upstream eggo's dialect (eggo-nornir also reads the",
        "# operator manual's older one). Check it with `eggo-nornir check -f FILE`: unknown keys",
        "# are errors. Optional keys show their default.",
        "",
        _line(f"cluster-id: {_q(opts.name)}", "required: cluster name, a lower-case DNS name"),
        _line(
            'kubernetes-version: ""', 'version of the bundled binaries, e.g. "1.31.4" (quoted); picks flags'
        ),
        _line(f"username: {_q(opts.user)}", "SSH user of every host (sudo is used when not root)"),
        _line(f"password: {_q(opts.password)}", "SSH and sudo password; keep this file private"),
        _line('private-key-path: ""', "SSH key; empty: the password, or ~/.ssh/id_* if present"),
        "",
        *_hosts("masters", opts.masters, names, "required: the first one initialises the control plane"),
        *_hosts(
            "workers", opts.workers, names, "hosts running pods; list a master here too to schedule on it"
        ),
        *_hosts("etcds", opts.etcds, names, "etcd members; empty: one member on each master"),
        *_loadbalance(opts, names),
        _line(
            "bastion:",
            "jump host to nodes the controller cannot reach: {ip, port, username, password|private-key-path}",
        ),
        "",
        _line("external-ca: false", "true: use the CAs in external-ca-path instead of generating them"),
        _line("external-ca-path: /opt/externalca", "needs ca.*, front-proxy-ca.*, etcd/ca.* (.crt and .key)"),
        _line("service:"),
        _line(f"  cidr: {d.service.cidr}", "Service cluster IP range"),
        _line(f"  dnsaddr: {d.service.dnsaddr}", "cluster IP of the kube-dns Service (inside cidr)"),
        _line(f"  gateway: {d.service.gateway}", "the first address of cidr: the `kubernetes` Service"),
        _line("  dns:"),
        _line("    corednstype: binary", "binary: coredns as a systemd unit on masters; pod: a Deployment"),
        _line("    imageversion: 1.8.4", "coredns image tag (pod mode)"),
        _line("    replicas: 2", "coredns replicas (pod mode)"),
        _line("network:"),
        _line(f"  podcidr: {d.network.podcidr}", "pod IP range; must not overlap service.cidr"),
        _line("  node-cidr-mask: 24", "size of each node's slice of podcidr"),
        _line(
            "  plugin: bridge", "bridge: built in, no internet needed; or an addon manifest such as calico"
        ),
        _line(
            "  pluginargs: {}", "plugin settings, e.g. {NetworkYamlPath: /etc/kubernetes/addons/calico.yaml}"
        ),
        _line(
            f"apiserver-endpoint: {_q(_endpoint(opts))}", "host:port clients use: the LB, else master 0:6443"
        ),
        _line("apiserver-cert-sans:", "extra names and IPs in the apiserver certificate"),
        _line("  dnsnames: []"),
        _line("  ips: []"),
        _line("apiserver-timeout: 120s", "how long to wait for the apiserver"),
        _line("etcd-external: false", "true: etcd is managed outside this tool (no member add/remove)"),
        _line(f"etcd-token: {d.etcd_token}", "etcd initial cluster token"),
        _line(f"dns-vip: {d.dns_vip}", "kubelet clusterDNS; must equal service.dnsaddr"),
        _line(f"dns-domain: {d.dns_domain}", "cluster DNS domain"),
        _line(f"pause-image: {d.pause_image}", "sandbox image; ship it in the bundle when offline"),
        _line("network-plugin: cni", "kept for compatibility; unused"),
        _line(
            "enable-kubelet-serving: true",
            "kubelet serving certs signed by the cluster CA (CSRs approved by value); false: self-signed",
        ),
        _line("cni-bin-dir: /opt/cni/bin", "CNI plugin dirs, comma-separated"),
        _line("runtime: containerd", "containerd, docker or iSulad"),
        _line(f"runtime-endpoint: {DEFAULT_RUNTIME_ENDPOINTS['containerd']}", "CRI socket of the runtime"),
        _line("cri-dockerd: false", "runtime docker with Kubernetes >= 1.24 needs cri-dockerd: true"),
        _line("registry-mirrors: []", "registry mirrors for the runtime"),
        _line("insecure-registries: []", "registries reached over plain HTTP"),
        _line("config-extra-args: []", "extra flags per component, e.g."),
        '# - {name: kube-apiserver, extra-args: {--audit-log-maxage: "30"}}',
        "#   names: etcd (ETCD_* variables), kube-apiserver, kube-controller-manager, kube-scheduler,",
        "#   kube-proxy, kubelet, container-engine",
        _line("open-ports:", "extra firewalld ports per role (the built-in ones are always opened)"),
        _line("  master: []", "e.g. [{port: 9100, protocol: tcp}]"),
        _line("  worker: []"),
        _line("  etcd: []"),
        _line("  loadbalance: []"),
        _INSTALL.format(tarball=opts.tarball).rstrip("\n"),
        _line("pki:", "certificates (eggo-nornir only)"),
        _line(f"  key-algorithm: {pki.key_algorithm}", "ecdsa-p256, rsa-2048 or rsa-4096"),
        _line(f"  ca-validity-days: {pki.ca_validity_days}"),
        _line(f"  cert-validity-days: {pki.cert_validity_days}"),
        _line(
            f"  renew-before-days: {pki.renew_before_days}",
            "`certs renew` renews leaves this close to expiry",
        ),
        _line("security:", "CIS Benchmark controls, all on by default (docs/security.md)"),
        _line(
            f"  audit-log: {str(sec.audit_log).lower()}", "audit policy + log under /var/log/kubernetes/audit"
        ),
        _line(f"  audit-log-maxage: {sec.audit_log_maxage}", "days"),
        _line(f"  audit-log-maxbackup: {sec.audit_log_maxbackup}", "rotated files kept"),
        _line(f"  audit-log-maxsize: {sec.audit_log_maxsize}", "MB before rotation"),
        _line(
            f"  profiling: {str(sec.profiling).lower()}", "pprof on apiserver, controller-manager, scheduler"
        ),
        _line(f"  anonymous-auth: {sec.anonymous_auth}", "health: only /livez /readyz /healthz; off; on"),
        _line(f"  tls-min-version: {sec.tls_min_version}", "VersionTLS12 or VersionTLS13"),
        _line("  tls-cipher-suites: []", "empty: ECDHE with AES-GCM or ChaCha20 only"),
        _line("  service-account-extend-token-expiration: false", "true: bound SA tokens may live a year"),
        _line(
            f"  protect-kernel-defaults: {str(sec.protect_kernel_defaults).lower()}",
            "kubelet refuses kernel settings it did not expect; the system phase sets them",
        ),
        _line(
            f"  encryption-provider: {sec.encryption_provider}",
            "secretbox, aesgcm or aescbc (Secrets at rest)",
        ),
    ]
    return "\n".join(lines) + "\n"
