//===- Pipeline.cpp - The compiler pipeline, built in one place -----------===//
//
// See Pipeline.h. The pass options come from PipelineOptions and nowhere
// else: the storage name is runtime::dtypeName's, which the passes parse
// with runtime::parseDType (TileChoice.h's parseStorageOption).
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/TileChoice.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace attnc;
using runtime::DType;
using runtime::Status;

Status attnc::checkPipelineOptions(const PipelineOptions &o) {
  bool sixteen = o.storage == DType::F16 || o.storage == DType::BF16;
  if (o.target == Target::CUDA) {
    if (!attn::cudaKernelTiles(o.arch))
      return Status::error("CUDA arch '" + o.arch + "': expected sm_80 or sm_90a");
    if (!sixteen)
      return Status::error(std::string("Target::CUDA kernels store q, k, v and "
                                       "out as float16 or bfloat16, not ") +
                           runtime::dtypeName(o.storage));
    if (o.tileQ || o.tileK)
      return Status::error("tile sizes are fixed by the CUDA kernels; tileQ "
                           "and tileK are options of Target::CPU");
  } else {
    if (!o.arch.empty())
      return Status::error("the arch is an option of Target::CUDA");
    if (!sixteen && o.storage != DType::F32)
      return Status::error(std::string("storage dtype must be float32, "
                                       "float16 or bfloat16, got ") +
                           runtime::dtypeName(o.storage));
  }
  if (o.tileQ < 0 || o.tileK < 0 || o.headDim < 0)
    return Status::error("tile sizes and the head dim must not be negative "
                         "(0 for the default)");
  return Status::success();
}

void attnc::buildPipeline(OpPassManager &pm, const PipelineOptions &o,
                          PipelineStage from, PipelineStage until) {
  auto covers = [&](PipelineStage s) { return from < s && s <= until; };
  if (covers(PipelineStage::Analysed)) {
    pm.addPass(attn::createAttnCanonicalizePass());
    if (o.backward && o.target == Target::CPU)
      pm.addPass(attn::createAttnDeriveBackwardPass());
    pm.addPass(attn::createAttnMaskAnalysisPass());
  }
  if (covers(PipelineStage::Tiled)) {
    attn::AttnChooseTilesPassOptions choose;
    choose.target = o.target == Target::CUDA ? o.arch : "cpu";
    choose.storage = runtime::dtypeName(o.storage);
    choose.headDim = o.headDim;
    choose.tileQ = o.tileQ;
    choose.tileK = o.tileK;
    pm.addPass(attn::createAttnChooseTilesPass(choose));
    attn::AttnTilePassOptions tile;
    tile.storage = runtime::dtypeName(o.storage);
    // Gathered 2-D patches are the CPU kernels'; the CUDA kernels take rows.
    tile.gridPatches = o.target == Target::CPU;
    pm.addPass(attn::createAttnTilePass(tile));
  }
  if (o.target == Target::CUDA)
    return; // the CUDA emitter takes the tiled form
  if (covers(PipelineStage::Loops)) {
    attn::AttnLowerCpuPassOptions lower;
    // The CPU target runs the matrix products and the softmax update in the
    // runtime's register-tiled microkernels.
    lower.microkernels = true;
    pm.addPass(attn::createAttnLowerCpuPass(lower));
    pm.addPass(attn::createAttnExpandMathPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
  }
  if (covers(PipelineStage::LLVM))
    addCpuToLLVMPasses(pm);
}

LogicalResult attnc::runPipeline(ModuleOp module, const PipelineOptions &o,
                                 PipelineStage from, PipelineStage until) {
  PassManager pm(module.getContext());
  buildPipeline(pm, o, from, until);
  return pm.run(module);
}

SmallVector<attn::FlashOp> attnc::flashOps(ModuleOp module) {
  return llvm::to_vector(module.getOps<attn::FlashOp>());
}

namespace {
struct PipelineCLOptions : public PassPipelineOptions<PipelineCLOptions> {
  Option<std::string> target{*this, "target", llvm::cl::desc("cpu or cuda"),
                             llvm::cl::init("cpu")};
  Option<std::string> arch{*this, "arch", llvm::cl::desc("cuda: sm_80 or sm_90a"),
                           llvm::cl::init("")};
  Option<std::string> storage{*this, "storage",
                              llvm::cl::desc("f32, f16 or bf16"), llvm::cl::init("f32")};
  Option<int64_t> tileQ{*this, "tile-q", llvm::cl::desc("cpu: rows per tile"),
                        llvm::cl::init(0)};
  Option<int64_t> tileK{*this, "tile-k", llvm::cl::desc("cpu: keys per tile"),
                        llvm::cl::init(0)};
  Option<int64_t> headDim{*this, "head-dim", llvm::cl::desc("the usual head dim"),
                          llvm::cl::init(0)};
  Option<bool> backward{*this, "backward",
                        llvm::cl::desc("cpu: also the backward helpers"),
                        llvm::cl::init(false)};
  Option<std::string> until{*this, "until",
                            llvm::cl::desc("analysed, tiled, loops or llvm"),
                            llvm::cl::init("llvm")};
};
} // namespace

void attnc::registerAttncPipeline() {
  PassPipelineRegistration<PipelineCLOptions>(
      "attnc-pipeline",
      "The attnc compiler pipeline from the front end's module to the tiled "
      "form (cuda) or the LLVM dialect (cpu)",
      [](OpPassManager &pm, const PipelineCLOptions &cl) {
        PipelineOptions o;
        o.target = cl.target == "cuda" ? Target::CUDA : Target::CPU;
        o.arch = cl.arch;
        // An unknown name is reported by the passes that parse it.
        o.storage = runtime::parseDType(cl.storage).value_or(DType::I64);
        o.tileQ = cl.tileQ;
        o.tileK = cl.tileK;
        o.headDim = cl.headDim;
        o.backward = cl.backward;
        PipelineStage until = cl.until == "analysed" ? PipelineStage::Analysed
                              : cl.until == "tiled"  ? PipelineStage::Tiled
                              : cl.until == "loops"  ? PipelineStage::Loops
                                                     : PipelineStage::LLVM;
        buildPipeline(pm, o, PipelineStage::Parsed, until);
      });
}
