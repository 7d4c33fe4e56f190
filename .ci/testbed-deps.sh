#!/usr/bin/env bash
# Install what the local testbed and its bundle build need, idempotently.
# Why a separate script: `.ci/run` calls it on fresh CI machines, and developers can run
# it once by hand. It only installs what is missing, so on a warm machine it is instant.
#   systemd-container  systemd-nspawn (the machines)
#   debootstrap        the machines' root filesystem
#   iproute2           bridge, netns and veth
#   openssh-client     ssh-keygen/ssh for poking at machines by hand
#   busybox-static     the workload image's busybox (the bundle apt-get downloads it too)
#   gcc, libc6-dev     the static pause binary
#   qemu-user-static,  arm64 machines: binfmt_misc runs their aarch64 programs through
#   binfmt-support     qemu-aarch64 (registered with flag F so it also works inside a machine)
#   rpm, dnf,          rpm machines (rpm and dnf go into their rootfs) and the rpm bundle:
#   createrepo-c,      rpmbuild packages the Go-built binaries, alien converts the bundle's
#   alien              debs, createrepo_c indexes the testbed's local dnf repo
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross   the arm64 bundle's static pause binary
#   dpkg-dev, ninja-build, meson, libglib2.0-dev, pkg-config, flex, bison
#                      `apt-get source qemu` and its static aarch64-linux-user build (the
#                      testbed's patched qemu-aarch64, design-notes §7)
#   golang-go          only if `go` is missing. Kubernetes 1.35 needs Go >= 1.25 but bookworm
#                      ships 1.19, which cannot even switch toolchains; then the official Go
#                      toolchain module golang.org/toolchain is fetched from the Go module
#                      proxy into /usr/local/go (EGGO_GO_VERSION, default 1.26.8;
#                      EGGO_GO_PREFIX and EGGO_GO_FORCE=1 exist to test this path).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
want=(systemd-container debootstrap iproute2 openssh-client busybox-static gcc libc6-dev
      qemu-user-static binfmt-support gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      rpm dnf createrepo-c alien dpkg-dev ninja-build meson libglib2.0-dev pkg-config flex bison)
have_go() { command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; }
have_go || want+=(golang-go)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "testbed-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# binfmt_misc: a host whose PID 1 is not systemd never mounts it nor loads binfmt.d, so
# mount it and register qemu-aarch64 from Debian's binfmt.d line (flag F: the kernel opens
# the interpreter now, so it works in machines whose rootfs has no qemu).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  line=$(grep -v '^#' "$conf" | head -n1)
  case "${line##*:}" in *F*) ;; *) line="${line}F" ;; esac
  printf '%s' "$line" > /proc/sys/fs/binfmt_misc/register
  echo "testbed-deps: registered qemu-aarch64 with binfmt_misc" >&2
fi

go_minor() {  # prints the minor version of the best go found (0 if none)
  local g
  for g in /usr/local/go/bin/go "$(command -v go || true)"; do
    [ -n "$g" ] && [ -x "$g" ] || continue
    "$g" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; return
  done
  echo 0
}
prefix=${EGGO_GO_PREFIX:-/usr/local/go}
if [ "$(go_minor)" -lt 25 ] || [ "${EGGO_GO_FORCE:-0}" = 1 ]; then
  ver=${EGGO_GO_VERSION:-1.26.8}
  arch=$(dpkg --print-architecture)
  proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
  mod="v0.0.1-go${ver}.linux-${arch}"
  echo "testbed-deps: fetching Go ${ver} (golang.org/toolchain@${mod}) from ${proxy}" >&2
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  curl -fsSL "${proxy}/golang.org/toolchain/@v/${mod}.zip" -o "$tmp/go.zip"
  python3 -m zipfile -e "$tmp/go.zip" "$tmp/x"
  root="$tmp/x/golang.org/toolchain@${mod}"
  chmod +x "$root"/bin/* "$root"/pkg/tool/*/*   # module zips do not keep exec bits
  mkdir -p "$(dirname "$prefix")"
  rm -rf "$prefix.new" && mv "$root" "$prefix.new"
  rm -rf "$prefix" && mv "$prefix.new" "$prefix"
fi
echo "testbed-deps: ok ($("$prefix/bin/go" version 2>/dev/null || go version))" >&2
