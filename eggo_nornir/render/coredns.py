"""Cluster DNS: CoreDNS as a binary on every master (upstream's default) or as a Deployment.

Both honour `dns-domain` (upstream hard-codes `cluster.local` in the Corefile).
Binary mode reaches the API with the masters' admin.conf; it binds only the node IP (not the
wildcard), so a local resolver on 127.0.0.53 and other services are left alone, and its health,
ready and metrics endpoints stay on loopback / the node IP. The kube-dns Service then has no
selector and an EndpointSlice lists the masters. Manifests go to /etc/kubernetes/addons/ and are
applied by a later task.
"""

from __future__ import annotations

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.diagnostics import warn
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render

COREDNS_UNIT = unit_names.COREDNS
MANIFEST = f"{p.ADDONS_DIR}/coredns.yaml"


def binary_mode(cfg: ClusterConfig) -> bool:
    return (cfg.service.dns.corednstype or "binary") == "binary"


def corefile(cfg: ClusterConfig, node: Node | None) -> str:
    """The Corefile; `node` set means binary mode on that master."""
    if node is not None:
        host = f"[{node.ip}]" if ":" in node.ip else node.ip
        return render(
            "coredns/Corefile.j2",
            bind=node.ip,
            health="127.0.0.1:8080",
            ready="127.0.0.1:8181",
            prometheus=f"{host}:9153",
            domain=cfg.dns_domain,
            kubeconfig=p.ADMIN_CONF,
        ).decode()
    return render(
        "coredns/Corefile.j2",
        bind="",
        health=":8080",
        ready=":8181",
        prometheus=":9153",
        domain=cfg.dns_domain,
        kubeconfig="",
    ).decode()


def _check_vip(cfg: ClusterConfig) -> None:
    if cfg.dns_vip != cfg.service.dnsaddr:
        warn(
            f"dns-vip {cfg.dns_vip} (kubelet clusterDNS) differs from service.dnsaddr "
            f"{cfg.service.dnsaddr} (the kube-dns Service): pods will not resolve names"
        )


def coredns_files(cfg: ClusterConfig, node: Node) -> list[HostFile]:
    """What one master receives for DNS, by `service.dns.corednstype`."""
    _check_vip(cfg)
    if binary_mode(cfg):
        masters = cfg.with_role("master")
        manifest = render(
            "coredns/coredns-binary.yaml.j2",
            selector=False,
            cluster_ip=cfg.service.dnsaddr,
            address_type="IPv6" if ":" in masters[0].ip else "IPv4",
            endpoints=[m.ip for m in masters],
        )
        unit = render(
            "coredns/coredns.service.j2",
            description="CoreDNS cluster DNS",
            binary=p.binary("coredns"),
            corefile=p.COREDNS_COREFILE,
        )
        return [
            HostFile(p.COREDNS_COREFILE, corefile(cfg, node).encode(), restarts=(COREDNS_UNIT,)),
            HostFile(p.unit_path(COREDNS_UNIT), unit, restarts=(COREDNS_UNIT,)),
            HostFile(MANIFEST, manifest),
        ]
    manifest = render(
        "coredns/coredns-pod.yaml.j2",
        selector=True,
        cluster_ip=cfg.service.dnsaddr,
        corefile=corefile(cfg, None).rstrip("\n"),
        replicas=cfg.service.dns.replicas if cfg.service.dns.replicas > 0 else 2,
        image=f"coredns/coredns:{cfg.service.dns.imageversion}",
    )
    return [HostFile(MANIFEST, manifest)]
