#!/usr/bin/env bash
# Installs everything attnc needs on a Debian bookworm machine (as root, or
# with sudo): LLVM/MLIR 22, clang 22 (fuzzer, sanitizers), Boost
# program_options, libpng, GoogleTest, Ninja, numpy, OpenBLAS and pkg-config
# (attn-bench's baselines), Python's headers, pip and pytest, and from PyPI
# nanobind and scikit-build-core (the Python module). Does nothing when all
# of it is already there.
# ATTNC_INSTALL_TORCH=1 also installs PyTorch (optional, see install_torch).
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

# Optional: PyTorch for attn-bench's torch baselines (SDPA and its backward,
# FlexAttention). Only with ATTNC_INSTALL_TORCH=1 (no test needs it, so CI
# stays fast), and skipped when torch already imports. The CPU wheel comes
# from download.pytorch.org; when that index is unreachable, from PyPI.
install_torch() {
  if [ "${ATTNC_INSTALL_TORCH:-0}" != "1" ]; then return 0; fi
  if /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
    echo "install-deps: torch present"
    return 0
  fi
  echo "install-deps: installing torch (ATTNC_INSTALL_TORCH=1)"
  /usr/bin/python3 -m pip install --break-system-packages torch \
      --index-url https://download.pytorch.org/whl/cpu ||
    /usr/bin/python3 -m pip install --break-system-packages torch
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
