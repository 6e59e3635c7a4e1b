#!/usr/bin/env bash
# The ctest cmake-package: installs attnc from BUILD into a fresh prefix under
# WORK, checks that the installed package does not point back into the build
# or source tree, runs the installed attnc, then configures, builds and runs the consumer project of
# this folder against it (and against the build tree's package too).
#   run.sh BUILD WORK MLIR_DIR [GENERATOR] [CXX_COMPILER]
set -euo pipefail
build="$1" work="$2" mlir_dir="$3"
generator="${4:-Ninja}" cxx="${5:-c++}"
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"

if grep -rlF -e "$build" -e "$src" "$work/prefix/lib/cmake" "$work/prefix/include"; then
  echo "run.sh: error: the installed package refers to the build or source tree" >&2
  exit 1
fi

consume() { # NAME, then extra cmake arguments
  local dir="$work/$1"
  shift
  cmake -S "$here" -B "$dir" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=Release -DMLIR_DIR="$mlir_dir" "$@" >"$dir.log" 2>&1 ||
    { cat "$dir.log"; exit 1; }
  cmake --build "$dir" -j 2
  ATTNC_CACHE_DIR="$work/kernel-cache" "$dir/attnc-consumer"
}
# The installed tools run from the prefix: attnc --version, and --emit=so
# links the installed runtime archive into a library that dlopens from C.
"$work/prefix/bin/attnc" --version
test -x "$work/prefix/bin/attn-opt"
ATTNC_CACHE_DIR="$work/kernel-cache" "$work/prefix/bin/attnc" compile \
  "$src/examples/causal.attn" --emit=so -o "$work/causal.so"
cc "$src/test/tools/Inputs/dlopen_kernel.c" -o "$work/dlopen_kernel" -ldl
"$work/dlopen_kernel" "$work/causal.so" attnc_kernel_causal

consume installed -DCMAKE_PREFIX_PATH="$work/prefix"
consume build-tree -Dattnc_DIR="$build"
