#!/usr/bin/env bash
# Build the testbed's patched qemu-aarch64 (static, aarch64-linux-user only) from Debian's
# qemu source plus qemu-prctl.patch (design-notes §7). Testbed only: real arm64 hosts
# never run it.
# Why a private apt config: `apt-get source` needs deb-src entries, and the host's apt
# sources must not change; the mirror is the one the host already uses.
# Usage: build-qemu-aarch64.sh MIRROR WORKDIR OUTFILE
set -euo pipefail
MIRROR=${1:?mirror}; WORK=${2:?workdir}; OUTFILE=${3:?outfile}
PATCH=$(cd "$(dirname "$0")" && pwd)/qemu-prctl.patch
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
printf 'deb-src %s bookworm main\ndeb-src %s bookworm-updates main\n' "$MIRROR" "$MIRROR" > "$WORK/apt/sources.list"
A=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" -o Debug::NoLocking=1
   -o APT::Sandbox::User=root)
# The source of the qemu the host runs, so the patched build differs only by the patch.
ver=$(dpkg-query -W -f='${source:Version}' qemu-user-static)
cd "$WORK/src"
src=$(ls -d qemu-*/ 2>/dev/null | head -n1 || true)
if [ -z "$src" ] || [ "$(cat "$WORK/src/version" 2>/dev/null)" != "$ver" ]; then
  rm -rf "$WORK/src" && mkdir -p "$WORK/src" && cd "$WORK/src"
  apt-get "${A[@]}" update -qq
  apt-get "${A[@]}" source -qq "qemu=$ver"
  echo "$ver" > version
  src=$(ls -d qemu-*/ | head -n1)
fi
cd "$WORK/src/$src"
if ! grep -q 'arg2 == 2 && arg3 == 0' linux-user/syscall.c; then
  patch -p1 < "$PATCH"
fi
rm -rf build-eggo && mkdir build-eggo && cd build-eggo
../configure --static --disable-system --enable-linux-user --target-list=aarch64-linux-user \
  --without-default-features --disable-docs --disable-tools --disable-werror >configure.log 2>&1 \
  || { tail -n 30 configure.log >&2; exit 1; }
make -j"$(nproc)" qemu-aarch64 >make.log 2>&1 || { tail -n 30 make.log >&2; exit 1; }
strip qemu-aarch64
mkdir -p "$(dirname "$OUTFILE")"
cp qemu-aarch64 "$OUTFILE.tmp" && mv "$OUTFILE.tmp" "$OUTFILE"
echo "built $OUTFILE from qemu $ver" >&2
