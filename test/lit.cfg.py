# lit configuration of the attnc test suite (see lit.site.cfg.py.in).
import os
import sys
import lit.formats

config.name = "attnc"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".mlir", ".attn", ".test"]
config.excludes = ["fuzz", "Inputs", "CMakeLists.txt", "lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attnc_obj_root, "test")

config.environment["PATH"] = os.pathsep.join(
    [config.attnc_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
# Kernels compiled by the tests are cached in the build tree, never in the
# user's ~/.cache.
config.environment["ATTNC_CACHE_DIR"] = os.path.join(config.test_exec_root, "kernel-cache")
config.substitutions.append(("%attnc", os.path.join(config.attnc_tools_dir, "attnc")))
config.substitutions.append(("%attn-demo", os.path.join(config.attnc_tools_dir, "attn-demo")))
config.substitutions.append(("%attn-opt", os.path.join(config.attnc_tools_dir, "attn-opt")))
config.substitutions.append(("%examples", config.examples_dir))
config.substitutions.append(("%src_root", config.attnc_src_root))
config.substitutions.append(("%obj_root", config.attnc_obj_root))
# attn-bench is built only with OpenBLAS; its tests say `REQUIRES: attn-bench`.
if getattr(config, "have_attn_bench", False):
    config.available_features.add("attn-bench")
    config.substitutions.append(("%attn-bench", os.path.join(config.attnc_tools_dir, "attn-bench")))

# The CPU microkernel paths this machine has (CpuIsa.h): tests that force
# one with ATTNC_CPU_ISA say `REQUIRES: cpu-avx2` or `cpu-avx512`.
def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
_flags = _cpu_flags()
if {"avx2", "fma", "f16c"} <= _flags:
    config.available_features.add("cpu-avx2")
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= _flags:
        config.available_features.add("cpu-avx512")

# Python with numpy (the python3 package of install-deps.sh) makes .npy data
# and checks results: the interpreter that runs lit, not whatever `python3`
# comes first on PATH. %attn_ref is the tests' float64 attention reference.
config.substitutions.append(
    ("%attn_ref", sys.executable + " " +
     os.path.join(config.test_source_root, "tools", "Inputs", "attn_ref.py")))
config.substitutions.append(("%python", sys.executable))

# The reference specs live beside the repository; tests that need them say
# `REQUIRES: shared-specs` and are reported UNSUPPORTED when they are absent.
if os.path.isdir(config.shared_specs_dir):
    config.available_features.add("shared-specs")
    config.substitutions.append(("%shared_specs", config.shared_specs_dir))

# nvcc (CUDA toolkit): the CUDA emitter's output is compiled where it exists;
# tests that need it say `REQUIRES: nvcc`.
import shutil
nvcc = "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else shutil.which("nvcc")
if nvcc:
    config.available_features.add("nvcc")
    config.substitutions.append(("%nvcc", nvcc))

# clang++ of the LLVM the project builds against (clang-22): cross-compiles
# the runtime's portable microkernels in attnc-compile-triple.test.
clangxx = os.path.join(config.llvm_tools_dir, "clang++")
if os.access(clangxx, os.X_OK):
    config.available_features.add("clang")
    config.substitutions.append(("%clangxx", clangxx))

# mlir-opt and mlir-runner (mlir-22-tools) with MLIR's C runner utilities:
# tests that run MLIR code (attn-expand-math's accuracy) say
# `REQUIRES: mlir-runner`; %mlir_run lowers stdin to LLVM and runs @main.
_runner = os.path.join(config.llvm_tools_dir, "mlir-runner")
_mlir_opt = os.path.join(config.llvm_tools_dir, "mlir-opt")
_utils = os.path.join(getattr(config, "llvm_lib_dir", ""), "libmlir_c_runner_utils.so")
if all(os.path.exists(p) for p in (_runner, _mlir_opt, _utils)):
    config.available_features.add("mlir-runner")
    config.substitutions.append(
        ("%mlir_run",
         _mlir_opt + " --convert-scf-to-cf --convert-math-to-llvm"
         " --expand-strided-metadata --finalize-memref-to-llvm"
         " --convert-arith-to-llvm --convert-func-to-llvm --convert-cf-to-llvm"
         " --reconcile-unrealized-casts | " + _runner +
         " -e main -entry-point-result=void -shared-libs=" + _utils))

# The CUDA runtime (NVRTC, the driver) is loaded at run time, so what a test
# can do depends on the machine:
#   nvrtc             libnvrtc loads and test/codegen/NvrtcCompile.cpp
#                     (attnc-nvrtc-compile, %nvrtc: compiles emitted .cu
#                     files the way the runtime's JIT does) was built:
#                     ptx/cubin emission works without a GPU;
#   cuda-gpu          libcuda.so.1 loads and finds a GPU: `attnc run
#                     --target=cuda` runs (tests of the no-GPU error say
#                     UNSUPPORTED: cuda-gpu);
#   cuda-abi-emitter  the emitted .cu follows runtime/include/attnc/Runtime/
#                     CudaABI.h (extern "C" attnc_fwd_* entries, NVRTC-ready):
#                     probed by emitting examples/full.attn. Until the
#                     emitter follows the contract, the CLI tests that compile
#                     its output with NVRTC are UNSUPPORTED, not failing.
import ctypes
import subprocess
def _loads(names):
    for n in names:
        try:
            ctypes.CDLL(n)
            return True
        except OSError:
            pass
    return False
nvrtc_tool = os.path.join(config.attnc_obj_root, "test", "attnc-nvrtc-compile")
if _loads(["libnvrtc.so.13", "libnvrtc.so"]) and os.access(nvrtc_tool, os.X_OK):
    config.available_features.add("nvrtc")
    config.substitutions.append(("%nvrtc", nvrtc_tool))
def _has_cuda_gpu():
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return (cuda.cuInit(0) == 0 and
                cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0)
    except (OSError, AttributeError):
        return False
if _has_cuda_gpu():
    config.available_features.add("cuda-gpu")
try:
    _cu = subprocess.run(
        [os.path.join(config.attnc_tools_dir, "attnc"), "compile",
         os.path.join(config.examples_dir, "full.attn"), "--target=cuda",
         "--arch=sm_80", "--emit=cuda"],
        capture_output=True, text=True, timeout=60).stdout
    if "attnc_fwd_full__" in _cu and "__launch[" in _cu:
        config.available_features.add("cuda-abi-emitter")
except (OSError, subprocess.SubprocessError):
    pass
