"""What an emulated arm64 machine needs on this amd64 host: testbed-side workarounds only.

An arm64 machine boots the arm64 rootfs under qemu-user through binfmt_misc. Stock qemu
7.2 runs the kubelet and containerd but not a non-privileged pod. Three
workarounds make it work, and all three live here, in the testbed, never in what the
deployer installs on real arm64 hosts:

1. a patched qemu-aarch64 (scripts/qemu-prctl.patch: PR_SET_CHILD_SUBREAPER and
   PR_GET_SECCOMP pass through, the seccomp filter-mode probe answers like the kernel),
   built from Debian's qemu source and registered in binfmt_misc as `eggo-aarch64` with
   flag F. binfmt_misc tries the newest entry first, so it takes over from Debian's
   `qemu-aarch64` entry for every aarch64 program on the host (only testbed machines run
   any);
2. the native amd64 runc, because arm64 runc fails under qemu ("nsexec: could not ensure
   we are a cloned binary"), with the amd64 loader, libc and libseccomp it links;
3. a small static amd64 wrapper (scripts/runc-wrapper.go) installed as
   /usr/local/sbin/runc, first in containerd's PATH: it adds an arch_prctl allow rule to
   each container's seccomp profile (the x86-64 qemu needs it), then execs the real runc;
4. the native amd64 iptables (xtables-nft-multi with its libraries and extensions) as
   /usr/local/sbin/iptables and friends, first in PATH for the CNI plugins, kube-proxy and
   sudo: qemu-user emulates neither nf_tables netlink ("Failed to initialize nft: Protocol
   not supported") nor the legacy iptables sockopts ("can't initialize iptables table
   `nat'"), so the arm64 iptables the deploy installs cannot run and every pod sandbox
   failed with "failed to locate iptables".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from eggo_nornir.testbed import paths, rootfs
from eggo_nornir.testbed.proc import TestbedError, run

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_NAME = "eggo-aarch64"
# ELF64 little-endian, e_machine 0xb7 (AArch64): the magic and mask of Debian's binfmt.d line
AARCH64_MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
TESTBED_LIB = "usr/local/lib/eggo-testbed/amd64"
RUNC_WRAPPER_PATH = "usr/local/sbin/runc"
# what the amd64 runc needs to load, as (host path, path inside the machine)
AMD64_LOADER = ("/lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2")
AMD64_LIBS = ("libc.so.6", "libseccomp.so.2")
AMD64_LIBDIR = "usr/lib/x86_64-linux-gnu"


def _scripts_hash(*names: str) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update((paths.scripts_dir() / name).read_bytes())
    return h.hexdigest()[:12]


def patched_qemu() -> Path:
    """The cached patched qemu-aarch64, built (about 70 s plus the source download) if missing."""
    out = paths.cache_dir() / "qemu" / f"qemu-aarch64-eggo-{_scripts_hash('qemu-prctl.patch')}"
    if out.is_file():
        return out
    log_file = paths.logs_dir() / "build-qemu-aarch64.log"
    print(f"building the testbed's patched qemu-aarch64 (log: {log_file}) ...", file=sys.stderr, flush=True)
    run(
        [
            "bash",
            str(paths.scripts_dir() / "build-qemu-aarch64.sh"),
            rootfs.host_mirror(),
            str(paths.cache_dir() / "qemu"),
            str(out),
        ],
        step="emulation: build the patched qemu-aarch64",
        log_file=log_file,
    )
    return out


# F: the interpreter is opened at registration, so it also works inside machines. C (which
# implies O): credentials come from the program, not from qemu, so setuid programs work:
# without it `sudo` in an arm64 machine says "effective uid is not 0" and a deploy as a
# sudo user fails in preflight.
BINFMT_FLAGS = "POCF"


def binfmt_line(interpreter: Path) -> str:
    """The binfmt_misc `register` line for aarch64 ELF through `interpreter`. Pure."""
    return f":{BINFMT_NAME}:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{interpreter}:{BINFMT_FLAGS}"


def register_binfmt(interpreter: Path) -> None:
    """Make `interpreter` the one the kernel runs aarch64 programs with (idempotent)."""
    if not (BINFMT_DIR / "register").exists():
        run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
            step="emulation: mount binfmt_misc",
        )
    entry = BINFMT_DIR / BINFMT_NAME
    if entry.exists():
        text = entry.read_text()
        current = f"interpreter {interpreter}\n" in text and f"flags: {BINFMT_FLAGS}\n" in text
        if current and text.startswith("enabled"):
            return
        entry.write_text("-1")  # an older build: drop it, then register the current one
    (BINFMT_DIR / "register").write_text(binfmt_line(interpreter))


def runc_wrapper() -> Path:
    """The static amd64 runc wrapper, built with Go once per source change."""
    out = paths.cache_dir() / "emulation" / f"runc-wrapper-{_scripts_hash('runc-wrapper.go')}"
    if out.is_file():
        return out
    go = "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else shutil.which("go")
    if go is None:
        raise TestbedError("emulation: `go` is not installed (run .ci/testbed-deps.sh)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eggo-runcwrap-") as tmp:
        shutil.copy(paths.scripts_dir() / "runc-wrapper.go", Path(tmp) / "main.go")
        (Path(tmp) / "go.mod").write_text("module eggo.local/runcwrapper\n\ngo 1.22\n")
        env = {
            **os.environ,
            "CGO_ENABLED": "0",
            "GOOS": "linux",
            "GOARCH": "amd64",
            "GOTOOLCHAIN": "local",
            "GOCACHE": str(paths.cache_dir() / "go" / "build"),
        }
        run(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out) + ".tmp", "."],
            step="emulation: build the runc wrapper",
            cwd=tmp,
            env=env,
        )
    os.replace(str(out) + ".tmp", out)
    return out


def amd64_runc() -> Path:
    """The runc binary of Debian's amd64 runc package (the same deb the amd64 bundle carries)."""
    from eggo_nornir.testbed import bundle  # bundle imports are heavy; only arm64 machines need them

    out = paths.cache_dir() / "emulation" / "runc-amd64"
    [deb] = bundle.download_debs("amd64", bundle.resolve_one("runc", "amd64"))
    stamp = out.with_name("runc-amd64.from")
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == deb.name:
        return out
    with tempfile.TemporaryDirectory(prefix="eggo-runc-") as tmp:
        run(["dpkg-deb", "-x", str(deb), tmp], step="emulation: unpack the amd64 runc")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "usr/sbin/runc", str(out) + ".tmp")
    os.replace(str(out) + ".tmp", out)
    stamp.write_text(deb.name + "\n")
    return out


