"""The name of every systemd unit eggo-nornir writes or drives, spelled once.

Why one module: the renderer writes `<name>.service`, the deploy steps restart it, cleanup
stops it and `status` checks it; a name spelled in each of them drifts apart the day one
changes. Everything else imports these constants (and `roles.ROLE_UNITS` says which role
runs which). No imports here, so any module can use it.
"""

from __future__ import annotations

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
NGINX = "kube-nginx"
COREDNS = "coredns"
POD_ROUTES = "eggo-pod-routes"
CONTAINERD = "containerd"
DOCKER = "docker"
CRI_DOCKERD = "cri-docker"
ISULAD = "isulad"
SYSCTL = "systemd-sysctl"
MODULES_LOAD = "systemd-modules-load"

CONTROL_PLANE: tuple[str, ...] = (APISERVER, CONTROLLER_MANAGER, SCHEDULER)
RUNTIMES: tuple[str, ...] = (CONTAINERD, DOCKER, CRI_DOCKERD, ISULAD)
