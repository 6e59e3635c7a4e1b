#!/usr/bin/env bash
# The CUDA back end on a real GPU, in two halves (README.md, "CUDA"):
#
#   scripts/gpu-check.sh prepare   here, with attnc built (scripts/build.sh):
#       emits the .cu of every shared spec (../shared/specs) for sm_80 and
#       sm_90a, and writes small odd-shaped test cases (bf16 and f16, odd
#       LQ/LK, GQA/MQA, LQ != LK, DV != D) with float64 reference outputs,
#       plus the benchmark cases, into gpu-check-data/ (< 64 MiB; its size
#       is printed).
#   scripts/gpu-check.sh run       on a machine with an NVIDIA GPU, CUDA
#       (nvcc/NVRTC, headers), CMake and Ninja but no LLVM: builds the
#       runtime's CUDA half and bench/gpu/harness.cpp without MLIR, runs the
#       hand-written ABI self-test, checks every case on every arch the GPU
#       runs (sm_90a and sm_80-as-PTX on an H100/H200) against the
#       references, then benchmarks bf16 B=2, HQ=HKV=16, L in {2048, 8192},
#       D=DV=128 (full, causal, sliding window 1024, document, sigmoid,
#       and the local window + softcap + ALiBi layer) and D=DV=64 (full,
#       causal), with the NVRTC compile time of each kernel (cold, cached),
#       against torch SDPA (flash, cuDNN) and FlexAttention
#       (bench/gpu/torch_gpu_bench.py) and prints one table.
#   scripts/gpu-check.sh emulate   here, without a GPU: builds the same
#       harness and runs the self-test and every case with the fake driver
#       and the CPU emulation of the sm_80 and sm_90a kernels
#       (test/cuda-emu): a dry run of `run`'s correctness half.
#   scripts/gpu-check.sh           prepare, then run if a GPU is present,
#       else how to carry gpu-check-data/ and run the other half.
#
# Every step says what failed; a failing spec or case does not stop the
# others; the exit code is non-zero if anything failed. GPU_CHECK_DATA
# overrides the data directory, GPU_CHECK_BUILD the harness build directory,
# ATTNC_BUILD_DIR the attnc build (default build/), JOBS the parallelism.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${GPU_CHECK_DATA:-$root/gpu-check-data}"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
start=$SECONDS
failures=0
fail() { echo "gpu-check: FAIL: $*"; failures=$((failures + 1)); }
step() { echo; echo "== [$((SECONDS - start))s] $*"; }

specs_dir="$root/../shared/specs"
[ -d "$specs_dir" ] || specs_dir="$root/examples"
# Language features no shared spec has, checked as well: a softmax sink and
# dropout (a training call with a seed: the GPU must draw the CPU's mask).
extra_specs=("$root/examples/gpt_oss_sinks.attn" "$root/examples/dropout.attn")

# The correctness shapes, B,HQ,HKV,LQ,LK,D,DV dtype: odd lengths, GQA and
# MQA, LQ > LK and LQ < LK, DV != D; three distinct kernel entries per spec
# (bf16 64/64, bf16 64/128, f16 128/128), which bounds NVRTC time there.
check_shapes=(
  "1,2,2,37,37,64,64 bf16"
  "2,4,2,45,77,64,64 bf16"
  "1,3,1,70,53,64,128 bf16"
  "1,2,1,129,100,128,128 f16"
)
# Head dims outside the fixed entries (the kernels built for padded dims),
# checked by `run` only: the CPU emulation holds the fixed entries alone.
check_shapes_gpu=(
  "1,2,1,77,66,96,40 bf16"
  "1,2,2,45,45,32,32 f16"
)
# The benchmark: spec file, -D flags, case stem, head dims (D = DV).
bench_cases=(
  "full.attn||full|128 64"
  "causal.attn||causal|128 64"
  "sliding_window.attn|-D window=1024|sliding_window_w1024|128"
  "document.attn||document|128"
  "sigmoid_causal.attn||sigmoid_causal|128"
  "local_softcap_alibi.attn||local_softcap_alibi|128"
)
bench_lengths=(2048 8192)

