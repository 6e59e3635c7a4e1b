#!/usr/bin/env bash
# Configures and builds attnc in build/ (Ninja, 2 jobs by default; set JOBS
# to change). Extra arguments go to CMake.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${JOBS:-2}"
cmake -S "$root" -B "$root/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir "$@"
ninja -C "$root/build" -j "$jobs"
