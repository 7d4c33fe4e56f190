#!/usr/bin/env bash
# Build a static flanneld from the Go module proxy (no registry is reachable from the testbed).
# Why a copy of flannel's main.go in a scratch module: main.go links every backend, and the
# Go module proxy refuses the Tencent Cloud SDK that the tencentvpc backend imports (403),
# and the udp backend needs cgo (we build static, CGO_ENABLED=0). The testbed needs vxlan
# only, so the build uses flannel's own main.go minus those two import lines (the rest of
# flannel is used as published).
# Usage: build-flannel.sh FLANNEL_VERSION GOARCH OUTDIR
set -euo pipefail
FLANNEL=${1:?flannel version like v0.28.10}; ARCH=${2:?goarch}; OUT=${3:?outdir}
. "$(dirname "$0")/go-env.sh"
[ -x "$OUT/flanneld" ] && { echo "flanneld already in $OUT" >&2; exit 0; }
fw=$CACHE/src/flannel-$FLANNEL; mkdir -p "$fw"; cd "$fw"
if [ ! -f go.mod ] || ! grep -q "github.com/flannel-io/flannel $FLANNEL" go.mod || grep -q "backend/udp\"" main.go; then
  scratch_module flannelbuild github.com/flannel-io/flannel "$FLANNEL"
  grep -v -e 'pkg/backend/tencentvpc"' -e 'pkg/backend/udp"' "$src/main.go" > main.go
fi
echo "building flanneld $FLANNEL $ARCH" >&2
go build -trimpath -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL" \
  -o "$OUT/flanneld.tmp" . && mv "$OUT/flanneld.tmp" "$OUT/flanneld"
if [ "$(go env GOHOSTARCH)" = "$ARCH" ]; then
  got=$("$OUT/flanneld" --version 2>&1 | head -n 1)
  case "$got" in *"$FLANNEL"*) ;; *) echo "version check: flanneld reports '$got', expected $FLANNEL" >&2; rm -f "$OUT/flanneld"; exit 1 ;; esac
fi
echo "built into $OUT" >&2
