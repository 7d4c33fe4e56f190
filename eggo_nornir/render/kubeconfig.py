"""Kubeconfigs, rendered locally from the cluster PKI and secrets.

Why here and not with `kubectl config` on each host (upstream eggo): the bytes are known
before anything is shipped, so dry-run diffs work, re-runs are byte-identical (nothing is
re-signed, keys are dict-ordered and dumped the same way every time), and hosts need
no kubectl at all. Every kubeconfig embeds the CA and credentials as base64 data, so it
is self-contained and stays valid if /etc/kubernetes/pki is rearranged.

Which server each one points at:
- controller-manager and scheduler talk to the apiserver on their own master over
  loopback, so a dead LB or peer master never takes them down (kubeadm does the same);
- kube-proxy, the kubelet bootstrap and admin use `cfg.apiserver_url` (LB or endpoint),
  which survives the loss of any single master.
"""

from __future__ import annotations

import base64

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import yamltext
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.pki import ClusterPKI
from eggo_nornir.render.secrets import ClusterSecrets

KUBE_DIR = "/etc/kubernetes"
ADMIN_USER = "kubernetes-admin"
SUPER_ADMIN_USER = "kubernetes-super-admin"
BOOTSTRAP_USER = "kubelet-bootstrap"
DEFAULT_SECURE_PORT = 6443


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig(
    cluster: str,
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
) -> bytes:
    """One kubeconfig with a single cluster, user and context (`<user>@<cluster>`).

    Give either a client cert and key, or a token (bootstrap tokens), never both: a
    kubeconfig carrying two credentials leaves the choice to the client library.
    """
    if token is not None:
        if cert_pem is not None or key_pem is not None:
            raise ValueError("kubeconfig: give a token or a client cert/key, not both")
        credentials: dict[str, str] = {"token": token}
    else:
        if cert_pem is None or key_pem is None:
            raise ValueError("kubeconfig: a client cert needs its key (or pass a token)")
        credentials = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    context = f"{user}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}}
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }
    # sort_keys=False keeps the conventional kubectl order; safe_dump quotes any value
    # that YAML would otherwise read as a number (an all-digit token, for example)
    return yamltext.dump(doc, sort_keys=False, default_flow_style=False, width=1 << 16).encode()


def apiserver_url(cfg: ClusterConfig) -> str:
    """cfg.apiserver_url, or, when no endpoint is configured, the LB or the first master.

    The loader normally fills `apiserver-endpoint` (upstream's default is the LB, else
    the first master); this fallback only keeps rendering usable on bare test configs.
    """
    if cfg.apiserver_endpoint:
        return cfg.apiserver_url
    if cfg.loadbalance is not None:
        host, port = cfg.loadbalance.ip, cfg.loadbalance.bind_port
    else:
        host, port = cfg.first_master.ip, secure_port(cfg)
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def secure_port(cfg: ClusterConfig) -> int:
    """The apiserver's secure port."""
    # honour a `--secure-port` override in config-extra-args, or loopback would miss it
    value = str(cfg.extra_args("kube-apiserver").get("--secure-port", ""))
    return int(value) if value.isdigit() else DEFAULT_SECURE_PORT


def local_apiserver_url(cfg: ClusterConfig) -> str:
    """The apiserver on this very master, over loopback (covered by the 127.0.0.1 SAN)."""
    return f"https://127.0.0.1:{secure_port(cfg)}"


def node_apiserver_url(cfg: ClusterConfig, node: Node) -> str:
    """The apiserver of `node` at its own address: what the LB forwards to, so a check through
    it proves this master serves (loopback would pass with a firewall or bind-address wrong)."""
    host = f"[{node.ip}]" if ":" in node.ip else node.ip
    return f"https://{host}:{secure_port(cfg)}"


def admin_kubeconfig(cfg: ClusterConfig, pki: ClusterPKI, server: str | None = None) -> bytes:
    """`kubernetes-admin` (group kubeadm:cluster-admins), for the operator and masters.

    Its rights come from the ClusterRoleBinding `kubeadm:cluster-admins` -> cluster-admin,
    which must be created with `super_admin_kubeconfig` before this one can do anything.
    """
    return kubeconfig(
        cfg.cluster_id,
        server or apiserver_url(cfg),
        pki.cert_pem("ca"),
        ADMIN_USER,
        pki.cert_pem("admin"),
        pki.key_pem("admin"),
    )


def super_admin_kubeconfig(cfg: ClusterConfig, pki: ClusterPKI, server: str | None = None) -> bytes:
    """`kubernetes-super-admin` (group system:masters, bypasses RBAC), controller only.

    Used once to create the `kubeadm:cluster-admins` binding, and for break-glass access;
    no host gets it from `kubeconfig_files`, like kubeadm's super-admin.conf is not copied
    to joining control-plane nodes.
    """
    return kubeconfig(
        cfg.cluster_id,
        server or apiserver_url(cfg),
        pki.cert_pem("ca"),
        SUPER_ADMIN_USER,
        pki.cert_pem("super-admin"),
        pki.key_pem("super-admin"),
    )


def _file(name: str, content: bytes, restarts: tuple[str, ...]) -> HostFile:
    return HostFile(path=f"{KUBE_DIR}/{name}", content=content, mode=0o600, restarts=restarts, secret=True)


def kubeconfig_files(
    cfg: ClusterConfig, pki: ClusterPKI, secrets: ClusterSecrets, node: Node
) -> list[HostFile]:
    """The kubeconfigs `node` receives, sorted by path, all 0600 and secret.

    Masters: admin.conf, controller-manager.conf, scheduler.conf. Workers: kube-proxy.conf
    and bootstrap-kubelet.conf (bootstrap token; the kubelet writes its own kubelet.conf
    once its CSR is approved). A node with both roles gets both sets.
    """
    cluster, ca = cfg.cluster_id, pki.cert_pem("ca")
    server, local = apiserver_url(cfg), local_apiserver_url(cfg)
    files: list[HostFile] = []
    if node.is_master:
        files.append(_file("admin.conf", admin_kubeconfig(cfg, pki, server), ()))
        for name, user, unit in (
            ("controller-manager", "system:kube-controller-manager", "kube-controller-manager"),
            ("scheduler", "system:kube-scheduler", "kube-scheduler"),
        ):
            content = kubeconfig(cluster, local, ca, user, pki.cert_pem(name), pki.key_pem(name))
            files.append(_file(f"{name}.conf", content, (unit,)))
    if node.is_worker:
        proxy = kubeconfig(
            cluster, server, ca, "system:kube-proxy", pki.cert_pem("kube-proxy"), pki.key_pem("kube-proxy")
        )
        files.append(_file("kube-proxy.conf", proxy, ("kube-proxy",)))
        boot = kubeconfig(cluster, server, ca, BOOTSTRAP_USER, token=secrets.bootstrap_token())
        files.append(_file("bootstrap-kubelet.conf", boot, ("kubelet",)))
    return sorted(files, key=lambda f: f.path)
