#!/usr/bin/env bash
# The main job on the built-in local testbed, from a fresh Debian 12 machine, as root:
# install what is needed, build the offline bundle (real Kubernetes binaries from the Go
# module proxy, cached under ~/.cache/eggo-nornir), boot six systemd machines on a private
# bridge, deploy a 3-master / 2-worker / 1-LB cluster over SSH as a non-root sudo user,
# and show the nodes. Re-running it converges (nothing changes the second time).
#
#   bash examples/testbed-deploy.sh          # up + deploy
#   bash examples/testbed-deploy.sh down     # cleanup + testbed down
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
NAME=${EGGO_TESTBED_NAME:-eggotb}
OUT=${EGGO_TESTBED_OUT:-$HOME/.cache/eggo-nornir/testbed/$NAME}
eggo() { .venv/bin/python -m eggo_nornir "$@"; }

if [ "${1:-up}" = down ]; then
  eggo cleanup -f "$OUT/deploy.yaml" --yes || true
  eggo testbed down --out "$OUT"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates curl >/dev/null
  python3 -m venv .venv
  .venv/bin/pip install -q -U pip setuptools wheel
  .venv/bin/pip install -q -e .
fi
bash .ci/testbed-deps.sh
eggo testbed bundle --arch amd64
running=$(eggo testbed status --out "$OUT" --json | .venv/bin/python -c \
  'import json, sys; print(sum(bool(m.get("running")) for m in json.load(sys.stdin)["machines"]))')
[ "$running" -gt 0 ] || eggo testbed up --name "$NAME" --out "$OUT"
eggo deploy "$OUT/deploy.yaml" --report "$OUT/report.json"
kubectl=$(ls -d "$HOME"/.cache/eggo-nornir/bin/v*-amd64 | tail -n 1)/kubectl
KUBECONFIG="$HOME/.eggo/clusters/$NAME/admin.conf" "$kubectl" get nodes -o wide
echo "cluster $NAME is up; KUBECONFIG=$HOME/.eggo/clusters/$NAME/admin.conf; tear down: bash $0 down"
