"""Regenerate the tiny manual-layout tarballs next to this file (deterministic bytes).

They hold, empty, every member that tests/data/manual-example.yaml and
tests/data/upstream-template.yaml name, in the operator manual's flat layout (rpms,
binaries and images.tar at the top, addons/ beside them), so both pass `check`.
Run: python tests/data/packages/make_tarballs.py
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

RPMS = (
    "etcd-3.4.14-2", "kubernetes-client-1.20.2-9", "kubernetes-master-1.20.2-9", "kubernetes-node-1.20.2-9",
    "kubernetes-kubelet-1.20.2-9", "coredns-1.7.0-1", "libnetfilter_cthelper-1.0.0-15",
    "libnetfilter_cttimeout-1.0.0-13", "libnetfilter_queue-1.0.5-1", "conntrack-tools-1.4.6-2",
    "socat-1.7.3.2-8", "containernetworking-plugins-0.8.6-5", "libcgroup-0.42.2-1",
    "docker-engine-18.09.0-200", "nginx-1.21.5-2",
    "gd-2.3.2-1", "gperftools-libs-2.8-4", "libunwind-1.4.0-4", "libwebp-1.2.1-1", "libxslt-1.1.34-5",
    "nginx-all-modules-1.21.5-2", "nginx-filesystem-1.21.5-2", "nginx-mod-http-image-filter-1.21.5-2",
    "nginx-mod-http-perl-1.21.5-2", "nginx-mod-http-xslt-filter-1.21.5-2", "nginx-mod-mail-1.21.5-2",
    "nginx-mod-stream-1.21.5-2", "emacs-filesystem-27.2-3", "gflags-2.2.2-1", "gpm-libs-1.20.7-26",
    "re2-20211101-1", "rsync-3.2.3-4", "vim-filesystem-9.0-1", "vim-common-9.0-1", "vim-enhanced-9.0-1",
    "zlib-devel-1.2.11-31", "libwebsockets-4.2.1-1", "protobuf-3.14.0-6", "protobuf-devel-3.14.0-6",
    "grpc-1.31.0-6", "yajl-2.1.0-19", "lxc-4.0.3-1", "lxc-libs-4.0.3-1", "lcr-2.0.7-1", "clibcni-2.0.7-1",
    "iSulad-2.0.14-1",
)  # fmt: skip
FILES = (
    "kubectl",
    "kube-apiserver",
    "pre.sh",
    "images.tar",
    "pause.tar",
    "prejoin.sh",
    "postjoin.sh",
    "calico.yaml",
    "addons/xxx.yaml",
    "addons/calico.yaml",
)
RPM_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def write(path: Path, arch: str, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> None:
    """The tarball for `arch`, without the members named in `drop`, plus those in `add` (tests)."""
    names = sorted(({f"{r}.{RPM_ARCH[arch]}.rpm" for r in RPMS} | set(FILES) | set(add)) - set(drop))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uname, info.gname = 0o644, 0, "root", "root"
            tf.addfile(info, io.BytesIO(b""))
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue())


if __name__ == "__main__":
    here = Path(__file__).parent
    for arch in RPM_ARCH:
        write(here / f"packages-{arch}.tar.gz", arch)
