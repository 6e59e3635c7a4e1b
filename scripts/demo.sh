#!/usr/bin/env bash
# The demo: installs and builds if needed, then shows what attnc does with a
# spec today: the attn IR of a Gemma-2 style local layer, its analysed form
# (params folded, mask turned into key-position bounds), and its tile
# schedule at LQ = LK = 1024.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
spec="${1:-$root/examples/local_softcap_alibi.attn}"
"$root/scripts/install-deps.sh"
[ -x "$root/build/tools/attnc" ] || "$root/scripts/build.sh"
ninja -C "$root/build" -j "${JOBS:-2}" attnc >/dev/null
attnc="$root/build/tools/attnc"
echo "== attnc compile $spec --emit=mlir"
"$attnc" compile "$spec" --emit=mlir
echo
echo "== attnc compile $spec --emit=analysed -D window=256"
"$attnc" compile "$spec" --emit=analysed -D window=256 | head -3
echo
echo "== attnc show $spec --lq 1024 --lk 1024 --tile-q 64 --tile-k 64 --png mask.png"
"$attnc" show "$spec" --lq 1024 --lk 1024 --tile-q 64 --tile-k 64 \
  --png "$root/build/mask.png"
echo "(mask picture: $root/build/mask.png)"
