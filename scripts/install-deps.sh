#!/usr/bin/env bash
# Installs everything attnc needs on a Debian bookworm machine (as root, or
# with sudo): LLVM/MLIR 22, clang 22 (fuzzer, sanitizers), Boost
# program_options, libpng, GoogleTest, Ninja, numpy, OpenBLAS and pkg-config
# (attn-bench's baselines). Does nothing when all of it is already there.
set -euo pipefail

PACKAGES=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22
  libclang-rt-22-dev libboost-program-options-dev libpng-dev libgtest-dev
  cmake ninja-build python3-numpy libopenblas-dev pkg-config
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
