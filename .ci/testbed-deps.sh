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
#   golang-go          only if `go` is missing. Kubernetes 1.35 needs Go >= 1.25 but bookworm
#                      ships 1.19, which cannot even switch toolchains; then the official Go
#                      toolchain module golang.org/toolchain is fetched from the Go module
#                      proxy into /usr/local/go (EGGO_GO_VERSION, default 1.26.8;
#                      EGGO_GO_PREFIX and EGGO_GO_FORCE=1 exist to test this path).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
want=(systemd-container debootstrap iproute2 openssh-client busybox-static gcc libc6-dev)
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
