#!/usr/bin/env bash
# Regenerates the CPU tile-size table (passes/lib/CpuTileTable.inc) and
# docs/tile-tuning.md: times every candidate (tile-q, tile-k) with attn-bench
# for each microkernel path (ISAS: ATTNC_CPU_ISA=avx512|avx2|generic, default
# every path this CPU has), head dim, storage type and mask class, and keeps
# per (path, class, D, dtype) the candidate with the smallest geometric mean
# of time / best time over the class's specs. The classes are those
# TileChoice.cpp tells apart:
#   rows: full, causal, sliding_window (window 256), document;
#   grid: natten2d (64-column grid), whose queries attn-tile permutes into
#         8-column patches.
# Shape B=1 HQ=HKV=8 LQ=LK=$LENGTH (2048) D=DV, $THREADS (2) threads.
# Each (spec, tile) is timed once, then the contenders once more (the
# faster time counts). About 15 minutes per path on 2 cores; run it on an
# otherwise idle machine. Quick try: ISAS=avx2 DIMS=64 DTYPES=f32
# TILES="64x64 32x128" LENGTH=512.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
threads="${THREADS:-2}"
length="${LENGTH:-2048}"
dims="${DIMS:-32 64 128 256}"
dtypes="${DTYPES:-f32 bf16}"
tiles="${TILES:-32x32 32x64 32x128 64x32 64x64 64x128 128x32 128x64 128x128}"
"$root/scripts/install-deps.sh"
[ -f build/build.ninja ] || "$root/scripts/build.sh"
ninja -C build -j "${JOBS:-2}" attn-bench >/dev/null
if [ -z "${ISAS:-}" ]; then
  # Every path this CPU has (attn-bench refuses one it lacks).
  ISAS=""
  for isa in avx512 avx2 generic; do
    if ATTNC_CPU_ISA=$isa build/tools/attn-bench examples/causal.attn --shape 1,1,1,64,64,64,64 \
         --runs 1 --warmup 0 >/dev/null 2>&1; then
      ISAS="$ISAS $isa"
    fi
  done
fi
isas="$ISAS"
specs=../shared/specs
[ -d "$specs" ] || specs=examples

# One attn-bench run: prints its median time in ms.
time_one() { # isa spec dtype D tile_q tile_k
  local isa="$1"
  shift
  local defines=()
  [ "$1" = sliding_window ] && defines=(-D window=256)
  [ "$1" = natten2d ] && defines=(-D width=64)
  ATTNC_CPU_ISA="$isa" build/tools/attn-bench "$specs/$1.attn" --shape "1,8,8,$length,$length,$3,$3" \
    --dtype "$2" --threads "$threads" --tile-q "$4" --tile-k "$5" \
    --min-time-ms 500 "${defines[@]}" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["ms"])'
}

raw="$(mktemp)" contenders="$(mktemp)"
trap 'rm -f "$raw" "$contenders"' EXIT
echo "isa class spec dtype D tile_q tile_k ms" >"$raw"
if [ -n "${RAW:-}" ]; then
  # Pass 1 from an earlier run's lines (e.g. its log): RAW=FILE.
  grep -E '^(avx512|avx2|generic) (rows|grid) [a-z_0-9]+ (f32|bf16) [0-9]+ [0-9]+ [0-9]+ [0-9.]+$' "$RAW" >>"$raw"
else
  # Pass 1: every candidate.
  for isa in $isas; do
    for dtype in $dtypes; do
      for d in $dims; do
        for entry in rows:full rows:causal rows:sliding_window rows:document grid:natten2d; do
          class="${entry%%:*}" spec="${entry#*:}"
          for t in $tiles; do
            tq="${t%x*}" tk="${t#*x}"
            echo "$isa $class $spec $dtype $d $tq $tk $(time_one "$isa" "$spec" "$dtype" "$d" "$tq" "$tk")" | tee -a "$raw"
          done
        done
      done
    done
  done
fi
# Pass 2: the contenders (within 15% of the best score, and 64x64) again,
# later, so that a burst of other load on the machine cannot pick or
# reject a tile alone; the table keeps each tile's faster pass.
python3 bench/render_tile_table.py "$raw" --contenders >"$contenders"
while read -r isa class spec dtype d tq tk; do
  echo "$isa $class $spec $dtype $d $tq $tk $(time_one "$isa" "$spec" "$dtype" "$d" "$tq" "$tk")" | tee -a "$raw"
done <"$contenders"
python3 bench/render_tile_table.py "$raw" \
  --inc passes/lib/CpuTileTable.inc --doc docs/tile-tuning.md \
  --command "scripts/tune-tiles.sh (LENGTH=$length THREADS=$threads)"
