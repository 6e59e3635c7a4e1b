//===- CpuCodegen.cpp - Tiled form -> LLVM -> object code -----------------===//
//
// See CpuCodegen.h. The lowering is MLIR's standard one (scf -> cf, memref
// -> LLVM, arith/math -> LLVM, libm for what has no intrinsic such as
// tanhf); bf16 <-> f32 conversions are expanded to integer code so that no
// compiler-rt routine is needed in the JIT. The entry point wrapper turns
// the runtime's attnc_buffer array into the expanded memref arguments.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Passes/TileChoice.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/ScheduleEmitter.h"
#include "attnc/Runtime/CpuIsa.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Transforms/IPO/DeadArgumentElimination.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

using namespace mlir;
using namespace attnc;
using runtime::Expected;
using runtime::Status;

std::string attnc::kernelSymbol(const std::string &specName) {
  return "attnc_kernel_" + specName;
}

void attnc::registerCpuCodegenDialects(DialectRegistry &registry) {
  registry.insert<attn::AttnDialect, arith::ArithDialect, math::MathDialect,
                  func::FuncDialect, scf::SCFDialect, memref::MemRefDialect,
                  cf::ControlFlowDialect, LLVM::LLVMDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
}

Expected<runtime::KernelInfo>
attnc::describeKernel(attn::FlashOp flash) {
  attn::SpecOp spec = flash.getSpec();
  runtime::KernelInfo info;
  info.name = spec.getSymName().str();
  info.storage = *attn::dtypeOfStorage(flash.getStorage());
  info.tileQ = flash.getTileQ();
  info.tileK = flash.getTileK();
  info.sigmoid = spec.getNormalize() == attn::NormalizeKind::sigmoid;
  info.numIdsAtoms = flash.getPrepass();
  info.packsHeads = flash.packsQueryHeads();
  info.pagedKeys = flash.readsPagedKeys();
  info.dropout = spec.getDropout().has_value();
  if (ArrayAttr inputs = spec.getInputsAttr()) {
    for (Attribute a : inputs) {
      auto in = cast<attn::InputAttr>(a);
      runtime::InputDecl decl;
      decl.name = in.getName().getValue().str();
      Type t = in.getElementType();
      decl.dtype = t.isInteger(64)  ? runtime::DType::I64
                   : t.isInteger(1) ? runtime::DType::Bool
                                    : runtime::DType::F32;
      for (Attribute d : in.getShape()) {
        runtime::InputDim dim;
        if (auto i = dyn_cast<IntegerAttr>(d)) {
          dim.literal = i.getInt();
        } else {
          StringRef name = cast<StringAttr>(d).getValue();
          if (std::optional<attn::SizeVar> s = attn::symbolizeSizeVar(name)) {
            dim.isSize = true;
            dim.size = static_cast<runtime::SizeName>(static_cast<int>(*s));
          } else {
            attn::ParamAttr p = spec.lookupParam(name);
            auto v = p ? dyn_cast_or_null<IntegerAttr>(p.getValue()) : nullptr;
            if (!v)
              return Status::error("input '" + decl.name + "': dimension '" +
                                   name.str() + "' has no value");
            if (v.getInt() <= 0)
              return Status::error("input '" + decl.name + "': dimension '" +
                                   name.str() + "' = " +
                                   std::to_string(v.getInt()) +
                                   " is not positive");
            dim.literal = v.getInt();
          }
        }
        decl.dims.push_back(dim);
      }
      info.inputs.push_back(std::move(decl));
    }
  }
  return info;
}

