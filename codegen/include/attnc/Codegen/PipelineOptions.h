//===- PipelineOptions.h - What attnc::buildPipeline is asked for -*- C++ -*-===//
//
// The one options struct of the compiler pipeline (Pipeline.h), free of
// MLIR headers so that the C++ API's header can include it.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_PIPELINEOPTIONS_H
#define ATTNC_CODEGEN_PIPELINEOPTIONS_H

#include "attnc/Runtime/DType.h"

#include <cstdint>
#include <string>

namespace attnc {

enum class Target { CPU, CUDA };

/// The printable levels of the pipeline, in order (attnc compile --emit
/// names them): the front end's module, the analysed spec, the tiled flash
/// form (attn.flash), the CPU loop nest, the LLVM dialect.
enum class PipelineStage { Parsed, Analysed, Tiled, Loops, LLVM };

struct PipelineOptions {
  Target target = Target::CPU;
  /// Storage type of q, k, v and out (F32, F16 or BF16; CUDA: F16 or BF16).
  runtime::DType storage = runtime::DType::F32;
  /// Target::CUDA: sm_80 or sm_90a (it decides the tiles).
  std::string arch;
  /// Target::CPU: tile sizes, 0 for the tuned choice; the head dim the
  /// kernel mostly runs with (0 if unknown), which the tuned choice uses.
  int64_t tileQ = 0, tileK = 0, headDim = 0;
  /// Target::CPU: also differentiate the spec (attn-derive-backward) and
  /// generate the backward helpers (KernelABI.h) beside the forward kernel.
  bool backward = false;
};

} // namespace attnc

#endif // ATTNC_CODEGEN_PIPELINEOPTIONS_H
