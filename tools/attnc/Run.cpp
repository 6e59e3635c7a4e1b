//===- Run.cpp - attnc run: compile a spec and run it on .npy files -------===//
//
// `attnc run SPEC --q Q.npy --k K.npy --v V.npy -o OUT.npy` compiles a spec
// for the CPU through the C++ API (attnc/Compiler.h), or with --target=cuda
// for the GPU (RunCuda.cpp), and runs the kernel on
// tensors read from .npy files: the way to try a variant on real data from
// the shell, and the way the tests run kernels end to end. With
// --cu-seqlens-q and --cu-seqlens-kv, q, k, v and out are a packed
// variable-length batch (runtime::VarlenBatch); with --page-table and
// --kv-lens, k and v are a paged KV cache (runtime::PagedKvCache). With --dout
// DO.npy it also runs the backward pass and writes --dq, --dk, --dv and
// the --dinput gradients (RunBackward.cpp; the declarations both files
// share are in Run.h).
//
// File conventions (DESIGN.md, Tools): q, k and v files are float32 or
// float16 (the .npy reader has no bfloat16, numpy has no such dtype);
// --dtype is the precision the kernel reads and writes, and the CLI
// converts q, k, v (and dO) to it; accumulation stays float32. OUT.npy,
// LSE.npy and the gradient files are always float32. Input files go to the kernel as read: the
// runtime takes int32 or int64 for int inputs, numpy bool for bool inputs
// and float32 for float inputs, and rejects anything else by name.
//
// Bad input gets a clear error and loses nothing. The CLI checks the flags
// and the files (given, readable, .npy, q/k/v float of rank 4, or 3 for a
// varlen batch); the runtime
// checks the rest (shapes against each other and against the spec's
// declarations, input names and dtypes) and reports a kernel's out-of-range
// input read. Every error prints `attnc: error: ...` (spec errors print
// `file:line:col: error:` and a caret line, as the driver does) and exits 1.
//
// Outputs are written only after the kernel (and the backward) succeeded,
// in two phases, by the runtime's rule for a path (Npy.h: a link is
// followed and kept, a hard-linked file is written in place, a device or
// FIFO directly, never replaced; `-` is stdout). Every file is encoded in
// memory first; then every output that is replaced gets a written, fsynced
// temporary beside its target; then the outputs written in place (stdout,
// devices, FIFOs, hard-linked files) are written, and only when all of
// that worked are the temporaries renamed over their targets. A failure
// before the renames (a missing directory, a full disk, /dev/full) leaves
// every replaced target as it was (an output written in place before the
// failure has its bytes). A rename in the same directory can hardly fail
// once a target that is a directory (or two outputs naming one file) has
// been refused up front; if a later one fails all the same, the error
// names the targets already written.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"
#include "attnc/Run.h"

#include "attnc/Compiler.h"
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Tensor.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using namespace attnc;
using namespace attnc::run;
using runtime::Tensor;

namespace {

/// True if \p prefix is `FILE:LINE:COL`.
bool isLocation(const std::string &prefix) {
  size_t end = prefix.size();
  for (int field = 0; field < 2; ++field) {
    size_t start = end;
    while (start > 0 &&
           std::isdigit(static_cast<unsigned char>(prefix[start - 1])))
      --start;
    if (start == end || start == 0 || prefix[start - 1] != ':')
      return false;
    end = start - 1;
  }
  return end > 0;
}

} // namespace

/// Messages of the front end come as diagnostics: a located one,
/// `FILE:LINE:COL: error: ...` with its source line and caret, prints as it
/// is; in `error: X` and `FILE: error: X` the inner `error: ` is dropped.
int run::fail(const std::string &message) {
  std::string text = message;
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  const std::string tag = "error: ";
  size_t at = text.substr(0, text.find('\n')).find(": " + tag);
  if (text.compare(0, tag.size(), tag) == 0) {
    text.erase(0, tag.size());
  } else if (at != std::string::npos) {
    if (isLocation(text.substr(0, at))) {
      llvm::errs() << text << "\n";
      return 1;
    }
    text.erase(at + 2, tag.size());
  }
  return reportError(text);
}

