//===- CpuBackward.h - The runtime driver of the CPU backward pass -*- C++ -*-===//
//
// The backward pass of a compiled attention kernel on the CPU (issue 14):
// given q, k, v, the forward's out and lse and the upstream gradient dout,
// computes dq, dk, dv and the gradients of the kernel's differentiable
// float inputs. The driver owns the tiled loops (FlashAttention-2's
// backward, key tiles outer), the matrix products (the runtime's
// microkernels) and the deterministic reductions; everything that depends
// on the spec (the mask schedule's column view, P from the scores, the
// derivative of the score expression) comes from two generated helpers with
// the forward's entry signature (KernelABI.h: attnc_kernel_<name>__bwd_kinds
// and __bwd_tile).
//
// Determinism: the work is split into tasks (b, hkv, chunk of key tiles)
// whose number depends on the shapes only, each task accumulates into its
// own partial buffers, and the partials are summed in a fixed order, so the
// results are bitwise identical for every thread count.
//
// Bad arguments return an error Status naming the tensor; nothing is
// written then. A kernel-reported error (an out-of-range input read) also
// comes back as a Status; dk and dv may then hold partial results, dq and
// the input gradients are untouched.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_CPUBACKWARD_H
#define ATTNC_RUNTIME_CPUBACKWARD_H

#include "attnc/Runtime/CpuDispatch.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnc::runtime {

/// A compiled kernel's backward helpers.
struct BackwardKernelInfo {
  /// The forward kernel: name, storage type, normalisation, inputs. Its
  /// entry point and tiles are not used.
  const KernelInfo *forward = nullptr;
  /// attnc_kernel_<name>__bwd_kinds and __bwd_tile (KernelABI.h).
  attnc_cpu_kernel_fn kinds = nullptr, tile = nullptr;
  /// Indices into forward->inputs of the float inputs that get a gradient,
  /// increasing (declaration order, as differentiableInputs()).
  std::vector<int> differentiable;
  /// The backward's tiles: query rows and keys per tile, 1..65536.
  int64_t tileQ = 0, tileK = 0;
  /// The spec has a softmax sink: __bwd_tile takes kind ATTNC_BWD_SINK_ROWS
  /// (KernelABI.h), which the driver runs once per query tile when the
  /// sink has input gradients, and in the lse check.
  bool sinkRows = false;
};

/// The tensors of one backward call. q, k, v, out as in CpuForwardArgs;
/// dout like out, dq like q, dk like k, dv like v, all in the storage type;
/// lse float32 [B, HQ, LQ], required for softmax and absent (data null,
/// empty shape) for sigmoid. inputs as in the forward; inputGrads names a
/// subset of the differentiable inputs, each float32 of its input's shape.
struct CpuBackwardArgs {
  TensorView q, k, v, out, lse, dout, dq, dk, dv;
  std::vector<std::pair<std::string, TensorView>> inputs, inputGrads;
  /// The call as a window of longer sequences, as in CpuForwardArgs. lse
  /// and out are then the rows' over every key of the sequence (the merged
  /// forward of context parallelism), so dq and the input gradients are
  /// this window's share and dk, dv those of its keys.
  SequenceWindow window;
  /// A packed variable-length batch, as CpuForwardArgs::varlen: q, out,
  /// dout, dq [total_q, HQ, D|DV], k, v, dk, dv [total_kv, HKV, D|DV], lse
  /// [HQ, total_q]; each sequence is a problem of its own.
  VarlenBatch varlen;
  /// A spec with softmax(dropout = p): the forward's seed and offset, whose
  /// mask the backward regenerates (CpuForwardArgs::dropout); unset: the
  /// forward had no dropout.
  std::optional<DropoutSeed> dropout;
  /// Internal (varlen): CpuForwardArgs::dropoutBatch.
  int64_t dropoutBatch = 0;
  /// Threads to use; 0 means the global pool's size. The results do not
  /// depend on it.
  int threads = 0;
  /// If set, receives B * HQ * numQTiles * numKTiles entries (backward
  /// tiles), at ((b * HQ + h) * numQTiles + qt) * numKTiles + kt: 0 for a
  /// tile not visited, 1 FULL, 2 PARTIAL.
  std::vector<int8_t> *tileTrace = nullptr;
};

/// Checks the arguments and runs the backward pass.
Status backwardCpu(const BackwardKernelInfo &kernel,
                   const CpuBackwardArgs &args);

/// backwardCpu of a packed variable-length batch (CpuBackwardVarlen.cpp):
/// checks the offsets and every sequence's call (its lse too) before any
/// runs, then runs each sequence as a call of its own. The gradient of an
/// input with a B dimension is sliced per sequence like the input; that of
/// a shared input (no B dimension) is the sum over the sequences, in their
/// order. backwardCpu comes here when args.varlen is enabled.
Status backwardCpuVarlen(const BackwardKernelInfo &kernel,
                         const CpuBackwardArgs &args);

/// The number of key-tile chunks per (b, hkv) for these sizes: chosen from
/// the shape only, so that the results never depend on the thread count.
int64_t backwardChunks(int64_t B, int64_t HKV, int64_t numKTiles);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_CPUBACKWARD_H
