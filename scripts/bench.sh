#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench-sweep.png: installs and
# builds what is missing, then runs attn-bench twice (THREADS threads, 2 by
# default) and renders the page with bench/render_benchmarks.py:
#   1. a sweep of the reference specs full, causal, sliding_window (window
#      256), document and natten2d (a 64-column grid) at L = 512..4096, B=1
#      HQ=HKV=8 D=DV=128, float32, against the unfused OpenBLAS baseline,
#      the naive loop (small L only), torch (if it imports) and the 2048^3
#      SGEMM; it gives the issue-4 table at L = 4096 and the plot;
#   2. full attention in bfloat16 at L = 4096 (bf16 vs f32).
# OPENBLAS_CORETYPE=SkylakeX (unless already set) is exported for the runs
# where /proc/cpuinfo has avx512f (elsewhere OpenBLAS dies of "Illegal
# instruction" with it): it only changes which kernels OpenBLAS uses (the
# Debian 0.3.21 build may not recognise this CPU); attn-bench prints the core
# it got. Never set it in tests. Extra arguments go to both attn-bench runs (e.g. --runs 3);
# LENGTHS=256,512 tries the script quickly (the bf16 run uses the largest).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
threads="${THREADS:-2}"
lengths="${LENGTHS:-512,1024,2048,4096}"
lmax="$(echo "$lengths" | tr ',' '\n' | sort -n | tail -1)"
"$root/scripts/install-deps.sh"
[ -f build/build.ninja ] || "$root/scripts/build.sh"
ninja -C build -j "${JOBS:-2}" attn-bench >/dev/null
[ -x build/tools/attn-bench ] || { echo "bench.sh: attn-bench was not built (OpenBLAS missing?)" >&2; exit 1; }

specs=../shared/specs
[ -d "$specs" ] || specs=examples
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

sweep=(build/tools/attn-bench
  --sweep "$specs/full.attn,$specs/causal.attn,$specs/sliding_window.attn,$specs/document.attn,$specs/natten2d.attn"
  -D window=256 -D width=64 --lengths "$lengths"
  --shape-template 1,8,8,128,128 --dtype f32 --threads "$threads"
  --baseline openblas,naive,torch,sgemm --json
  --csv docs/bench-sweep.csv --plot docs/bench-sweep.png "$@")
bf16=(build/tools/attn-bench "$specs/full.attn" --shape "1,8,8,$lmax,$lmax,128,128"
  --dtype bf16 --threads "$threads" --json "$@")
{
  echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE ${sweep[*]}"
  echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE ${bf16[*]}"
} >"$out/commands.txt"

{
  lscpu | sed -n -e 's/^Model name: *\(.*\)/CPU: \1/p' \
    -e 's/^CPU family: *\(.*\)/CPU family: \1/p' -e 's/^Model: *\(.*\)/CPU model: \1/p' \
    -e 's/^CPU(s): *\(.*\)/CPUs: \1/p' -e 's/^Thread(s) per core: *\(.*\)/threads per core: \1/p' \
    -e 's/^L2 cache: *\(.*\)/L2: \1/p' -e 's/^L3 cache: *\(.*\)/L3: \1/p' \
    -e 's/^Hypervisor vendor: *\(.*\)/hypervisor: \1/p'
  echo "ISA: $(grep -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_bf16|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "OS: $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r)"
  echo "compiler: $(c++ --version | head -1); LLVM/MLIR $(/usr/lib/llvm-22/bin/llvm-config --version)"
  echo "OpenBLAS: $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)"
  echo "torch: $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not installed')"
  echo "attnc: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' (with local changes)')"
  echo "threads used: $threads; load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

run() { # NAME OUTFILE COMMAND...
  local name="$1" file="$2" start end
  shift 2
  echo "== $name: $*" >&2
  start=$(date +%s%N)
  "$@" >"$file"
  end=$(date +%s%N)
  echo "$name $(awk "BEGIN { print ($end - $start) / 1e9 }")" >>"$out/elapsed.txt"
}
mkdir -p docs
run sweep "$out/sweep.json" "${sweep[@]}"
run bf16 "$out/bf16.json" "${bf16[@]}"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
python3 bench/render_benchmarks.py "$out" docs/benchmarks.md
echo "bench.sh: wrote docs/benchmarks.md, docs/bench-sweep.png and docs/bench-sweep.csv" >&2
