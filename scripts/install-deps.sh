#!/usr/bin/env bash
# Installs everything attnc needs on a Debian bookworm machine (as root, or
# with sudo): LLVM/MLIR 22, clang 22 (fuzzer, sanitizers), Boost
# program_options, libpng, GoogleTest, Ninja, numpy, OpenBLAS and pkg-config
# (attn-bench's baselines), Python's headers, pip and pytest, and from PyPI
# nanobind, scikit-build-core (the Python module) and torch (install_torch).
# Does nothing when all of it is already there.
set -euo pipefail

PACKAGES=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22
  libclang-rt-22-dev libboost-program-options-dev libpng-dev libgtest-dev
  cmake ninja-build python3-numpy libopenblas-dev pkg-config
  python3-dev python3-pip python3-pytest
)

# The Python module (python/) builds with nanobind, and `pip install .`
# with scikit-build-core: from PyPI, into the system Python, when missing.
install_python_deps() {
  if /usr/bin/python3 -c "import nanobind, scikit_build_core" >/dev/null 2>&1; then
    return 0
  fi
  echo "install-deps: installing nanobind and scikit-build-core (PyPI)"
  /usr/bin/python3 -m pip install --break-system-packages -q nanobind \
    scikit-build-core
}

# PyTorch (CPU use only) for the Python tests of attnc.torch and attn-bench's
# torch baselines (SDPA and its backward, FlexAttention), from PyPI, once:
# skipped when torch already imports. PyPI's wheel brings ~3 GB of CUDA
# libraries (download.pytorch.org's CPU wheels are not reachable from every
# machine). ATTNC_INSTALL_TORCH=0 skips it; the torch tests then skip.
install_torch() {
  if [ "${ATTNC_INSTALL_TORCH:-1}" = "0" ]; then return 0; fi
  if /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
    return 0
  fi
  echo "install-deps: installing torch (PyPI)"
  /usr/bin/python3 -m pip install --break-system-packages -q torch
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  install_python_deps
  install_torch
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
install_python_deps
install_torch
