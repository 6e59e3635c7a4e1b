#!/usr/bin/env bash
# The whole test run, from a fresh machine: installs the dependencies, builds,
# runs the lit and unit tests and the fuzz corpus replays (ctest), then builds
# the unit tests and the fuzz targets with clang under AddressSanitizer +
# UBSan, runs every unit test executable and every corpus replay there, and
# fuzzes the targets of test/fuzz for FUZZ_SECONDS in all (default 60, split
# evenly). New inputs land in build-sanitize/fuzz/corpus-<target>/ (never in
# git); a crashing input is kept in build-sanitize/fuzz/crashes-<target>/ and
# its path printed, to be added to test/fuzz/corpus/<target>/ with the fix.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${JOBS:-2}"
fuzz_seconds="${FUZZ_SECONDS:-60}"

"$root/scripts/install-deps.sh"

echo "== build"
"$root/scripts/build.sh"

echo "== lit and unit tests"
# --timeout: a test that runs past 40 minutes (the slowest takes ~8) has
# hung, e.g. in a compiler pass; it fails instead of stalling CI.
(cd "$root/build" && ctest --output-on-failure --no-tests=error -j "$jobs" --timeout 2400)

echo "== sanitizer build (clang-22, ASan + UBSan, libFuzzer instrumentation)"
san="$root/build-sanitize"
cmake -S "$root" -B "$san" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only" \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
  -DATTNC_SANITIZE=ON -DATTNC_FUZZ=ON >/dev/null
# Every sanitized executable also carries allow_user_poisoning=0 itself
# (cmake/AsanDefaultOptions.cpp: libMLIR.so is not instrumented), so a
# finding's reproduce command below needs no environment. Set for the build
# too: the sanitized attnc emits the emulated CUDA kernels.
export ASAN_OPTIONS="detect_leaks=1:allow_user_poisoning=0"
export UBSAN_OPTIONS="print_stacktrace=1"

fuzz_targets=(frontend npy cache-entry attr define spec)
san_targets=(attnc-frontend-tests attnc-passes-tests attnc-reference-tests
  attnc-codegen-tests attnc-runtime-tests attnc-api-tests attnc-cuda-tests
  attnc-cuda-gpu-tests attnc-api-cuda-tests attnc-cuda-template-tests)
for t in "${fuzz_targets[@]}"; do
  san_targets+=("attnc-fuzz-$t" "attnc-fuzz-replay-$t")
done
san_start=$SECONDS
ninja -C "$san" -j "$jobs" "${san_targets[@]}"
echo "sanitizer build: $((SECONDS - san_start)) s"

# Every unit test executable, whole: the CPU kernels against the float64
# reference (the JIT-generated code itself is not instrumented), the CUDA
# launcher against the fake driver, the C++ API's CUDA path and the
# emulated CUDA kernels (built here, so instrumented) against the CPU
# kernels, the kernel templates under the emulation, and the fuzz corpus
# replays: every ctest of the normal run that needs neither a GPU nor the lit
# tools (api as its four shards, test/CMakeLists.txt).
echo "== unit tests and fuzz corpus replays under ASan + UBSan"
san_start=$SECONDS
(cd "$san" && ctest --output-on-failure --no-tests=error -j "$jobs" -R \
  '^(frontend|passes|reference|codegen|api-shard-[0-9]+|runtime-tests|cuda-runtime|cuda-fake-driver|api-cuda|api-cuda-emulated|api-cuda-emulated-sm90a|cuda-templates|fuzz-corpus-.*)$')
echo "sanitizer suite: $((SECONDS - san_start)) s"

echo "== fuzzing for ${fuzz_seconds}s, split across ${#fuzz_targets[@]} targets"
per_target=$((fuzz_seconds / ${#fuzz_targets[@]}))
[ "$per_target" -ge 1 ] || per_target=1
fuzz_dir="$san/fuzz"
failed=()
for t in "${fuzz_targets[@]}"; do
  corpus="$fuzz_dir/corpus-$t" crashes="$fuzz_dir/crashes-$t"
  mkdir -p "$corpus" "$crashes"
  dict=()
  [ -f "$root/test/fuzz/$t.dict" ] && dict=(-dict="$root/test/fuzz/$t.dict")
  echo "-- attnc-fuzz-$t for ${per_target}s"
  touch "$fuzz_dir/.start-$t"
  # The first folder is the working corpus (new inputs are written there,
  # and kept for the next run); the committed seeds are only read. The
  # output is also kept in fuzz-<target>.log, for the summary below.
  if ! (cd "$fuzz_dir" && ATTNC_CACHE_DIR="$fuzz_dir/kernel-cache" \
        "$san/test/fuzz/attnc-fuzz-$t" \
        -max_total_time="$per_target" -max_len=4096 -timeout=30 \
        -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$crashes/" "$corpus" "$root/test/fuzz/corpus/$t") \
        2>&1 | tee "$fuzz_dir/fuzz-$t.log"; then
    failed+=("$t")
  fi
done
# A finding is restated last, where a CI log's tail shows it: the start of
# the report, the sanitizer summary, and the input (libFuzzer's Base64
# line) with where it is kept.
if [ ${#failed[@]} -ne 0 ]; then
  for t in "${failed[@]}"; do
    echo "== finding of attnc-fuzz-$t (whole output: $fuzz_dir/fuzz-$t.log)"
    # The report's first 16 lines (the error and its innermost frames),
    # then its summary and the input.
    awk '/^==[0-9]+== ?ERROR|^attr fuzzer:|^INFO: libFuzzer|^Slowest unit/ && !n {n = 16}
         n > 0 {print; n--; next}
         /^SUMMARY|Test unit written|^Base64:/' "$fuzz_dir/fuzz-$t.log"
    find "$fuzz_dir/crashes-$t" -type f -newer "$fuzz_dir/.start-$t" |
      while read -r f; do
        echo "fuzz: attnc-fuzz-$t: finding kept in $f (reproduce:" \
          "$san/test/fuzz/attnc-fuzz-$t $f; once fixed, add it to" \
          "test/fuzz/corpus/$t/)"
      done
  done
  echo "test.sh: fuzzing found a problem in: ${failed[*]}"
  exit 1
fi

echo "test.sh: all tests passed (ctest: lit suite, unit tests, fuzz corpora;" \
  "ASan+UBSan unit tests and corpora; fuzzing)"
echo "steps: 4 passed, 0 failed"
