# Sourced by the build-*.sh scripts once they have set ARCH and OUT: the Go toolchain and its
# caches under the eggo cache (shared by every build; Go's caches are safe for concurrent
# builds), static binaries for GOARCH=$ARCH, and one build per OUT at a time (a second caller
# waits on the lock, then finds the binaries).
CACHE=${EGGO_CACHE:-$HOME/.cache/eggo-nornir}
# Prefer the toolchain .ci/testbed-deps.sh installs over an older distro go.
if [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOFLAGS=-mod=mod GOTOOLCHAIN=local
export CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH
mkdir -p "$OUT"
exec 9>"$OUT.lock"; flock 9

# scratch_module NAME MODULE VERSION: a go.mod (in the current dir) for module eggo.local/NAME
# that requires MODULE@VERSION and MODULE's own requirements, so the build picks the versions
# MODULE was released with; sets `src` to MODULE's source in the module cache.
scratch_module() {
  local name=$1 module=$2 version=$3 goline
  go mod download -json "$module@$version" >/dev/null
  src=$GOMODCACHE/$module@$version
  goline=$(awk '/^go /{print $2; exit}' "$src/go.mod")
  { echo "module eggo.local/$name"; echo; echo "go $goline"; echo;
    echo "require $module $version"; sed -n '/^require (/,/^)/p' "$src/go.mod"; } > go.mod
  rm -f go.sum
}