std::optional<Tensor> run::loadOperand(const char *what, const char *layout,
                                       const std::string &path,
                                       DType storage, int64_t rank) {
  runtime::Expected<Tensor> t = runtime::readNpy(path);
  if (!t.ok()) {
    fail(t.status().message());
    return std::nullopt;
  }
  if (t->dtype() != DType::F32 && t->dtype() != DType::F16) {
    fail(path + ": " + what + " must be float32 or float16, not " +
         runtime::dtypeName(t->dtype()) +
         " (convert it with numpy: x.astype(np.float32))");
    return std::nullopt;
  }
  if (int64_t(t->shape().size()) != rank) {
    fail(path + ": " + what + " must have rank " + std::to_string(rank) + " " +
         layout + ", not shape " +
         runtime::shapeToString(t->shape()));
    return std::nullopt;
  }
  if (t->dtype() == storage)
    return std::move(*t);
  runtime::Expected<Tensor> c = runtime::convert(t->view(), storage);
  if (!c.ok()) {
    fail(path + ": " + c.status().message());
    return std::nullopt;
  }
  return std::move(*c);
}

int run::encodeFloat32(const std::string &path, Tensor t,
                       std::vector<OutputFile> &files) {
  runtime::Expected<Tensor> t32 =
      t.dtype() == DType::F32 ? std::move(t)
                              : runtime::convert(t.view(), DType::F32);
  if (!t32.ok())
    return fail(path + ": " + t32.status().message());
  runtime::Expected<std::string> bytes = runtime::encodeNpy(t32->view());
  if (!bytes.ok())
    return fail(path + ": " + bytes.status().message());
  files.push_back({path, std::move(*bytes)});
  return 0;
}

int run::parseNamedFiles(const char *flag,
                         const std::vector<std::string> &values,
                         std::vector<NamedFile> &out) {
  std::set<std::string> names;
  for (const std::string &value : values) {
    size_t eq = value.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
      return fail(std::string(flag) + " " + value + ": expected NAME=FILE.npy");
    std::string name = value.substr(0, eq);
    if (!names.insert(name).second)
      return fail(std::string(flag) + " " + name + " is given twice");
    out.push_back({name, value.substr(eq + 1)});
  }
  return 0;
}

namespace {
/// The spec's text; "-" reads stdin (readSpecFile: regular files only,
/// size-capped).
std::optional<std::string> readSpec(const std::string &path) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer = readSpecFile(path, error);
  if (!buffer) {
    fail(error);
    return std::nullopt;
  }
  return buffer->getBuffer().str();
}

/// Writes \p bytes to stdout (after what llvm::outs() holds).
runtime::Status writeStdout(const std::string &bytes) {
  llvm::outs().flush();
  std::cout.flush();
  const char *p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t w = ::write(STDOUT_FILENO, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return runtime::Status::error(
          std::string("-: cannot write to stdout: ") +
          std::strerror(w < 0 ? errno : EIO));
    p += w;
    left -= size_t(w);
  }
  return runtime::Status::success();
}

/// Writes all of \p files or, on failure, none (see the file comment).
runtime::Status writeAll(const std::vector<OutputFile> &files) {
  // Phase 1: stage every replaced output (the destructors remove the
  // temporaries on any early return).
  std::vector<runtime::PendingWrite> pending(files.size());
  std::vector<bool> inPlace(files.size(), true); // stdout too
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i].path == "-")
      continue;
    runtime::Expected<runtime::PendingWrite> w =
        runtime::PendingWrite::prepare(files[i].path, {files[i].bytes});
    if (!w.ok())
      return w.status();
    pending[i] = std::move(*w);
    inPlace[i] = pending[i].inPlace();
  }
  // Phase 2: what is written in place, and can fail, goes first.
  for (size_t i = 0; i < files.size(); ++i) {
    runtime::Status st = files[i].path == "-" ? writeStdout(files[i].bytes)
                         : inPlace[i]            ? pending[i].commit()
                                                 : runtime::Status::success();
    if (!st.ok())
      return st;
  }
  // Phase 3: the renames.
  std::string written;
  for (size_t i = 0; i < files.size(); ++i) {
    if (inPlace[i])
      continue;
    if (runtime::Status st = pending[i].commit(); !st.ok())
      return runtime::Status::error(
          st.message() +
          (written.empty() ? "" : " (already written: " + written + ")"));
    written += (written.empty() ? "" : ", ") + files[i].path;
  }
  return runtime::Status::success();
}

