//===- Compiler.h - The C++ API: compile a spec, run the kernel -*- C++ -*-===//
//
//   attnc::Compiler c;
//   auto k = c.compile(specText, {.defines = {{"window", 512}}});
//   if (!k.ok()) ... k.status().message() ...
//   attnc::Status s = k->forward(q, key, v, out, {.lse = &lse,
//                                .inputs = {{"slopes", slopes}}});
//   // with CompileOptions::backward = true:
//   s = k->backward(q, key, v, out, lse, dout, dq, dk, dv,
//                   {.inputs = {{"slopes", slopes}},
//                    .inputGrads = {{"slopes", dslopes}}});
//
// With CompileOptions::target = Target::CUDA (dtype F16 or BF16) compile()
// emits the CUDA C++ of the spec; forward() on device views (DeviceView)
// then builds the entry for the call's head dims with NVRTC at first use
// (cached on disk like the CPU objects) and launches it. forward() on host
// tensors copies them to the GPU and back.
//
// A Compiler owns an MLIR context and the kernel cache (in memory; the disk
// cache of the runtime keeps the optimised object code across processes).
// Errors, including spec errors with file:line:col, come back as values;
// nothing throws or aborts. A Kernel is cheap to copy and stays valid after
// its Compiler is destroyed.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_COMPILER_H
#define ATTNC_COMPILER_H

