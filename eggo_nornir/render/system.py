"""Kernel settings every Kubernetes node needs, persisted (upstream only set them until reboot).

`restarts` names systemd's own appliers, so a changed file is applied at once: restarting
systemd-modules-load loads the modules, systemd-sysctl re-reads /etc/sysctl.d. The modules file
sorts before the sysctl file, so br_netfilter is loaded before its sysctls are set.
"""

from __future__ import annotations

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render import paths as p
from eggo_nornir.render import security, unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render


def system_files(cfg: ClusterConfig, *, kubelet: bool) -> list[HostFile]:
    """`kubelet`: the node runs a kubelet, so it also gets the sysctls protectKernelDefaults checks."""
    ipv6 = ":" in cfg.network.podcidr or ":" in cfg.service.cidr
    sysctl = render(
        "system/sysctl.conf.j2", ipv6=ipv6, kubelet_sysctls=security.kubelet_sysctls(cfg) if kubelet else ()
    )
    return [
        HostFile(p.MODULES_CONF, render("system/modules-load.conf.j2"), restarts=(unit_names.MODULES_LOAD,)),
        HostFile(p.SYSCTL_CONF, sysctl, restarts=(unit_names.SYSCTL,)),
    ]