/// An output path that is a directory cannot be renamed over; refuse it
/// before any work.
bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// True if \p a and \p b name one existing file.
bool sameExistingFile(const std::string &a, const std::string &b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/// What the checked flags of attnc run amount to.
struct RunPlan {
  bool cuda = false;
  DType storage = DType::F32;
  CompileOptions compileOptions;
  std::vector<NamedFile> inputFiles, dinputFiles;
  bool backward() const { return compileOptions.backward; }
};

/// The tensors the kernel reads (dout for the backward) and the spec's
/// text, all read up front.
struct RunInputs {
  std::optional<Tensor> q, k, v, dout;
  std::optional<Tensor> cuSeqlensQ, cuSeqlensKv; // a varlen batch
  std::optional<Tensor> pageTable, kvLens;        // a paged KV cache
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::string specText;
};

/// What the kernel wrote: out in the storage type, lse when asked for or
/// when the backward needs it (softmax), and the backward's gradients.
struct RunOutputs {
  runtime::Expected<Tensor> out = Tensor();
  std::optional<Tensor> lse;
  TensorView lseView;
  Gradients grads;
};

/// Parses \p args into \p f. Returns the exit code when attnc run ends
/// here (1 on a bad command line, 0 after --help), std::nullopt otherwise.
std::optional<int> parseRunCommandLine(const std::vector<std::string> &args,
                                       RunFlags &f, bool &dtypeDefaulted) {
  po::options_description options(
      "attnc run SPEC.attn --q Q.npy --k K.npy --v V.npy -o OUT.npy "
      "[options]");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&f.spec), "the .attn spec file ('-' for stdin)")
      ("q", po::value(&f.q),
       "Q.npy: queries [B, HQ, LQ, D], float32 or float16 (required)")
      ("k", po::value(&f.k), "K.npy: keys [B, HKV, LK, D] (required)")
      ("v", po::value(&f.v), "V.npy: values [B, HKV, LK, DV] (required)")
      ("input", po::value(&f.inputs)->composing(),
       "NAME=FILE.npy: a tensor the spec declares with `input` (repeatable); "
       "int inputs take int32 or int64, bool inputs bool, float inputs "
       "float32")
      ("define,D", po::value(&f.defines)->composing(),
       "NAME=VALUE: override a param (repeatable)")
      ("import-dir,I", po::value(&f.importDirs)->composing(),
       "DIR: where import \"PATH\" looks after the spec's directory "
       "(repeatable)")
      ("name", po::value(&f.name), "run the block NAME of a multi-block file")
      ("target", po::value(&f.target)->default_value("cpu"), "cpu|cuda")
      ("dtype", po::value(&f.dtype)->default_value("f32"),
       "f32|f16|bf16: the precision the kernel reads and writes; "
       "accumulation is float32 (--target=cuda: f16|bf16, default bf16)")
      ("arch", po::value(&f.arch),
       "--target=cuda: sm_80|sm_90a (default: the GPU's, sm_90a on "
       "compute capability 9.0, else sm_80)")
      ("threads", po::value(&f.threads)->default_value(0),
       "number of threads; 0 uses all cores")
      ("output,o", po::value(&f.output),
       "OUT.npy: the output [B, HQ, LQ, DV], float32 (required; '-' for "
       "stdout)")
      ("lse", po::value(&f.lse),
       "LSE.npy: also write the log-sum-exp [B, HQ, LQ], float32 ('-' for "
       "stdout)")
      ("dout", po::value(&f.dout),
       "DO.npy: dL/dout [B, HQ, LQ, DV], float32 or float16: run the "
       "backward pass after the forward (CPU; needs --dq, --dk, --dv)")
      ("dq", po::value(&f.dq), "DQ.npy: write dL/dq [B, HQ, LQ, D], float32")
      ("dk", po::value(&f.dk), "DK.npy: write dL/dk [B, HKV, LK, D], float32")
      ("dv", po::value(&f.dv),
       "DV.npy: write dL/dv [B, HKV, LK, DV], float32")
      ("dinput", po::value(&f.dinputs)->composing(),
       "NAME=FILE.npy: write the gradient of the float input NAME (one the "
       "score, the scale or the bias reads), float32 of its shape "
       "(repeatable)")
      ("cu-seqlens-q", po::value(&f.cuSeqlensQ),
       "CU_Q.npy: run a packed variable-length batch (CPU forward; needs "
       "--cu-seqlens-kv): int32 offsets [B + 1] of each sequence's rows in "
       "q [total_q, HQ, D]; out is then [total_q, HQ, DV], lse [HQ, total_q]")
      ("cu-seqlens-kv", po::value(&f.cuSeqlensKv),
       "CU_KV.npy: the offsets [B + 1] of each sequence's rows in k "
       "[total_kv, HKV, D] and v [total_kv, HKV, DV]")
      ("page-table", po::value(&f.pageTable),
       "PT.npy: k and v are a paged KV cache [num_pages, page_size, HKV, "
       "D|DV] (CPU forward; needs --kv-lens): int32 [B, max_pages], the "
       "pages of each sequence in order")
      ("kv-lens", po::value(&f.kvLens),
       "LENS.npy: int32 [B], the number of keys of each sequence in its pages")
      ("page-size", po::value(&f.pageSize)->default_value(0),
       "the rows of a page, checked against k's shape (0: k's)")
      ("dropout-seed", po::value(&f.dropoutSeedText),
       "N: a training call of a spec with softmax(dropout = p): drop pairs "
       "by Philox4x32 keyed with N (0 .. 2^64 - 1; without it: no dropout)")
      ("dropout-offset", po::value(&f.dropoutOffsetText),
       "N: Philox's counter word 3 for --dropout-seed (0 .. 2^32 - 1, "
       "default 0; advance it per training step)");
  po::variables_map vm;
  if (!parseCommandLine("run", args, options, vm))
    return 1;
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  dtypeDefaulted = vm["dtype"].defaulted();
  return std::nullopt;
}