#include "attnc/Codegen/PipelineOptions.h"
#include "attnc/Runtime/CpuBackward.h"
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace attnc {

using runtime::DType;
using runtime::Expected;
using runtime::Status;
using runtime::TensorView;


/// A `-D NAME=VALUE` override of a param.
struct Define {
  std::string name, value;
  Define(std::string n, std::string v) : name(std::move(n)), value(std::move(v)) {}
  Define(std::string n, const char *v) : name(std::move(n)), value(v) {}
  Define(std::string n, int64_t v) : name(std::move(n)), value(std::to_string(v)) {}
  Define(std::string n, int v) : name(std::move(n)), value(std::to_string(v)) {}
  Define(std::string n, double v);
};

struct CompileOptions {
  Target target = Target::CPU;
  /// Storage type of q, k, v and out: F32, F16 or BF16.
  DType dtype = DType::F32;
  std::vector<Define> defines;
  /// For a file with several `attention` blocks: the one to compile.
  std::string name;
  /// Where `import "PATH"` looks after the importing file's directory (for
  /// a spec given as text: the working directory).
  std::vector<std::string> importDirs;
  /// Build the kernel so that it records the tiles it visits (tests).
  bool traceTiles = false;
  /// Tile sizes; 0 picks the target's tuned choice (docs/tile-tuning.md).
  int64_t tileQ = 0, tileK = 0;
  /// The head dim D the kernel will mostly run with, 0 if unknown: the
  /// tuned tile sizes depend on it. The kernel still runs with any D.
  int64_t headDim = 0;
  /// The CPU to generate code for, as an LLVM CPU name ("haswell" for
  /// AVX2 only); empty means the host CPU with all its features.
  std::string cpu;
  /// Target::CUDA: the GPU architecture, "sm_80" or "sm_90a"; empty means
  /// the current device's (sm_90a on compute capability 9.0, else sm_80).
  std::string arch;
  /// Target::CPU: also generate the backward pass (Kernel::backward): the
  /// spec is differentiated (attn-derive-backward) and its backward helpers
  /// compiled into the same object.
  bool backward = false;
};

struct ForwardOptions {
  const TensorView *lse = nullptr;
  std::vector<std::pair<std::string, TensorView>> inputs;
  int threads = 0; // 0: the global thread pool
  std::vector<int8_t> *tileTrace = nullptr; // see CpuForwardArgs
  /// CPU kernels: the call as a window of longer sequences (context
  /// parallelism, runtime::SequenceWindow); default: the whole sequences.
  runtime::SequenceWindow window;
  /// CPU kernels: q, k, v, out and lse as a packed variable-length batch
  /// (runtime::VarlenBatch: q [total_q, HQ, D], lse [HQ, total_q], ...).
  runtime::VarlenBatch varlen;
  /// CPU kernels: k and v as a paged KV cache (runtime::PagedKvCache:
  /// k [num_pages, page_size, HKV, D], a page table [B, max_pages], kv_lens).
  runtime::PagedKvCache paged;
  /// CPU kernels: a decode step (LQ <= 16) runs its keys in chunks of this
  /// many, merged by lse (runtime::CpuForwardArgs::decodeChunk); 0 picks
  /// the size from the shape, -1 runs the keys whole.
  int64_t decodeChunk = 0;
  /// A spec with softmax(dropout = p): the seed and offset of a training
  /// call, which drops pairs (runtime::DropoutSeed); unset: no dropout.
  std::optional<runtime::DropoutSeed> dropout;
};

/// Target::CUDA: lse as a float32 device view; inputs stay host tensors
/// (the launcher converts and copies them).
struct CudaForwardOptions {
  const runtime::cuda::DeviceView *lse = nullptr;
  std::vector<std::pair<std::string, TensorView>> inputs;
  /// As ForwardOptions::dropout; the same seed gives the CPU's mask.
  std::optional<runtime::DropoutSeed> dropout;
};

/// The tensors of Kernel::backward besides q, k, v, out, lse, dout and the
/// gradients of q, k and v.
struct BackwardOptions {
  /// The forward's inputs, as in ForwardOptions.
  std::vector<std::pair<std::string, TensorView>> inputs;
  /// Where to write the gradients of float inputs: float32 tensors of the
  /// input's shape, by name, for any of Kernel::differentiableInputs().
  std::vector<std::pair<std::string, TensorView>> inputGrads;
  int threads = 0; // 0: the global thread pool; results do not depend on it
  /// See runtime::CpuBackwardArgs::tileTrace (the backward's tiles).
  std::vector<int8_t> *tileTrace = nullptr;
  /// See runtime::CpuBackwardArgs::window.
  runtime::SequenceWindow window;
  /// A packed variable-length batch (ForwardOptions::varlen): q, out, dout,
  /// dq [total_q, HQ, D|DV], k, v, dk, dv [total_kv, HKV, D|DV], lse [HQ,
  /// total_q]. See runtime::backwardCpuVarlen.
  runtime::VarlenBatch varlen;
  /// The forward's dropout seed and offset (ForwardOptions::dropout): the
  /// backward regenerates the forward's mask from them.
  std::optional<runtime::DropoutSeed> dropout;
};

/// The pipeline's options for a compile (Pipeline.h); the rest of
/// CompileOptions is the front end's (defines, name) and the JIT's.
PipelineOptions pipelineOptionsOf(const CompileOptions &options);

class Kernel {
public:
  /// Runs the kernel on host tensors; see runtime::forwardCpu for the
  /// checks. A Target::CUDA kernel copies q, k, v to the GPU, runs there
  /// and copies out (and lse) back; options.threads and tileTrace are CPU
  /// only.
  Status forward(const TensorView &q, const TensorView &k, const TensorView &v,
                 const TensorView &out, const ForwardOptions &options = {}) const;
  /// Target::CUDA: runs on device memory (see runtime::cuda::forwardCuda
  /// for the checks). The entry for the call's dtype and head dims is
  /// compiled with NVRTC and loaded at its first call; thread-safe.
  Status forward(const runtime::cuda::DeviceView &q,
                 const runtime::cuda::DeviceView &k,
                 const runtime::cuda::DeviceView &v,
                 const runtime::cuda::DeviceView &out,
                 const CudaForwardOptions &options = {}) const;
  /// The backward pass (CompileOptions::backward, Target::CPU): given the
  /// forward's out and lse (float32 [B, HQ, LQ]; for sigmoid pass an empty
  /// view) and dout = dL/dout, writes dq, dk, dv (the storage type, the
  /// shapes of q, k, v) and the gradients of the inputs named in
  /// options.inputGrads. GQA: dk and dv are summed over each group. See
  /// runtime::backwardCpu for the checks; nothing is written on a bad call.
  Status backward(const TensorView &q, const TensorView &k, const TensorView &v,
                  const TensorView &out, const TensorView &lse,
                  const TensorView &dout, const TensorView &dq,
                  const TensorView &dk, const TensorView &dv,
                  const BackwardOptions &options = {}) const;
  /// The float inputs that get a gradient (those the score, a per-element
  /// scale or a sigmoid bias reads), in declaration order; empty for a
  /// kernel compiled without CompileOptions::backward.
  const std::vector<std::string> &differentiableInputs() const;
  Target target() const;
  /// The CPU kernel's description (name, tiles, inputs); for a CUDA kernel
  /// the same fields except the entry point and tiles.
  const runtime::KernelInfo &info() const;
  /// Target::CUDA: the emitted CUDA C++ for `arch` (sm_80 or sm_90a), empty
  /// if the kernel was compiled for the other one only.
  const std::string &cudaSource(const std::string &arch) const;

  struct Impl;
  explicit Kernel(std::shared_ptr<const Impl> impl) : impl(std::move(impl)) {}

private:
  std::shared_ptr<const Impl> impl;
};

class Compiler {
public:
  Compiler();
  ~Compiler();
  Compiler(const Compiler &) = delete;
  Compiler &operator=(const Compiler &) = delete;

  /// Compiles the spec in `specText` (named `bufferName` in messages).
  Expected<Kernel> compile(std::string_view specText,
                           const CompileOptions &options = {},
                           std::string_view bufferName = "<spec>");
  /// Reads and compiles a .attn file (a regular file of at most 16 MiB:
  /// FIFOs, devices and directories are refused; see readSpecFile).
  Expected<Kernel> compileFile(const std::string &path,
                               const CompileOptions &options = {});

  struct Impl;

private:
  std::unique_ptr<Impl> impl;
};

} // namespace attnc

#endif // ATTNC_COMPILER_H
