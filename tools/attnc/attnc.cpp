//===- attnc.cpp - The attnc command line: compile, run, show, cache ------===//
//
// `attnc compile SPEC --emit=STAGE` prints or writes a stage of the pipeline
// (toyc style: each --emit stops the pipeline at a later step);
// `attnc run SPEC --q Q.npy --k K.npy --v V.npy -o OUT.npy` compiles the
// spec and runs the kernel on .npy files (Run.cpp);
// `attnc show SPEC --lq N --lk N` prints the tile schedule of the mask;
// `attnc cache stats|clear` reports on or empties the kernel cache (Cache.cpp).
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"
#include "common/ToolCommandLine.h"
#include "common/ToolDiagnostics.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Driver.h"
#include "attnc/Version.h"
#include "attnc/Codegen/CudaElementCode.h"

#include "attnc/Dialect/AttnDialect.h"
#include "mlir/IR/AsmState.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <iostream>
#include <new>

using namespace attnc;

int attnc::reportError(const llvm::Twine &message) {
  printToolError("attnc", message);
  return 1;
}

bool attnc::parseDefines(const std::vector<std::string> &args,
                         FrontendOptions &out) {
  for (const std::string &a : args) {
    std::pair<std::string, std::string> define;
    if (std::string why = parseDefine(a, define); !why.empty()) {
      reportError(why);
      return false;
    }
    out.defines.push_back(std::move(define));
  }
  return true;
}

bool attnc::parseCommandLine(const char *command,
                             const std::vector<std::string> &args,
                             const po::options_description &options,
                             po::variables_map &vm) {
  std::string error = parseToolCommandLine(args, options, vm);
  if (!error.empty()) {
    reportError(error + "\n(see 'attnc " + command + " --help')");
    return false;
  }
  return true;
}

static void printUsage(llvm::raw_ostream &os) {
  os << "usage: attnc <command> [options]\n\n"
        "commands:\n"
        "  compile SPEC.attn --emit=STAGE   compile a spec to a pipeline "
        "stage\n"
        "  run SPEC.attn --q Q.npy --k K.npy --v V.npy -o OUT.npy\n"
        "                                   run the kernel on .npy files\n"
        "      [--dout DO.npy --dq DQ.npy --dk DK.npy --dv DV.npy]\n"
        "                                   ... and its backward pass\n"
        "  show SPEC.attn --lq N --lk N     print the mask's tile schedule\n"
        "  cache stats|clear                the kernel cache on disk\n\n"
        "'attnc <command> --help' lists the options of a command;\n"
        "'attnc --version' prints the version, the LLVM version and the "
        "code generator's hash.\n";
}

namespace {
struct CompileFlags {
  std::string spec, target, arch, emit, output, name, dtype, cpu, headDims, triple;
  std::vector<std::string> defines, importDirs;
  bool backward = false;
};
} // namespace

