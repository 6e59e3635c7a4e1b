//===- Run.h - What attnc run's forward and backward halves share -*- C++ -*-===//
//
// attnc run is two files: Run.cpp (flags, files, the forward, the writes)
// and RunBackward.cpp (--dout: the backward pass and its gradient files).
// This private header holds what they share.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_RUN_H
#define ATTNC_TOOLS_RUN_H

#include "attnc/Compiler.h"
#include "attnc/Runtime/Tensor.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnc::run {

/// The flags of attnc run, as given.
struct RunFlags {
  std::string spec, q, k, v, output, lse, name, target, dtype, arch;
  std::vector<std::string> inputs, defines, importDirs;
  int threads = 0;
  /// The backward (--dout): the upstream gradient and the gradient files.
  std::string dout, dq, dk, dv;
  std::vector<std::string> dinputs;
  /// A packed variable-length batch: the offset files (both or neither).
  std::string cuSeqlensQ, cuSeqlensKv;
  bool varlen() const { return !cuSeqlensQ.empty() || !cuSeqlensKv.empty(); }
  /// A paged KV cache: the page table and length files (both or neither)
  /// and the page size (0: k's).
  std::string pageTable, kvLens;
  int64_t pageSize = 0;
  bool paged() const { return !pageTable.empty() || !kvLens.empty(); }
  /// softmax(dropout = p): --dropout-seed and --dropout-offset as written,
  /// and their values once checked (a seed: a training call).
  std::string dropoutSeedText, dropoutOffsetText;
  std::optional<runtime::DropoutSeed> dropout;
};

/// One NAME=FILE.npy flag (--input, --dinput).
struct NamedFile {
  std::string name, path;
};

/// Parses the `flag` values NAME=FILE.npy in \p values into \p out; a
/// malformed or repeated name is an error. Returns 0 or fail's 1.
int parseNamedFiles(const char *flag, const std::vector<std::string> &values,
                    std::vector<NamedFile> &out);

/// Prints \p message as an error of attnc run (`attnc: error: ...`, a
/// located front-end diagnostic as it is); returns the exit code 1.
int fail(const std::string &message);

/// Reads the float32 or float16 tensor \p what of rank \p rank (layout
/// \p layout, for messages) from \p path and converts it to \p storage;
/// prints the error and returns std::nullopt on failure.
std::optional<runtime::Tensor> loadOperand(const char *what,
                                           const char *layout,
                                           const std::string &path,
                                           DType storage, int64_t rank = 4);

/// One output file: its path ("-" for stdout) and its encoded bytes.
struct OutputFile {
  std::string path, bytes;
};

/// Encodes \p t as a float32 .npy (converting from its dtype) and appends
/// it to \p files as \p path. Returns 0 or fail's 1.
int encodeFloat32(const std::string &path, runtime::Tensor t,
                  std::vector<OutputFile> &files);

/// The backward's flags are consistent: --dout comes with --dq, --dk and
/// --dv, those and --dinput only with --dout, the CPU only. Fills
/// \p dinputFiles. Returns 0 or fail's 1.
int checkBackwardFlags(const RunFlags &f, bool cuda,
                       std::vector<NamedFile> &dinputFiles);

/// The gradients of one backward call, in the storage type (dq, dk, dv)
/// and float32 (the inputs'), ready to encode.
struct Gradients {
  std::optional<runtime::Tensor> dq, dk, dv;
  std::vector<std::pair<NamedFile, runtime::Tensor>> inputs;
};

/// Every --dinput names a float input that gets a gradient
/// (Kernel::differentiableInputs()); the error names the first that does
/// not, and says why. Returns 0 or fail's 1.
int checkGradientNames(const Kernel &kernel,
                       const std::vector<NamedFile> &dinputFiles);

/// Runs the backward after the forward: \p out and \p lse are the
/// forward's (lse an empty view for sigmoid), \p dout the upstream
/// gradient in the storage type. Fills \p grads. Returns 0 or fail's 1.
int runBackward(const Kernel &kernel, const RunFlags &f,
                const std::vector<NamedFile> &dinputFiles,
                const runtime::Tensor &q, const runtime::Tensor &k,
                const runtime::Tensor &v,
                const std::vector<std::pair<std::string, runtime::Tensor>>
                    &inputs,
                const runtime::TensorView &out,
                const runtime::TensorView &lse, const runtime::Tensor &dout,
                Gradients &grads);

/// Appends dq, dk, dv and the input gradients, as float32 .npy, to
/// \p files. Returns 0 or fail's 1.
int encodeGradients(const RunFlags &f, Gradients &grads,
                    std::vector<OutputFile> &files);

} // namespace attnc::run

#endif // ATTNC_TOOLS_RUN_H
