//===- Driver.cpp - Spec file -> attn IR -> pipeline stages ---------------===//
#include "attnc/Driver.h"

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Frontend/MLIRGen.h"
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Runtime/Npy.h"
#include "common/ToolDiagnostics.h"
#include "mlir/Parser/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace attnc;

static const char *const kStageNames[] = {
    "mlir", "analysed", "tiled", "loops", "llvm", "obj", "so", "header",
    "cuda", "ptx",      "cubin"};

std::optional<EmitStage> attnc::parseEmitStage(llvm::StringRef name) {
  for (unsigned i = 0; i < std::size(kStageNames); ++i)
    if (name == kStageNames[i])
      return static_cast<EmitStage>(i);
  return std::nullopt;
}

const char *attnc::emitStageNames() {
  return "mlir|analysed|tiled|loops|llvm|obj|so|header|cuda|ptx|cubin";
}

Driver::Driver(llvm::raw_ostream &errs) : errs(errs) {
  // Every dialect of every level, so that a printed stage parses back.
  DialectRegistry registry;
  registerCpuCodegenDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  handler = std::make_unique<SourceMgrDiagnosticHandler>(sourceMgr, &ctx, errs);
}

Driver::~Driver() = default;

OwningOpRef<ModuleOp> Driver::loadSpecFile(llvm::StringRef path,
                                           const FrontendOptions &options) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer = readSpecFile(path, error);
  if (!buffer) {
    printToolError(errs, "attnc", error);
    return nullptr;
  }
  return loadSpecText(buffer->getBufferIdentifier(), buffer->getBuffer(),
                      options);
}

OwningOpRef<ModuleOp> Driver::loadSpecText(llvm::StringRef bufferName,
                                           llvm::StringRef text,
                                           const FrontendOptions &options) {
  unsigned id = addSpecBuffer(sourceMgr, text, bufferName);
  std::optional<ast::Module> module =
      parseSpec(sourceMgr, id, options, errs);
  if (!module)
    return nullptr;
  return mlirGen(ctx, *module);
}

OwningOpRef<ModuleOp> Driver::loadFile(llvm::StringRef path,
                                       const FrontendOptions &options) {
  if (!path.ends_with(".mlir"))
    return loadSpecFile(path, options);
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer =
      readSpecFile(path, error, kMaxMlirFileBytes, "MLIR file");
  if (!buffer) {
    printToolError(errs, "attnc", error);
    return nullptr;
  }
  // Line ends normalised as for a spec (a BOM dropped, CR and CRLF made
  // LF), so that a CR-only file's errors have their right line:col.
  addSpecBuffer(sourceMgr, buffer->getBuffer(), buffer->getBufferIdentifier());
  return parseSourceFile<ModuleOp>(sourceMgr, &ctx);
}

LogicalResult Driver::runSpecPipeline(ModuleOp module) {
  return runPipeline(module, PipelineOptions(), PipelineStage::Parsed,
                     PipelineStage::Analysed);
}

bool attnc::writeOutputFile(llvm::StringRef path, llvm::StringRef data,
                            llvm::raw_ostream &errs, unsigned mode) {
  if (path == "-") {
    llvm::outs() << data;
    llvm::outs().flush();
    if (llvm::outs().has_error()) {
      llvm::outs().clear_error();
      printToolError(errs, "attnc", "cannot write to standard output");
      return false;
    }
    return true;
  }
  runtime::Status st = runtime::writeFileAtomic(
      path.str(), std::string_view(data.data(), data.size()), mode);
  if (!st.ok()) {
    printToolError(errs, "attnc", st.message()); // it names the file
    return false;
  }
  return true;
}

void attnc::printMaskNotes(ModuleOp module, llvm::raw_ostream &os,
                           llvm::StringRef onlySpec) {
  for (mlir::attn::SpecOp spec : module.getOps<mlir::attn::SpecOp>()) {
    if (!spec.getMaskScheduleAttr() ||
        (!onlySpec.empty() && spec.getSymName() != onlySpec))
      continue;
    for (const mlir::attn::OpaqueNote &n : mlir::attn::explainOpaqueMask(spec)) {
      if (auto at = n.loc->findInstanceOf<FileLineColLoc>())
        os << at.getFilename().getValue() << ":" << at.getLine() << ":"
           << at.getColumn() << ": ";
      os << "note: '" << spec.getSymName() << "': " << n.reason << "\n";
    }
  }
}