int attnc::runCompile(const std::vector<std::string> &args) {
  CompileFlags f;
  po::options_description options("attnc compile SPEC.attn [options]");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&f.spec), "the .attn spec file ('-' for stdin)")
      ("target", po::value(&f.target)->default_value("cpu"), "cpu|cuda")
      ("arch", po::value(&f.arch)->default_value("sm_80"),
       "CUDA architecture: sm_80|sm_90a")
      ("emit", po::value(&f.emit)->default_value("mlir"), emitStageNames())
      ("dtype", po::value(&f.dtype)->default_value("f32"),
       "storage type of q, k, v and out in the kernel: f32|f16|bf16 "
       "(--target=cuda: f16|bf16, with --head-dims, picks one entry)")
      ("head-dims", po::value(&f.headDims),
       "D[,DV]: --target=cuda --emit=ptx|cubin compiles only the entry for "
       "--dtype and these head dims (default: every entry of the .cu); "
       "--target=cpu picks the tile sizes tuned for D (the kernel still "
       "runs any D)")
      ("cpu", po::value(&f.cpu),
       "CPU to generate code for (an LLVM CPU name, e.g. haswell); "
       "default: the host (with --triple: that target's generic CPU)")
      ("triple", po::value(&f.triple),
       "--target=cpu --emit=llvm|obj: cross-compile for this LLVM target "
       "triple (e.g. aarch64-linux-gnu); link the object with the runtime "
       "built for that target. Default: the host")
      ("define,D", po::value(&f.defines)->composing(),
       "NAME=VALUE: override a param (repeatable)")
      ("import-dir,I", po::value(&f.importDirs)->composing(),
       "DIR: where import \"PATH\" looks after the importing file's "
       "directory (repeatable)")
      ("name", po::value(&f.name), "compile only the block NAME")
      ("backward", po::bool_switch(&f.backward),
       "--target=cpu: also differentiate the spec and build the backward "
       "pass's helpers (the header then wraps them in <name>_backward)")
      ("output,o", po::value(&f.output)->default_value("-"),
       "output file ('-' for stdout)");
  po::variables_map vm;
  if (!parseCommandLine("compile", args, options, vm))
    return 1;
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (f.spec.empty())
    return reportError("no spec file given");
  if (f.target != "cpu" && f.target != "cuda")
    return reportError(llvm::Twine("--target=") + f.target +
                       ": expected cpu or cuda");
  if (f.arch != "sm_80" && f.arch != "sm_90a")
    return reportError(llvm::Twine("--arch=") + f.arch +
                       ": expected sm_80 or sm_90a");
  std::optional<EmitStage> stage = parseEmitStage(f.emit);
  if (!stage)
    return reportError(llvm::Twine("--emit=") + f.emit + ": expected one of " +
                       emitStageNames());
  std::optional<runtime::DType> storage = runtime::parseDType(f.dtype);
  if (!storage ||
      (*storage != runtime::DType::F32 && *storage != runtime::DType::F16 &&
       *storage != runtime::DType::BF16))
    return reportError(llvm::Twine("--dtype=") + f.dtype +
                       ": expected f32, f16 or bf16");
  if (f.backward && (f.target != "cpu" || *stage == EmitStage::Mlir))
    return reportError("--backward is for --target=cpu --emit=analysed|tiled|"
                       "loops|llvm|obj|so|header (the backward pass runs on "
                       "the CPU only)");
  if (!f.triple.empty() &&
      (f.target != "cpu" || (*stage != EmitStage::Llvm && *stage != EmitStage::Obj)))
    return reportError("--triple is for --target=cpu --emit=llvm|obj (a shared "
                       "library or a JIT needs the host)");
  FrontendOptions fo;
  fo.onlyName = f.name;
  fo.importDirs = f.importDirs;
  if (!parseDefines(f.defines, fo))
    return 1;

  Driver driver(llvm::errs());
  mlir::OwningOpRef<mlir::ModuleOp> module = driver.loadFile(f.spec, fo);
  if (!module)
    return 1;
  // The spec stage; --backward adds attn-derive-backward to it.
  PipelineOptions specStage;
  specStage.backward = f.backward;
  if (*stage != EmitStage::Mlir &&
      failed(f.backward ? runPipeline(*module, specStage, PipelineStage::Parsed,
                                      PipelineStage::Analysed)
                        : driver.runSpecPipeline(*module)))
    return 1;
  if (*stage != EmitStage::Mlir)
    printMaskNotes(*module, llvm::errs());
  std::optional<std::pair<int64_t, int64_t>> dims;
  if (!f.headDims.empty()) {
    std::string error;
    dims = parseHeadDims(f.headDims, error);
    if (!dims)
      return reportError(error);
  }
  bool cuda = f.target == "cuda";
  if (cuda && *stage >= EmitStage::Cuda) {
    std::optional<runtime::DType> entryType;
    if (!vm["dtype"].defaulted())
      entryType = *storage;
    return emitCudaStage(*module, *stage, f.arch, entryType, dims, f.output);
  }
  if (dims && (cuda || *stage <= EmitStage::Analysed))
    return reportError("--head-dims is for --target=cuda "
                       "--emit=ptx|cubin and --target=cpu "
                       "--emit=tiled|loops|llvm|obj|so|header");
  if (*stage >= EmitStage::Cuda || (cuda && *stage > EmitStage::Tiled)) {
    return reportError(
        llvm::Twine("--emit=") + f.emit + " --target=" + f.target +
        " is not available (--target=cpu emits mlir|analysed|"
        "tiled|loops|llvm|obj|so|header; --target=cuda emits mlir|"
        "analysed|tiled|cuda|ptx|cubin)");
  }
  if (cuda && *stage == EmitStage::Tiled) {
    // The CUDA .cu serves f16 and bf16; without --dtype the form says bf16.
    PipelineOptions po;
    po.target = Target::CUDA;
    po.arch = f.arch;
    po.storage = vm["dtype"].defaulted() ? runtime::DType::BF16 : *storage;
    if (runtime::Status st = checkPipelineOptions(po); !st.ok())
      return reportError(st.message());
    if (failed(runPipeline(*module, po, PipelineStage::Analysed,
                           PipelineStage::Tiled)))
      return 1;
  } else if (*stage > EmitStage::Analysed) {
    return emitCpuStage(*module, *stage, *storage, {f.triple, f.cpu},
                        dims ? dims->first : 0, f.backward, f.output);
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  os << "\n";
  return writeOutputFile(f.output, text, llvm::errs()) ? 0 : 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // InitLLVM makes operator new abort ("LLVM ERROR: out of memory"); the
  // runtime reports a failed allocation as an error instead, so restore the
  // standard behaviour (std::bad_alloc).
  std::set_new_handler(nullptr);
  if (argc < 2) {
    printUsage(llvm::errs());
    return 1;
  }
  std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    printUsage(llvm::outs());
    return 0;
  }
  if (command == "--version") {
    llvm::outs() << "attnc " << attnc::version() << "\nLLVM "
                 << attnc::llvmVersion() << "\ncode generator "
                 << attnc::codegenHash() << "\n";
    return 0;
  }
  if (command == "compile")
    return runCompile(args);
  if (command == "run")
    return runRun(args);
  if (command == "show")
    return runShow(args);
  if (command == "cache")
    return runCache(args);
  reportError("unknown command '" + command + "'");
  printUsage(llvm::errs());
  return 1;
}