# the amd64 iptables and the libraries it loads (Debian package names; ld.so finds them
# in /usr/lib/x86_64-linux-gnu, libxtables finds its extensions in .../xtables)
AMD64_IPTABLES_DEBS = (
    "iptables",
    "libxtables12",
    "libip4tc2",
    "libip6tc2",
    "libmnl0",
    "libnftnl11",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
)
IPTABLES_NAMES = (
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
)


def amd64_iptables() -> Path:
    """Debian's amd64 iptables and its libraries, unpacked once into one cached tree."""
    from eggo_nornir.testbed import bundle  # bundle imports are heavy; only arm64 machines need them

    wanted = [w for name in AMD64_IPTABLES_DEBS for w in bundle.resolve_one(name, "amd64")]
    debs = bundle.download_debs("amd64", wanted)
    out = paths.cache_dir() / "emulation" / "iptables-amd64"
    stamp = out.with_name("iptables-amd64.from")
    names = "\n".join(sorted(d.name for d in debs)) + "\n"
    if out.is_dir() and stamp.is_file() and stamp.read_text() == names:
        return out
    tmp = Path(tempfile.mkdtemp(prefix="iptables-amd64-", dir=out.parent))
    for deb in debs:
        run(["dpkg-deb", "-x", str(deb), str(tmp)], step="emulation: unpack the amd64 iptables")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    stamp.write_text(names)
    return out


def prepare_host() -> dict[str, Path]:
    """Build (or reuse) every workaround and register the interpreter; return the files to install."""
    qemu = patched_qemu()
    register_binfmt(qemu)
    return {"runc": amd64_runc(), "wrapper": runc_wrapper(), "iptables": amd64_iptables()}


def install_into(root: Path, files: dict[str, Path]) -> None:
    """Put the amd64 runc, what it links and the wrapper into one arm64 machine's root."""
    lib = root / TESTBED_LIB
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy2(files["runc"], lib / "runc")
    libdir = root / AMD64_LIBDIR
    libdir.mkdir(parents=True, exist_ok=True)
    for name in AMD64_LIBS:
        shutil.copy2(Path("/usr/lib/x86_64-linux-gnu") / name, libdir / name)
    host_loader, loader = AMD64_LOADER
    (root / loader).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(host_loader, root / loader)
    lib64 = root / "lib64"
    if not lib64.exists() and not lib64.is_symlink():
        lib64.symlink_to("usr/lib64")
    wrapper = root / RUNC_WRAPPER_PATH
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(files["wrapper"], wrapper)
    os.chmod(wrapper, 0o755)
    ipt = files["iptables"]
    shutil.copytree(ipt / AMD64_LIBDIR, libdir, symlinks=True, dirs_exist_ok=True)
    shutil.copy2(ipt / "usr/sbin/xtables-nft-multi", lib / "xtables-nft-multi")
    for name in IPTABLES_NAMES:  # xtables-nft-multi picks the tool by its argv[0]
        link = wrapper.parent / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"/{TESTBED_LIB}/xtables-nft-multi")
