#!/usr/bin/env bash
# The whole test run, from a fresh machine: installs the dependencies, builds,
# runs the lit and unit tests (ctest), then builds the unit tests and the
# front-end fuzzer with clang under AddressSanitizer + UBSan, runs the unit
# tests there, and fuzzes the front end for FUZZ_SECONDS (default 60).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${JOBS:-2}"
fuzz_seconds="${FUZZ_SECONDS:-60}"

"$root/scripts/install-deps.sh"

echo "== build"
"$root/scripts/build.sh"

echo "== lit and unit tests"
(cd "$root/build" && ctest --output-on-failure --no-tests=error)

echo "== sanitizer build (clang-22, ASan + UBSan, libFuzzer instrumentation)"
san="$root/build-sanitize"
cmake -S "$root" -B "$san" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
  -DATTNC_SANITIZE=ON -DATTNC_FUZZ=ON >/dev/null
ninja -C "$san" -j "$jobs" attnc-frontend-tests attnc-passes-tests \
  attnc-reference-tests attnc-runtime-tests attnc-api-tests attnc-fuzz-frontend

# allow_user_poisoning=0: LLVM's BumpPtrAllocator is inlined into our
# instrumented code, where it poisons slab memory that the uninstrumented
# libMLIR.so then uses; without this ASan reports that as use-after-poison.
asan_options="detect_leaks=1:allow_user_poisoning=0"

echo "== unit tests under ASan + UBSan"
for t in frontend passes reference runtime; do
  ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=print_stacktrace=1 \
    "$san/test/attnc-$t-tests"
done
# The compiler, the JIT and the dispatcher around real kernels (the generated
# code itself is not instrumented); a subset, as the reference is slow here.
ATTNC_CACHE_DIR="$san/kernel-cache" ASAN_OPTIONS=$asan_options \
  UBSAN_OPTIONS=print_stacktrace=1 "$san/test/attnc-api-tests" \
  --gtest_filter='*TileTrace*:*Defines*:*MatchesReferenceOnAvx2/document*:*MatchesReferenceOnAvx2/all_features*:*MatchesReference/natten2d_bfloat16*'

echo "== fuzzing the front end for ${fuzz_seconds}s"
corpus="$san/fuzz-corpus"
rm -rf "$corpus" && mkdir -p "$corpus"
# Seeds: the examples, the shared reference specs and the malformed specs.
for f in "$root"/examples/*.attn "$root"/../shared/specs/*.attn \
         "$root"/test/frontend/errors/*.attn; do
  [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"
done
(cd "$san" && ASAN_OPTIONS=$asan_options "$san/test/attnc-fuzz-frontend" -max_total_time="$fuzz_seconds" \
  -max_len=4096 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "$corpus")

echo "test.sh: all tests passed (ctest: lit suite + unit tests; ASan+UBSan unit tests; fuzzing)"
echo "steps: 4 passed, 0 failed"