/// Checks the flags of the inference layouts: a varlen batch
/// (--cu-seqlens-*) or a paged KV cache (--page-table, --kv-lens,
/// --page-size). Returns 0 or fail's 1.
int checkLayoutFlags(const RunFlags &f, bool cuda) {
  if (f.varlen()) {
    if (f.cuSeqlensQ.empty() || f.cuSeqlensKv.empty())
      return fail("a varlen batch needs both --cu-seqlens-q and "
                  "--cu-seqlens-kv");
    if (cuda)
      return fail("--cu-seqlens-q/--cu-seqlens-kv run on the CPU only (yet), "
                  "not with --target=cuda");
    if (!f.dout.empty())
      return fail("--dout: the backward of a varlen batch is not supported "
                  "(yet); run the sequences one at a time");
  }
  if (f.paged() || f.pageSize != 0) {
    if (f.pageTable.empty() || f.kvLens.empty())
      return fail("a paged KV cache needs both --page-table and --kv-lens");
    if (f.pageSize < 0)
      return fail("--page-size=" + std::to_string(f.pageSize) +
                  ": expected the rows of a page (>= 1), or 0 for k's");
    if (cuda)
      return fail("--page-table/--kv-lens run on the CPU only (yet), not "
                  "with --target=cuda");
    if (!f.dout.empty())
      return fail("--dout: the backward on a paged KV cache is not "
                  "supported (yet)");
    if (f.varlen())
      return fail("a varlen batch on a paged KV cache is not supported (yet)");
  }
  return 0;
}

/// A decimal number in [0, max] for \p flag, or nullopt after fail().
std::optional<uint64_t> parseUnsigned(const char *flag, const std::string &text,
                                      uint64_t max) {
  errno = 0;
  char *end = nullptr;
  unsigned long long v = text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))
                             ? 0
                             : std::strtoull(text.c_str(), &end, 10);
  if (!end || *end != '\0' || errno == ERANGE || v > max) {
    fail(std::string(flag) + "=" + text + ": expected a whole number from 0 to " +
         std::to_string(max));
    return std::nullopt;
  }
  return uint64_t(v);
}

/// --dropout-seed and --dropout-offset into f.dropout. Returns 0 or
/// fail's 1.
int checkDropoutFlags(RunFlags &f) {
  if (f.dropoutSeedText.empty()) {
    if (!f.dropoutOffsetText.empty())
      return fail("--dropout-offset needs --dropout-seed");
    return 0;
  }
  std::optional<uint64_t> seed = parseUnsigned("--dropout-seed", f.dropoutSeedText, UINT64_MAX);
  if (!seed)
    return 1;
  runtime::DropoutSeed d{*seed, 0};
  if (!f.dropoutOffsetText.empty()) {
    std::optional<uint64_t> offset =
        parseUnsigned("--dropout-offset", f.dropoutOffsetText, 0xffffffffull);
    if (!offset)
      return 1;
    d.offset = *offset;
  }
  f.dropout = d;
  return 0;
}

