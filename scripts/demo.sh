#!/usr/bin/env bash
# The demo: installs and builds if needed, then shows what attnc does with a
# spec (by default the Gemma-2 style local layer, which reads an input
# tensor `slopes`): its analysed mask and tile schedule at LQ = LK = 1024
# (`attnc show`, plus a picture), then attn-demo JIT-compiles it through the
# C++ API, checks the kernel against the float64 reference and times it at
# B=1 HQ=HKV=8 LQ=LK=1024 D=DV=64. Extra arguments go to attn-demo (e.g.
# --dtype bf16, --threads 1, -D window=128).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
spec="$root/examples/local_softcap_alibi.attn"
"$root/scripts/install-deps.sh"
[ -x "$root/build/tools/attnc" ] || "$root/scripts/build.sh"
ninja -C "$root/build" -j "${JOBS:-2}" attnc attn-demo >/dev/null
tools="$root/build/tools"

echo "== attnc show $spec --lq 1024 --lk 1024 --tile-q 64 --tile-k 64 --png mask.png"
"$tools/attnc" show "$spec" --lq 1024 --lk 1024 --tile-q 64 --tile-k 64 \
  --png "$root/build/mask.png"
echo "(mask picture: $root/build/mask.png)"
echo

# A fresh kernel cache, so that the compile time printed is a cold compile.
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
echo "== attn-demo $spec --shape 1,8,8,1024,1024,64,64${*:+ $*}"
ATTNC_CACHE_DIR="$cache" "$tools/attn-demo" "$spec" \
  --shape 1,8,8,1024,1024,64,64 "$@"
