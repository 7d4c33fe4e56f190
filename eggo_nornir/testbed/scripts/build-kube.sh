#!/usr/bin/env bash
# Build real Kubernetes, etcd and CoreDNS binaries from the Go module proxy.
# Why a scratch module: k8s.io/kubernetes replaces its staging modules with
# local paths, which only resolve inside the upstream tree; we map each of them
# to the published k8s.io/<staging> v0.Y.Z module instead.
# Usage: build-kube.sh KUBE_VERSION ETCD_VERSION COREDNS_VERSION GOARCH OUTDIR
set -euo pipefail
KUBE=${1:?kube version like v1.35.4}; ETCD=${2:?etcd version}; COREDNS=${3:?coredns version}
ARCH=${4:?goarch}; OUT=${5:?outdir}
. "$(dirname "$0")/go-env.sh"
work=$CACHE/src/kube-$KUBE; mkdir -p "$work"; cd "$work"
minor=${KUBE#v1.}; stag="v0.$minor"
if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $KUBE" go.mod; then
  go mod download -json "k8s.io/kubernetes@$KUBE" >/dev/null
  upmod=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBE.mod
  { echo "module eggo.local/kubebuild"; echo; echo "go $(awk '/^go /{print $2; exit}' "$upmod")"; echo;
    echo "require k8s.io/kubernetes $KUBE"; echo;
    grep -E '=> \./staging/src/' "$upmod" | awk -v v="$stag" '{print "replace " $1 " => " $1 " " v}'; } > go.mod
  printf 'package main\nimport (\n _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n _ "k8s.io/kubernetes/cmd/kubelet/app"\n)\nfunc main() {}\n' > tools.go
  go mod tidy >/dev/null 2>&1 || go mod download all
fi
ver="-X k8s.io/component-base/version.gitVersion=$KUBE -X k8s.io/client-go/pkg/version.gitVersion=$KUBE -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "$OUT/$c" ] && continue
  echo "building $c $KUBE $ARCH" >&2
  go build -trimpath -ldflags "-s -w $ver" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c" && mv "$OUT/$c.tmp" "$OUT/$c"
done
# etcd, etcdctl and etcdutl (etcd 3.6 moved `snapshot restore` from etcdctl to etcdutl)
ew=$CACHE/src/etcd-$ETCD; mkdir -p "$ew"; cd "$ew"
if [ ! -f go.mod ] || ! grep -q "go.etcd.io/etcd/server/v3 $ETCD" go.mod || ! grep -q "go.etcd.io/etcd/etcdutl/v3 $ETCD" go.mod; then
  printf 'module eggo.local/etcdbuild\n\ngo 1.24\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD" "go.etcd.io/etcd/etcdctl/v3@$ETCD" "go.etcd.io/etcd/etcdutl/v3@$ETCD" >/dev/null 2>&1
  printf 'package main\nimport (\n _ "go.etcd.io/etcd/server/v3/etcdmain"\n _ "go.etcd.io/etcd/etcdctl/v3/ctlv3"\n _ "go.etcd.io/etcd/etcdutl/v3/etcdutl"\n)\nfunc main() {}\n' > tools.go
  go mod tidy >/dev/null 2>&1 || true
fi
[ -x "$OUT/etcd" ] || { echo "building etcd $ETCD" >&2; go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$OUT/etcd.tmp" "$OUT/etcd"; }
[ -x "$OUT/etcdctl" ] || { echo "building etcdctl $ETCD" >&2; go build -trimpath -ldflags "-s -w" -o "$OUT/etcdctl.tmp" go.etcd.io/etcd/etcdctl/v3 && mv "$OUT/etcdctl.tmp" "$OUT/etcdctl"; }
[ -x "$OUT/etcdutl" ] || { echo "building etcdutl $ETCD" >&2; go build -trimpath -ldflags "-s -w" -o "$OUT/etcdutl.tmp" go.etcd.io/etcd/etcdutl/v3 && mv "$OUT/etcdutl.tmp" "$OUT/etcdutl"; }
# coredns: its module root is package main, which cannot be imported from tools.go, so
# no `go mod tidy` here (tidy would drop the requirement and the build would silently
# pick the newest CoreDNS); `go get` pins it and -mod=mod fills go.sum while building.
cw=$CACHE/src/coredns-$COREDNS; mkdir -p "$cw"; cd "$cw"
if [ ! -f go.mod ] || ! grep -q "github.com/coredns/coredns $COREDNS" go.mod; then
  printf 'module eggo.local/corednsbuild\n\ngo 1.24\n' > go.mod; rm -f go.sum
  go get "github.com/coredns/coredns@$COREDNS" >/dev/null
  grep -q "github.com/coredns/coredns $COREDNS" go.mod || { echo "coredns $COREDNS not pinned in $cw/go.mod" >&2; exit 1; }
fi
[ -x "$OUT/coredns" ] || { echo "building coredns $COREDNS" >&2; go build -trimpath -ldflags "-s -w" -o "$OUT/coredns.tmp" github.com/coredns/coredns && mv "$OUT/coredns.tmp" "$OUT/coredns"; }
# Check that every binary reports the pinned version (only when it can run here).
if [ "$(go env GOHOSTARCH)" = "$ARCH" ]; then
  check() { local bin=$1 want=$2; shift 2; local got; got=$("$OUT/$bin" "$@" 2>&1 | head -n 3)
    case "$got" in *"$want"*) ;; *) echo "version check: $bin reports '$got', expected $want" >&2; bad=1 ;; esac; }
  bad=0
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do check "$c" "$KUBE" --version; done
  check kubectl "$KUBE" version --client
  check etcd "${ETCD#v}" --version; check etcdctl "${ETCD#v}" version; check etcdutl "${ETCD#v}" version
  check coredns "CoreDNS-${COREDNS#v}" -version
  [ "$bad" = 0 ] || exit 1
fi
echo "built into $OUT" >&2
