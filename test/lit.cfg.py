# lit configuration of the attnc test suite (see lit.site.cfg.py.in).
import os
import sys
import lit.formats

config.name = "attnc"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".mlir", ".attn", ".test"]
config.excludes = ["unit", "fuzz", "Inputs", "CMakeLists.txt", "lit.cfg.py"]
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
# attn-bench is built only with OpenBLAS; its tests say `REQUIRES: attn-bench`.
if getattr(config, "have_attn_bench", False):
    config.available_features.add("attn-bench")
    config.substitutions.append(("%attn-bench", os.path.join(config.attnc_tools_dir, "attn-bench")))

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

# NVRTC: test/codegen/NvrtcCompile.cpp, built where the CUDA toolkit is
# found, compiles emitted .cu files the way the runtime's JIT does.
nvrtc_tool = os.path.join(config.attnc_obj_root, "test", "attnc-nvrtc-compile")
if os.access(nvrtc_tool, os.X_OK):
    config.available_features.add("nvrtc")
    config.substitutions.append(("%nvrtc", nvrtc_tool))