prepare() {
  local tools="${ATTNC_BUILD_DIR:-$root/build}/tools"
  local attnc="$tools/attnc" prep="$tools/attn-gpu-prepare"
  for t in "$attnc" "$prep"; do
    if [ ! -x "$t" ]; then
      echo "gpu-check prepare: $t is missing: build attnc first (bash scripts/build.sh)"
      exit 1
    fi
  done
  step "prepare: specs from $specs_dir into $data"
  rm -rf "$data"
  mkdir -p "$data/cu" "$data/cases" "$data/bench"
  local log="$data/prepare.log"
  : > "$log"
  for spec in "$specs_dir"/*.attn "${extra_specs[@]}"; do
    local name; name="$(basename "$spec" .attn)"
    for arch in sm_80 sm_90a; do
      if ! "$attnc" compile "$spec" --target=cuda --arch="$arch" --emit=cuda \
           -o "$data/cu/$name.$arch.cu" 2>>"$log"; then
        fail "emit $name for $arch: $(tail -n 1 "$log")"
      fi
    done
    local i=0
    for entry in "${check_shapes[@]}" "${check_shapes_gpu[@]}"; do
      i=$((i + 1))
      local shape dtype dir="$data/cases/$name-$i"
      read -r shape dtype <<<"$entry"
      [ "$i" -gt "${#check_shapes[@]}" ] && dir="$data/cases/$name-gpu$i"
      if ! "$prep" "$spec" --shape "$shape" --dtype "$dtype" --seed "$i" \
           --cu "$name" --out "$dir" 2>>"$log"; then
        fail "test data for $name at $shape $dtype: $(tail -n 1 "$log")"
      fi
    done
  done
  for entry in "${bench_cases[@]}"; do
    IFS='|' read -r file defs stem dims <<<"$entry"
    local spec="$specs_dir/$file"
    [ -f "$spec" ] || { fail "benchmark spec $spec is missing"; continue; }
    for arch in sm_80 sm_90a; do
      # shellcheck disable=SC2086 # $defs is a list of flags
      if ! "$attnc" compile "$spec" $defs --target=cuda --arch="$arch" \
           --emit=cuda -o "$data/cu/$stem.$arch.cu" 2>>"$log"; then
        fail "emit benchmark $stem for $arch: $(tail -n 1 "$log")"
      fi
    done
    for D in $dims; do
      for L in "${bench_lengths[@]}"; do
        # shellcheck disable=SC2086
        if ! "$prep" "$spec" $defs --shape "2,16,16,$L,$L,$D,$D" --dtype bf16 \
             --bench --cu "$stem" --out "$data/bench/$stem-d$D-L$L" 2>>"$log"; then
          fail "benchmark data for $stem at D=$D L=$L: $(tail -n 1 "$log")"
        fi
      done
    done
  done
  local kib; kib=$(du -sk "$data" | cut -f1)
  echo "prepare: $(ls "$data/cu" | wc -l) .cu files, $(ls "$data/cases" | wc -l) test" \
       "cases, $(ls "$data/bench" | wc -l) benchmark cases; $data is $((kib / 1024)) MiB ($kib KiB)"
  if [ "$kib" -ge $((64 * 1024)) ]; then
    fail "$data is over the 64 MiB that can be carried"
  fi
}

build="${GPU_CHECK_BUILD:-$root/build-gpu}"
harness="$build/attnc-gpu-harness"

build_harness() {
  step "build the runtime's CUDA half and the harness (no MLIR): $build"
  mkdir -p "$build"
  if ! cmake -S "$root/bench/gpu" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$build/cmake.log" 2>&1 \
     || ! ninja -C "$build" -j "$jobs" >"$build/ninja.log" 2>&1; then
    cat "$build/cmake.log" "$build/ninja.log" 2>/dev/null | tail -n 30
    fail "building bench/gpu (logs: $build/cmake.log, $build/ninja.log)"
    echo "gpu-check: $failures failure(s)"; exit 1
  fi
}

# The ABI self-test, then every case on every arch the device runs (with
# an argument: the cases whose directory names match that pattern).
check_cases() {
  local pattern="${1:-*}"
  step "self-test: hand-written CudaABI.h kernel through NVRTC and forwardCuda"
  "$harness" selftest || fail "self-test"

  step "correctness: every case, every arch, against the float64 references"
  local out="$build/check"; rm -rf "$out"; mkdir -p "$out"
  # Cases in parallel batches (NVRTC dominates); the kernel cache is safe
  # under concurrent use. Logs are printed in order.
  # shellcheck disable=SC2086 # $pattern is a glob
  ls -d "$data/cases"/$pattern/ | sed 's:/$::' | \
    xargs -P "$jobs" -n 4 sh -c 'h="$1"; d="$2"; o="$3"; shift 3; \
      "$h" check "$d" "$@" > "$o/$(basename "$1").log" 2>&1 || touch "$o/$(basename "$1").failed"' \
      _ "$harness" "$data" "$out" || true
  cat "$out"/*.log | grep -Ev '^(device|check:)' || true
  local passed failed
  passed=$(cat "$out"/*.log | grep -c '^PASS' || true)
  failed=$(cat "$out"/*.log | grep -c '^FAIL' || true)
  echo "correctness: $passed passed, $failed failed"
  if [ "$failed" -gt 0 ] || ls "$out"/*.failed >/dev/null 2>&1 || [ "$passed" -eq 0 ]; then
    fail "correctness ($failed failing case(s))"
  fi
}

# The correctness half of `run` without a GPU: the same harness and cases,
# with the fake driver (test/runtime/FakeCudaDriver.cpp) running attnc's sm_80
# and sm_90a kernels under the CPU emulation of their PTX (test/cuda-emu).
# Needs the main build's attnc-fake-cuda and attnc-cuda-emu-kernels-sm_80 /
# -sm_90a (GPU_CHECK_FAKE_DRIVER, GPU_CHECK_EMU_KERNELS and
# GPU_CHECK_EMU_KERNELS_SM90 override their paths).
emulate() {
  local fake="${GPU_CHECK_FAKE_DRIVER:-$root/build/test/fake-cuda/libattnc-fake-cuda.so}"
  local emu80="${GPU_CHECK_EMU_KERNELS:-$root/build/test/libattnc-cuda-emu-kernels-sm_80.so}"
  local emu90="${GPU_CHECK_EMU_KERNELS_SM90:-$root/build/test/libattnc-cuda-emu-kernels-sm_90a.so}"
  for f in "$fake" "$emu80" "$emu90"; do
    [ -f "$f" ] || { echo "gpu-check emulate: $f is missing: build it first (ninja -C build attnc-fake-cuda attnc-cuda-emu-kernels-sm_80 attnc-cuda-emu-kernels-sm_90a)"; exit 1; }
  done
  prepare # always fresh: the cases must come from this checkout's attnc
  build_harness
  # A fake device of compute capability 9.0: the harness checks every case
  # as sm_90a (cubin) and as sm_80 (PTX), as on an H100/H200.
  export ATTNC_CUDA_DRIVER="$fake" ATTNC_FAKE_CUDA_CC=90
  export ATTNC_FAKE_CUDA_KERNELS="$emu80" ATTNC_FAKE_CUDA_KERNELS_SM90="$emu90"
  export ATTNC_CACHE_DIR="$build/kernel-cache-emulated"
  check_cases '*-[0-9]'  # not the -gpuN cases: other head dims
  echo
  echo "gpu-check emulate: $failures failure(s) in $((SECONDS - start)) s (sm_80 and sm_90a under CPU emulation; no GPU ran)"
  [ "$failures" -eq 0 ]
}

run_gpu() {
  [ -d "$data/cases" ] || { echo "gpu-check run: no $data: run 'scripts/gpu-check.sh prepare' where attnc is built and carry it"; exit 1; }
  step "run: the GPU"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi
  build_harness
  export ATTNC_CACHE_DIR="$build/kernel-cache"

  step "the runtime's own CUDA tests (standalone runtime build; needs GoogleTest)"
  if cmake -S "$root/runtime" -B "$build/rt" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DATTNC_ENABLE_CUDA=ON >"$build/rt.log" 2>&1 \
     && grep -q "attnc-cuda-gpu-tests" "$build/rt/build.ninja" 2>/dev/null; then
    if ninja -C "$build/rt" -j "$jobs" attnc-cuda-tests attnc-cuda-gpu-tests >>"$build/rt.log" 2>&1; then
      (cd "$build/rt" && ctest --output-on-failure -R cuda) || fail "runtime CUDA tests (ctest -R cuda in $build/rt)"
    else
      tail -n 20 "$build/rt.log"; fail "building the runtime's CUDA tests"
    fi
  else
    echo "skipped: GoogleTest not found (the harness self-test below covers the launcher)"
  fi

  check_cases

  step "benchmark: attnc (CUDA events, median)"
  local results="$build/attnc-bench.jsonl"
  "$harness" bench "$data" --out "$results" --runs 20 --warmup 5 || fail "attnc benchmark (see FAIL lines above)"

  step "benchmark: torch SDPA (flash, cuDNN) and FlexAttention, and the table"
  local py="${PYTHON:-python3}"
  # FlexAttention compiles for tens of seconds per variant and length: no
  # new compilation after 180 s, and a hard limit of 300 s, keep the whole
  # check within 8 minutes.
  if ! timeout 300 "$py" "$root/bench/gpu/torch_gpu_bench.py" "$data" "$results" \
       --runs 20 --warmup 5 --budget-s 180; then
    fail "torch baselines (bench/gpu/torch_gpu_bench.py; exit 124 is the 300 s limit)"
  fi

  echo
  echo "gpu-check run: $failures failure(s) in $((SECONDS - start)) s"
  [ "$failures" -eq 0 ]
}

has_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

case "${1:-}" in
  prepare)
    prepare
    [ "$failures" -eq 0 ] || { echo "gpu-check prepare: $failures failure(s) (details in $data/prepare.log)"; exit 1; }
    ;;
  run)
    run_gpu
    ;;
  emulate)
    emulate
    ;;
  "")
    prepare
    if has_gpu; then
      run_gpu
    else
      echo
      echo "gpu-check: no GPU here. On a machine with an NVIDIA GPU, CUDA, CMake and Ninja"
      echo "(no LLVM needed), with this repository and $(basename "$data")/ beside it"
      echo "(carry the directory $data), run:"
      echo "    bash scripts/gpu-check.sh run"
      [ "$failures" -eq 0 ] || { echo "gpu-check prepare: $failures failure(s) (details in $data/prepare.log)"; exit 1; }
    fi
    ;;
  *)
    echo "usage: scripts/gpu-check.sh [prepare|run|emulate]"; exit 2 ;;
esac