/// Adds `attnc_kernel_<name>(buffers, meta, status, begin, end)` for every
/// lowered `attn_<name>`: loads each attnc_buffer's five fields and passes
/// them, expanded, as the lowered function expects.
static LogicalResult addEntryPoints(ModuleOp module) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  Type i64 = IntegerType::get(ctx, 64);
  auto bufferTy = LLVM::LLVMStructType::getLiteral(ctx, {ptr, ptr, i64, i64, i64});
  SmallVector<LLVM::LLVMFuncOp> kernels;
  for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
    // A kernel that has its entry point already (a module read back at this
    // level) keeps it: the pass is idempotent, as the pipeline's stages are.
    if (fn.getName().starts_with("attn_") && !fn.isExternal() &&
        !SymbolTable::lookupSymbolIn(module, kernelSymbol(fn.getName().drop_front(5).str())))
      kernels.push_back(fn);
  for (LLVM::LLVMFuncOp fn : kernels) {
    Location loc = fn.getLoc();
    auto params = fn.getFunctionType().getParams();
    // Buffers (5 values each), then meta and status (5 each), then 2 i64.
    // (A pre-pass, attn_<name>__prepass, becomes attnc_kernel_<name>__prepass.)
    if (params.size() < 12 || (params.size() - 2) % 5 != 0)
      return fn.emitError("unexpected signature of a lowered kernel");
    int64_t numBuffers = int64_t(params.size() - 2) / 5 - 2;
    b.setInsertionPointToEnd(module.getBody());
    auto entryTy = LLVM::LLVMFunctionType::get(
        LLVM::LLVMVoidType::get(ctx), {ptr, ptr, ptr, i64, i64});
    std::string name = kernelSymbol(fn.getName().drop_front(5).str());
    auto entry = LLVM::LLVMFuncOp::create(b, loc, name, entryTy);
    Block *block = entry.addEntryBlock(b);
    b.setInsertionPointToStart(block);
    Value buffers = block->getArgument(0);
    SmallVector<Value> args;
    for (int64_t i = 0; i < numBuffers; ++i) {
      for (int32_t field = 0; field < 5; ++field) {
        Value at = LLVM::GEPOp::create(
            b, loc, ptr, bufferTy, buffers,
            ArrayRef<LLVM::GEPArg>{LLVM::GEPArg(int32_t(i)), LLVM::GEPArg(field)});
        args.push_back(LLVM::LoadOp::create(b, loc, params[args.size()], at));
      }
    }
    // meta and status are plain int64 arrays: descriptors with offset 0.
    Value zero = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(0));
    Value one = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(1));
    Value huge = LLVM::ConstantOp::create(b, loc, i64,
                                          b.getI64IntegerAttr(int64_t(1) << 40));
    for (unsigned a : {1u, 2u})
      for (Value v : {Value(block->getArgument(a)), Value(block->getArgument(a)), zero, huge, one})
        args.push_back(v);
    args.push_back(block->getArgument(3));
    args.push_back(block->getArgument(4));
    LLVM::CallOp::create(b, loc, fn, args);
    // Only the entry point is exported; the body is inlined into it.
    fn.setLinkage(LLVM::Linkage::Internal);
    LLVM::ReturnOp::create(b, loc, ValueRange{});
  }
  return success();
}

namespace {
/// addEntryPoints as a pass, the last of the CPU pipeline.
struct CpuEntryPointsPass
    : public PassWrapper<CpuEntryPointsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuEntryPointsPass)
  StringRef getArgument() const override { return "attn-cpu-entry-points"; }
  StringRef getDescription() const override {
    return "Add the C entry point attnc_kernel_<name> of every lowered kernel";
  }
  void runOnOperation() override {
    if (failed(addEntryPoints(getOperation())))
      signalPassFailure();
  }
};
} // namespace

void attnc::registerCpuCodegenPasses() {
  static bool once = [] {
    PassRegistration<CpuEntryPointsPass>();
    return true;
  }();
  (void)once;
}

void attnc::addCpuToLLVMPasses(OpPassManager &pm) {
  pm.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(std::make_unique<CpuEntryPointsPass>());
}

void attnc::initializeNativeTarget() {
  static bool once = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    return true;
  }();
  (void)once;
}

/// The host's features, less AVX-512 (and the AMX and AVX10 extensions
/// built on it) while the avx2 path is forced: the generated code then uses
/// the instructions its microkernels use (CpuIsa.h).
static llvm::StringMap<bool> hostFeaturesOfActivePath() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (runtime::activeCpuIsa() == runtime::CpuIsa::Avx2)
    for (auto &f : features)
      if (f.first().starts_with("avx512") || f.first().starts_with("amx") ||
          f.first().starts_with("avx10") || f.first() == "evex512")
        f.second = false;
  return features;
}