/// Checks the spec, the required files, --target, --arch, --dtype and
/// --threads; fills \p plan's target and storage. Returns 0 or fail's 1.
int checkRunFlags(RunFlags &f, bool dtypeDefaulted, RunPlan &plan) {
  if (f.spec.empty())
    return fail("no spec file given");
  std::string missing;
  const std::pair<const std::string *, const char *> required[] = {
      {&f.q, "--q Q.npy"}, {&f.k, "--k K.npy"}, {&f.v, "--v V.npy"},
      {&f.output, "-o OUT.npy"}};
  for (auto [value, flag] : required)
    if (value->empty())
      missing += std::string(missing.empty() ? "" : ", ") + flag;
  if (!missing.empty())
    return fail("missing " + missing + " (see 'attnc run --help')");
  if (f.target != "cpu" && f.target != "cuda")
    return fail("--target=" + f.target + ": expected cpu or cuda");
  const bool cuda = f.target == "cuda";
  if (cuda && dtypeDefaulted)
    f.dtype = "bf16";
  if (!f.arch.empty() && !cuda)
    return fail("--arch is for --target=cuda");
  if (!f.arch.empty() && f.arch != "sm_80" && f.arch != "sm_90a")
    return fail("--arch=" + f.arch + ": expected sm_80 or sm_90a");
  std::optional<DType> storage = runtime::parseDType(f.dtype);
  if (!storage || (*storage != DType::F32 && *storage != DType::F16 &&
                   *storage != DType::BF16))
    return fail("--dtype=" + f.dtype + ": expected f32, f16 or bf16");
  if (cuda && *storage == DType::F32)
    return fail("--target=cuda kernels read and write f16 or bf16, not f32 "
                "(--dtype=bf16 or --dtype=f16)");
  if (f.threads < 0)
    return fail("--threads=" + std::to_string(f.threads) +
                ": expected a number >= 0 (0 uses all cores)");
  if (int rc = checkBackwardFlags(f, cuda, plan.dinputFiles))
    return rc;
  if (int rc = checkLayoutFlags(f, cuda))
    return rc;
  plan.compileOptions.backward = !f.dout.empty();
  plan.cuda = cuda;
  plan.storage = *storage;
  return 0;
}

/// Fills \p plan's compile options from --dtype, --name and the -D flags,
/// and its input files from the --input flags. Returns 0 or fail's 1.
int planCompileAndInputs(const RunFlags &f, RunPlan &plan) {
  CompileOptions &compileOptions = plan.compileOptions;
  compileOptions.target = Target::CPU;
  compileOptions.dtype = plan.storage;
  compileOptions.name = f.name;
  compileOptions.importDirs = f.importDirs;
  for (const std::string &d : f.defines) {
    std::pair<std::string, std::string> define;
    if (std::string why = parseDefine(d, define); !why.empty())
      return fail(why);
    compileOptions.defines.emplace_back(define.first, define.second);
  }

  return parseNamedFiles("--input", f.inputs, plan.inputFiles);
}

/// Refuses the output paths that could only fail after the kernel ran:
/// a directory, two outputs naming one file (or both stdout). Returns 0 or
/// fail's 1.
int checkOutputPaths(const RunFlags &f, const RunPlan &plan) {
  std::vector<std::pair<std::string, std::string>> outputs = {
      {"-o", f.output}, {"--lse", f.lse}, {"--dq", f.dq}, {"--dk", f.dk},
      {"--dv", f.dv}};
  for (const NamedFile &d : plan.dinputFiles)
    outputs.push_back({"--dinput " + d.name, d.path});
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto &[flag, path] = outputs[i];
    if (path.empty())
      continue;
    for (size_t j = 0; j < i; ++j)
      if (outputs[j].second == path || sameExistingFile(outputs[j].second, path))
        return fail(outputs[j].first + " and " + flag +
                    " name the same file '" + path + "'");
    if (isDirectory(path))
      return fail(path + ": cannot write: is a directory");
  }
  return 0;
}

