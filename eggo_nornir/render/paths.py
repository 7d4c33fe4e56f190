"""Where things live on the hosts: one table, shared by flags, templates and the assembly.

Why one module: a path appears in a unit flag, in a config file and in the list of files a host
receives; if each of those spelled it separately they would drift. Cert and kubeconfig paths are
the ones the PKI module writes (see `render/pki.py`, `render/kubeconfig.py`), kubeadm-style.

Units go to `/etc/systemd/system`, not `/usr/lib/systemd/system` as upstream does: that is the
administrator's directory, it takes precedence over a distro package's unit (Debian's containerd,
etcd-server), and a package upgrade never overwrites it.
"""

from __future__ import annotations

K8S_DIR = "/etc/kubernetes"
PKI_DIR = f"{K8S_DIR}/pki"
ETCD_PKI_DIR = f"{PKI_DIR}/etcd"
ADDONS_DIR = f"{K8S_DIR}/addons"
UNIT_DIR = "/etc/systemd/system"
BIN_DIR = "/usr/bin"

# PKI (written by render/pki.py)
CA_CRT = f"{PKI_DIR}/ca.crt"
CA_KEY = f"{PKI_DIR}/ca.key"
APISERVER_CRT = f"{PKI_DIR}/apiserver.crt"
APISERVER_KEY = f"{PKI_DIR}/apiserver.key"
APISERVER_KUBELET_CLIENT_CRT = f"{PKI_DIR}/apiserver-kubelet-client.crt"
APISERVER_KUBELET_CLIENT_KEY = f"{PKI_DIR}/apiserver-kubelet-client.key"
APISERVER_ETCD_CLIENT_CRT = f"{PKI_DIR}/apiserver-etcd-client.crt"
APISERVER_ETCD_CLIENT_KEY = f"{PKI_DIR}/apiserver-etcd-client.key"
FRONT_PROXY_CA_CRT = f"{PKI_DIR}/front-proxy-ca.crt"
FRONT_PROXY_CLIENT_CRT = f"{PKI_DIR}/front-proxy-client.crt"
FRONT_PROXY_CLIENT_KEY = f"{PKI_DIR}/front-proxy-client.key"
SA_KEY = f"{PKI_DIR}/sa.key"
SA_PUB = f"{PKI_DIR}/sa.pub"
ETCD_CA_CRT = f"{ETCD_PKI_DIR}/ca.crt"
ETCD_SERVER_CRT = f"{ETCD_PKI_DIR}/server.crt"
ETCD_SERVER_KEY = f"{ETCD_PKI_DIR}/server.key"
ETCD_PEER_CRT = f"{ETCD_PKI_DIR}/peer.crt"
ETCD_PEER_KEY = f"{ETCD_PKI_DIR}/peer.key"
ETCD_HEALTHCHECK_CRT = f"{ETCD_PKI_DIR}/healthcheck-client.crt"
ETCD_HEALTHCHECK_KEY = f"{ETCD_PKI_DIR}/healthcheck-client.key"

# kubeconfigs (written by render/kubeconfig.py, except kubelet.conf which the kubelet writes itself
# after TLS bootstrapping)
ADMIN_CONF = f"{K8S_DIR}/admin.conf"
CONTROLLER_MANAGER_CONF = f"{K8S_DIR}/controller-manager.conf"
SCHEDULER_CONF = f"{K8S_DIR}/scheduler.conf"
KUBE_PROXY_CONF = f"{K8S_DIR}/kube-proxy.conf"
BOOTSTRAP_KUBELET_CONF = f"{K8S_DIR}/bootstrap-kubelet.conf"
KUBELET_CONF = f"{K8S_DIR}/kubelet.conf"

# component configs (ours)
ENCRYPTION_CONFIG = f"{K8S_DIR}/encryption-config.yaml"
AUDIT_POLICY = f"{K8S_DIR}/audit-policy.yaml"
AUTHENTICATION_CONFIG = f"{K8S_DIR}/authentication-config.yaml"
AUDIT_LOG_DIR = "/var/log/kubernetes/audit"
AUDIT_LOG = f"{AUDIT_LOG_DIR}/audit.log"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBE_PROXY_CONFIG = f"{K8S_DIR}/kube-proxy-config.yaml"
ETCD_ENV = "/etc/etcd/etcd.conf"
# written once, before a member first starts (see flags.etcd_bootstrap_env)
ETCD_BOOTSTRAP_ENV = "/etc/etcd/bootstrap.conf"
ETCD_DATA_DIR = "/var/lib/etcd"
NGINX_CONF = f"{K8S_DIR}/kube-nginx.conf"
COREDNS_COREFILE = "/etc/coredns/Corefile"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
SYSCTL_CONF = "/etc/sysctl.d/99-kubernetes.conf"
MODULES_CONF = "/etc/modules-load.d/kubernetes.conf"
CNI_CONF_DIR = "/etc/cni/net.d"
BRIDGE_CONFLIST = f"{CNI_CONF_DIR}/10-eggo-bridge.conflist"
LOOPBACK_CONF = f"{CNI_CONF_DIR}/99-loopback.conf"
POD_ROUTES = f"{K8S_DIR}/pod-routes.batch"

# tools the units call; /usr/sbin/... resolves on both Debian and openEuler (merged /usr)
IP_BIN = "/usr/sbin/ip"
MODPROBE_BIN = "/usr/sbin/modprobe"
NGINX_BIN = "/usr/sbin/nginx"
KILL_BIN = "/bin/kill"


def unit_path(service: str) -> str:
    """Where service `service` is written. Services are named without `.service` everywhere
    (HostFile.restarts, pki.UNIT_ORDER), as `systemctl restart` accepts them."""
    return f"{UNIT_DIR}/{service}.service"


def binary(name: str) -> str:
    """Absolute path of a component binary (upstream's fixed `/usr/bin`; `bin` packages install there)."""
    return f"{BIN_DIR}/{name}"