std::string attnc::hostCpuDescription(const std::string &cpu) {
  if (!cpu.empty())
    return "cpu=" + cpu;
  std::string out = llvm::sys::getHostCPUName().str();
  for (auto &f : hostFeaturesOfActivePath())
    if (f.second)
      out += "+" + f.first().str();
  return out;
}

Expected<std::unique_ptr<llvm::TargetMachine>>
attnc::hostTargetMachine(const std::string &cpu) {
  if (Status s = runtime::checkCpuIsaEnvironment(); !s.ok())
    return s;
  initializeNativeTarget();
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return Status::error("cannot detect the host CPU: " +
                         llvm::toString(builder.takeError()));
  if (!cpu.empty()) {
    std::string error;
    const llvm::Target *target = llvm::TargetRegistry::lookupTarget(
        builder->getTargetTriple(), error);
    if (!target)
      return Status::error(error);
    std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(
        builder->getTargetTriple(), cpu, ""));
    if (!sti || !sti->isCPUStringValid(cpu))
      return Status::error("unknown CPU '" + cpu + "' for " +
                           builder->getTargetTriple().str());
    builder->setCPU(cpu);
    builder->setFeatures("");
  } else {
    llvm::SubtargetFeatures features;
    for (auto &f : hostFeaturesOfActivePath())
      features.AddFeature(f.first(), f.second);
    builder->setFeatures(features.getString());
  }
  builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  builder->setRelocationModel(llvm::Reloc::PIC_);
  auto tm = builder->createTargetMachine();
  if (!tm)
    return Status::error("cannot create a target machine: " +
                         llvm::toString(tm.takeError()));
  return std::move(*tm);
}

Expected<std::unique_ptr<llvm::TargetMachine>>
attnc::targetMachineFor(const std::string &triple, const std::string &cpu) {
  if (triple.empty())
    return hostTargetMachine(cpu);
  // Every target LLVM was built with, once (idempotent, thread-safe).
  static bool once = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    return true;
  }();
  (void)once;
  llvm::Triple t(llvm::Triple::normalize(triple));
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(t, error);
  if (!target)
    return Status::error("--triple=" + triple + ": " + error);
  std::string name = cpu.empty() ? "generic" : cpu;
  std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(t, name, ""));
  if (!sti || !sti->isCPUStringValid(name))
    return Status::error("unknown CPU '" + name + "' for " + t.str());
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      t, name, "", llvm::TargetOptions(), llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!tm)
    return Status::error("cannot create a target machine for " + t.str());
  return std::move(tm);
}

Expected<std::unique_ptr<llvm::Module>>
attnc::translateToLLVMIR(ModuleOp module, llvm::LLVMContext &ctx,
                         llvm::TargetMachine &tm) {
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, ctx, "attnc");
  if (!llvmModule)
    return Status::error("translation to LLVM IR failed");
  llvmModule->setDataLayout(tm.createDataLayout());
  llvmModule->setTargetTriple(tm.getTargetTriple());
  // -O3 as MLIR's makeOptimizingTransformer builds it, but without loop
  // interleaving: LLVM 22's interleaver (VPlanTransforms::unrollByUF)
  // walks a value's operands as a tree (vputils::isUniformAcrossVFsAndUFs),
  // exponential in the depth of a loop-invariant value it cannot hoist,
  // e.g. a sigmoid kernel whose score is exp(exp(t[h])): a compile that
  // never ended. The element loops are short and the microkernels are
  // built ahead of time, so interleaving bought little.
  llvm::PipelineTuningOptions tuning;
  tuning.LoopUnrolling = true;
  tuning.LoopInterleaving = false;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  // The kernel function takes one memref per declared input. -O3's
  // CalledValuePropagation is quadratic in the pointer arguments of an
  // internal function (2000 inputs took 9 s), so drop the unused ones first.
  mpm.addPass(llvm::DeadArgumentEliminationPass());
  mpm.addPass(pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3));
  mpm.run(*llvmModule, mam);
  return std::move(llvmModule);
}

Expected<std::string> attnc::emitObjectFile(llvm::Module &module,
                                            llvm::TargetMachine &tm) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
    return Status::error("the target cannot emit object files");
  pm.run(module);
  return std::string(buffer.begin(), buffer.end());
}