/// Reads q, k, v, the --input files and the spec into \p in. Returns 0 or
/// 1 after the error was printed.
int readRunInputs(const RunFlags &f, const RunPlan &plan, RunInputs &in) {
  const bool varlen = f.varlen();
  const int64_t rank = varlen ? 3 : 4;
  in.q = loadOperand("q", varlen ? "[total_q, HQ, D]" : "[B, HQ, LQ, D]", f.q,
                     plan.storage, rank);
  if (!in.q)
    return 1;
  const bool paged = f.paged();
  in.k = loadOperand("k",
                     varlen  ? "[total_kv, HKV, D]"
                     : paged ? "[num_pages, page_size, HKV, D]"
                             : "[B, HKV, LK, D]",
                     f.k, plan.storage, rank);
  if (!in.k)
    return 1;
  in.v = loadOperand("v",
                     varlen  ? "[total_kv, HKV, DV]"
                     : paged ? "[num_pages, page_size, HKV, DV]"
                             : "[B, HKV, LK, DV]",
                     f.v, plan.storage, rank);
  if (!in.v)
    return 1;
  for (auto [path, slot] : {std::pair{&f.cuSeqlensQ, &in.cuSeqlensQ},
                            std::pair{&f.cuSeqlensKv, &in.cuSeqlensKv},
                            std::pair{&f.pageTable, &in.pageTable},
                            std::pair{&f.kvLens, &in.kvLens}}) {
    if (path->empty())
      continue;
    runtime::Expected<Tensor> t = runtime::readNpy(*path);
    if (!t.ok())
      return fail(t.status().message());
    *slot = std::move(*t);
  }
  if (plan.backward()) {
    in.dout = loadOperand("dout", "[B, HQ, LQ, DV]", f.dout, plan.storage);
    if (!in.dout)
      return 1;
    const std::vector<int64_t> &qs = in.q->shape();
    std::vector<int64_t> outShape = {qs[0], qs[1], qs[2], in.v->shape()[3]};
    if (in.dout->shape() != outShape)
      return fail(f.dout + ": dout must have the shape of out [B, HQ, LQ, DV] "
                  "= " + runtime::shapeToString(outShape) + ", not " +
                  runtime::shapeToString(in.dout->shape()));
  }
  for (const NamedFile &file : plan.inputFiles) {
    runtime::Expected<Tensor> t = runtime::readNpy(file.path);
    if (!t.ok())
      return fail(t.status().message());
    in.inputs.emplace_back(file.name, std::move(*t));
  }
  std::optional<std::string> specText = readSpec(f.spec);
  if (!specText)
    return 1;
  in.specText = std::move(*specText);
  return 0;
}

/// Compiles and runs the spec on the GPU (RunCuda.cpp). Returns 0 or
/// fail's 1.
int runOnGpu(const RunFlags &f, const RunPlan &plan, const RunInputs &in,
             RunOutputs &result) {
  CudaRunRequest request;
  request.specName = f.spec == "-" ? "<stdin>" : f.spec;
  request.specText = in.specText;
  request.frontend.onlyName = f.name;
  request.frontend.importDirs = f.importDirs;
  for (const Define &d : plan.compileOptions.defines)
    request.frontend.defines.emplace_back(d.name, d.value);
  request.storage = plan.storage;
  request.arch = f.arch;
  request.q = &*in.q;
  request.k = &*in.k;
  request.v = &*in.v;
  request.inputs = &in.inputs;
  request.wantLse = !f.lse.empty();
  request.dropout = f.dropout;
  Status st = runOnCuda(request, *result.out, result.lse);
  if (!st.ok())
    return fail(st.message());
  if (result.lse)
    result.lseView = result.lse->view();
  return 0;
}

