#!/usr/bin/env bash
# Build a static `flannel` CNI plugin from the Go module proxy.
# Why containernetworking/plugins v0.9.1: the plugin moved to github.com/flannel-io/cni-plugin,
# which the Go module proxy refuses (403); v0.9.1 is the last release of the reference plugins
# that still carries plugins/meta/flannel. Its job is small and stable (read
# /run/flannel/subnet.env, delegate to the bridge and host-local plugins), so the old release
# serves a current flanneld.
# Usage: build-cni-flannel.sh CNI_PLUGINS_VERSION GOARCH OUTDIR
set -euo pipefail
VERSION=${1:?containernetworking/plugins version like v0.9.1}; ARCH=${2:?goarch}; OUT=${3:?outdir}
. "$(dirname "$0")/go-env.sh"
[ -x "$OUT/flannel" ] && { echo "flannel CNI plugin already in $OUT" >&2; exit 0; }
work=$CACHE/src/cni-plugins-$VERSION; mkdir -p "$work"; cd "$work"
if [ ! -f go.mod ] || ! grep -q "github.com/containernetworking/plugins $VERSION" go.mod; then
  scratch_module cnibuild github.com/containernetworking/plugins "$VERSION"
fi
echo "building the flannel CNI plugin from containernetworking/plugins $VERSION for $ARCH" >&2
go build -trimpath -ldflags "-s -w" -o "$OUT/flannel.tmp" github.com/containernetworking/plugins/plugins/meta/flannel
mv "$OUT/flannel.tmp" "$OUT/flannel"
echo "built into $OUT" >&2
