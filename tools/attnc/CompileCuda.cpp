//===- CompileCuda.cpp - attnc compile --target=cuda --emit=cuda|ptx|cubin -===//
//
// --emit=cuda   the .cu of every block (emitCuda), as text;
// --emit=ptx    that .cu compiled by NVRTC (the runtime's JIT, cached) to
// --emit=cubin  PTX or a cubin for --arch. NVRTC needs no GPU.
// Which entries: all of them, or with --dtype=f16|bf16 and --head-dims
// D[,DV] only attnc_fwd_<name>__<dt>_<D>_<DV> (-DATTNC_ONLY_*, what
// `attnc run` compiles). A module holds one spec: a file with several
// blocks needs --name for ptx and cubin. Output is written atomically, so
// a failed compilation leaves no file.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"

#include "attnc/Codegen/CudaElementCode.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/KernelCache.h"

#include "llvm/Support/raw_ostream.h"

using namespace attnc;

static int fail(const std::string &message) { return reportError(message); }

std::optional<std::pair<int64_t, int64_t>>
attnc::parseHeadDims(const std::string &text, std::string &error) {
  auto parseOne = [](const std::string &s, int64_t &out) {
    if (s.empty() || s.size() > 6 ||
        s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    out = std::stoll(s);
    return out > 0;
  };
  size_t comma = text.find(',');
  int64_t d = 0, dv = 0;
  bool ok = comma == std::string::npos
                ? parseOne(text, d) && (dv = d, true)
                : parseOne(text.substr(0, comma), d) &&
                      parseOne(text.substr(comma + 1), dv);
  if (!ok) {
    error = "--head-dims=" + text + ": expected D or D,DV (positive integers)";
    return std::nullopt;
  }
  return std::make_pair(d, dv);
}

int attnc::emitCudaStage(mlir::ModuleOp module, EmitStage stage,
                         const std::string &arch,
                         std::optional<runtime::DType> storage,
                         std::optional<std::pair<int64_t, int64_t>> headDims,
                         llvm::StringRef output) {
  if (stage == EmitStage::Cuda) {
    // The .cu always holds every entry; --dtype (default f32 for the CPU)
    // does not change it.
    if (headDims)
      return fail("--head-dims is for --emit=ptx|cubin (the .cu of "
                  "--emit=cuda holds every entry)");
    storage.reset();
  } else if (storage.has_value() != headDims.has_value())
    return fail("--dtype and --head-dims pick one entry of --target=cuda; "
                "give both (e.g. --dtype=bf16 --head-dims=128) or neither "
                "(all entries)");
  if (storage && *storage != runtime::DType::F16 &&
      *storage != runtime::DType::BF16)
    return fail(std::string("--target=cuda kernels store f16 or bf16, not ") +
                runtime::dtypeName(*storage));
  // The tiled form for this arch (a module read back at that level is
  // left as it is; emitCuda checks its tiles against the arch's kernel).
  PipelineOptions po;
  po.target = Target::CUDA;
  po.arch = arch;
  po.storage = storage.value_or(runtime::DType::BF16);
  if (runtime::Status st = checkPipelineOptions(po); !st.ok())
    return fail(st.message());
  if (failed(runPipeline(module, po, PipelineStage::Analysed, PipelineStage::Tiled)))
    return 1;
  llvm::SmallVector<mlir::attn::FlashOp> specs = flashOps(module);
  if (stage != EmitStage::Cuda && specs.size() != 1)
    return fail("--emit=ptx and --emit=cubin write one module for one block; "
                "this file has " + std::to_string(specs.size()) +
                " (pick one with --name)");
  if (headDims && !cudaHasHeadDims(headDims->first, headDims->second))
    return fail("--head-dims=" + std::to_string(headDims->first) + "," +
                std::to_string(headDims->second) +
                ": the CUDA kernels have no entry for these head dims (they take " +
                cudaHeadDimsList() + ")");
  if (stage == EmitStage::Cubin && output == "-")
    return fail("--emit=cubin writes a binary file: give -o FILE");

  std::string text;
  for (mlir::attn::FlashOp flash : specs) {
    runtime::Expected<std::string> cu = emitCuda(flash, arch);
    if (!cu.ok())
      return fail(cu.status().message());
    text += *cu;
  }
  if (stage == EmitStage::Cuda)
    return writeOutputFile(output, text, llvm::errs()) ? 0 : 1;

  runtime::cuda::CompileRequest req;
  req.arch = arch;
  req.kind = stage == EmitStage::Ptx ? runtime::cuda::BinaryKind::Ptx
                                     : runtime::cuda::BinaryKind::Cubin;
  if (storage)
    req.defines =
        runtime::cuda::entryDefines(*storage, headDims->first, headDims->second);
  req.sourceName = specs.front().getSpec().getSymName().str() + ".cu";
  // The disk cache is an optimisation: without a cache directory, compile.
  std::optional<runtime::KernelCache> cache;
  if (runtime::KernelCache::defaultDirectory().ok())
    cache.emplace();
  runtime::Expected<runtime::cuda::CompileResult> bin =
      runtime::cuda::compileCuda(text, req, cache ? &*cache : nullptr);
  if (!bin.ok())
    return fail(bin.status().message());
  return writeOutputFile(output, bin->binary, llvm::errs()) ? 0 : 1;
}