/// Compiles the spec for the CPU through the C++ API and runs the kernel.
/// Returns 0 or fail's 1.
int runOnCpu(const RunFlags &f, const RunPlan &plan, const RunInputs &in,
             RunOutputs &result) {
  const std::vector<int64_t> &qs = in.q->shape();
  CompileOptions compileOptions = plan.compileOptions;
  compileOptions.headDim = qs.back(); // tiles tuned for the head dim at hand
  Compiler compiler;
  Expected<Kernel> kernel = compiler.compile(
      in.specText, compileOptions, f.spec == "-" ? "<stdin>" : f.spec);
  if (!kernel.ok())
    return fail(kernel.status().message());
  if (int rc = checkGradientNames(*kernel, plan.dinputFiles))
    return rc;
  // A varlen batch: out [total_q, HQ, DV], lse [HQ, total_q].
  const bool varlen = in.cuSeqlensQ.has_value();
  const std::vector<int64_t> outShape =
      varlen ? std::vector<int64_t>{qs[0], qs[1], in.v->shape().back()}
             : std::vector<int64_t>{qs[0], qs[1], qs[2], in.v->shape()[3]};
  result.out = Tensor::zeros(plan.storage, outShape);
  if (!result.out.ok())
    return fail("output: " + result.out.status().message());
  // The softmax backward recomputes P from the forward's lse.
  if (!f.lse.empty() || (plan.backward() && !kernel->info().sigmoid)) {
    runtime::Expected<Tensor> l = Tensor::zeros(
        DType::F32, varlen ? std::vector<int64_t>{qs[1], qs[0]}
                           : std::vector<int64_t>{qs[0], qs[1], qs[2]});
    if (!l.ok())
      return fail("lse: " + l.status().message());
    result.lse = std::move(*l);
    result.lseView = result.lse->view();
  }
  ForwardOptions forward;
  forward.lse = result.lse ? &result.lseView : nullptr;
  forward.threads = f.threads;
  forward.dropout = f.dropout;
  for (const auto &[name, t] : in.inputs)
    forward.inputs.emplace_back(name, t.view());
  TensorView cuQ, cuKv, pageTable, kvLens;
  if (varlen) {
    cuQ = in.cuSeqlensQ->view(), cuKv = in.cuSeqlensKv->view();
    forward.varlen = {&cuQ, &cuKv};
  }
  if (in.pageTable) {
    pageTable = in.pageTable->view(), kvLens = in.kvLens->view();
    forward.paged = {&pageTable, &kvLens, f.pageSize};
  }
  Status st = kernel->forward(in.q->view(), in.k->view(), in.v->view(),
                              result.out->view(), forward);
  if (!st.ok())
    return fail(st.message());
  if (!plan.backward())
    return 0;
  return runBackward(*kernel, f, plan.dinputFiles, *in.q, *in.k, *in.v,
                     in.inputs, result.out->view(),
                     result.lse ? result.lseView : TensorView(), *in.dout,
                     result.grads);
}

/// Encodes out (as float32), lse and the gradients, then writes all files
/// or none. Returns 0 or fail's 1.
int writeOutputs(const RunFlags &f, const RunPlan &plan, RunOutputs &result) {
  std::vector<OutputFile> files;
  if (encodeFloat32(f.output, std::move(*result.out), files))
    return 1;
  if (result.lse && !f.lse.empty()) {
    runtime::Expected<std::string> bytes = runtime::encodeNpy(result.lseView);
    if (!bytes.ok())
      return fail(f.lse + ": " + bytes.status().message());
    files.push_back({f.lse, std::move(*bytes)});
  }
  if (plan.backward() && encodeGradients(f, result.grads, files))
    return 1;
  if (Status w = writeAll(files); !w.ok())
    return fail(w.message());
  return 0;
}
} // namespace

int attnc::runRun(const std::vector<std::string> &args) {
  RunFlags f;
  bool dtypeDefaulted = false;
  if (std::optional<int> exitCode = parseRunCommandLine(args, f, dtypeDefaulted))
    return *exitCode;

  // Flags.
  RunPlan plan;
  if (int rc = checkRunFlags(f, dtypeDefaulted, plan))
    return rc;
  if (int rc = checkDropoutFlags(f))
    return rc;
  if (int rc = planCompileAndInputs(f, plan))
    return rc;

  // Output paths: refuse what could only fail after the kernel ran.
  if (int rc = checkOutputPaths(f, plan))
    return rc;

  // Files, cheap to check, before the compilation.
  RunInputs in;
  if (int rc = readRunInputs(f, plan, in))
    return rc;

  // Compile and run.
  RunOutputs result;
  if (int rc = plan.cuda ? runOnGpu(f, plan, in, result)
                         : runOnCpu(f, plan, in, result))
    return rc;

  // Write: encode everything first, then all files or none.
  return writeOutputs(f, plan, result);
}
