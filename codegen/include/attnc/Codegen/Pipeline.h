//===- Pipeline.h - The compiler pipeline, built in one place ----*- C++ -*-===//
//
// One pass pipeline from the front end's module to the LLVM dialect, used by
// the attnc CLI, the C++ API (Compiler.cpp), the benchmarks, the tests and
// attn-opt (--attnc-pipeline="..."):
//
//   Parsed   --attn-canonicalize, [attn-derive-backward,] attn-mask-analysis
//                                                   -->   Analysed
//   Analysed --attn-choose-tiles, attn-tile----------->   Tiled (attn.flash)
//   Tiled    --attn-lower-cpu (microkernels), canonicalize, cse--> Loops (CPU)
//   Loops    --scf/arith/math/memref/func to LLVM, entry points--> LLVM (CPU)
//
// The CUDA back end starts from Tiled (emitCuda in CudaElementCode.h).
// Every stage is idempotent on IR that is already past it (attn-tile leaves
// attn.flash ops alone), so a module may enter at any level, e.g. a printed
// tiled form read back from a .mlir file.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_PIPELINE_H
#define ATTNC_CODEGEN_PIPELINE_H

#include "attnc/Codegen/PipelineOptions.h"
#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/Status.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

namespace attnc {

/// An error for options no pipeline can run with (a CUDA arch without a
/// kernel, a storage type the target does not have, tile sizes for CUDA,
/// negative sizes).
runtime::Status checkPipelineOptions(const PipelineOptions &options);

/// Adds the passes that take a module from `from` to `until`.
void buildPipeline(mlir::OpPassManager &pm, const PipelineOptions &options,
                   PipelineStage from, PipelineStage until);

/// Runs buildPipeline's passes on `module`; diagnostics go to the
/// context's handler.
mlir::LogicalResult runPipeline(mlir::ModuleOp module,
                                const PipelineOptions &options,
                                PipelineStage from, PipelineStage until);

/// The flash ops of a module at the Tiled level, in order.
llvm::SmallVector<mlir::attn::FlashOp> flashOps(mlir::ModuleOp module);

/// Registers the pipeline with MLIR's pass registry as `attnc-pipeline`
/// (target, arch, storage, tile-q, tile-k, head-dim, backward, until).
void registerAttncPipeline();

} // namespace attnc

#endif // ATTNC_CODEGEN_PIPELINE_H
