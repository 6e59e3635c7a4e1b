//===- HostMicrokernels.cpp - The generic path's kernels, JIT-built for the host ===//
//
// See HostMicrokernels.h. The bitcode was emitted before any optimisation
// (api/CMakeLists.txt), so -O3 with the host's target machine does all of
// the work here, vectorisation included, for the host's vector width. Its
// functions are retargeted to the host first (clang wrote the build
// machine's baseline "target-cpu" and "target-features" into each).
//
//===----------------------------------------------------------------------===//
#include "HostMicrokernels.h"

#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Runtime/Microkernels.h"

#include "mlir/ExecutionEngine/OptUtils.h"

#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Target/TargetMachine.h"

#include <cstdlib>
#include <mutex>

using namespace attnc;
using runtime::Expected;
using runtime::KernelCache;
using runtime::Status;

namespace {

/// The bitcode (empty when the build had no clang++), then a 0 that keeps
/// the array non-empty.
const unsigned char kBitcode[] = {
#include "attnc/PortableMicrokernels.bc.inc"
    0};
llvm::StringRef bitcode() {
  return llvm::StringRef(reinterpret_cast<const char *>(kBitcode),
                         sizeof(kBitcode) - 1);
}

/// The six kernels, in attnc_uk_generic_kernels' order.
const char *const kSymbols[] = {
    "attnc_uk_qk_f32_generic_host",     "attnc_uk_qk_acc_f32_generic_host",
    "attnc_uk_softmax_t_f32_generic_host", "attnc_uk_pv_t_f32_generic_host",
    "attnc_uk_qk_bf16_generic_host",    "attnc_uk_pv_t_bf16_generic_host"};

/// The object code of the bitcode, optimised for `tm`.
Expected<std::string> compileForHost(llvm::TargetMachine &tm) {
  llvm::LLVMContext ctx;
  auto module = llvm::parseBitcodeFile(
      llvm::MemoryBufferRef(bitcode(), "PortableMicrokernels.bc"), ctx);
  if (!module)
    return Status::error("cannot read the portable microkernels' bitcode: " +
                         llvm::toString(module.takeError()));
  (*module)->setTargetTriple(tm.getTargetTriple());
  (*module)->setDataLayout(tm.createDataLayout());
  for (llvm::Function &f : **module) {
    if (f.isDeclaration())
      continue;
    f.removeFnAttr("tune-cpu");
    f.addFnAttr("target-cpu", tm.getTargetCPU());
    f.addFnAttr("target-features", tm.getTargetFeatureString());
  }
  auto optimize = mlir::makeOptimizingTransformer(3, 0, &tm);
  if (llvm::Error err = optimize(module->get()))
    return Status::error("cannot optimise the portable microkernels: " +
                         llvm::toString(std::move(err)));
  return emitObjectFile(**module, tm);
}

/// Loads `object` into a JIT that is never destroyed (the runtime keeps
/// calling its code) and registers its kernels.
Status loadAndRegister(const std::string &object, const std::string &cpu) {
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return Status::error("cannot create the JIT: " +
                         llvm::toString(jit.takeError()));
  // memset/memcpy, which LLVM may call for the local arrays.
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!gen)
    return Status::error(llvm::toString(gen.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*gen));
  if (llvm::Error err = (*jit)->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(
          object, "attnc-portable-microkernels.o")))
    return Status::error("cannot load the portable microkernels: " +
                         llvm::toString(std::move(err)));
  void *fns[6];
  for (int i = 0; i < 6; ++i) {
    auto sym = (*jit)->lookup(kSymbols[i]);
    if (!sym)
      return Status::error("cannot find " + std::string(kSymbols[i]) + ": " +
                           llvm::toString(sym.takeError()));
    fns[i] = sym->toPtr<void *>();
  }
  static attnc_uk_generic_kernels table;
  using Table = attnc_uk_generic_kernels;
  table.qk_f32 = reinterpret_cast<decltype(Table::qk_f32)>(fns[0]);
  table.qk_acc_f32 = reinterpret_cast<decltype(Table::qk_acc_f32)>(fns[1]);
  table.softmax_t_f32 = reinterpret_cast<decltype(Table::softmax_t_f32)>(fns[2]);
  table.pv_t_f32 = reinterpret_cast<decltype(Table::pv_t_f32)>(fns[3]);
  table.qk_bf16 = reinterpret_cast<decltype(Table::qk_bf16)>(fns[4]);
  table.pv_t_bf16 = reinterpret_cast<decltype(Table::pv_t_bf16)>(fns[5]);
  static std::string name;
  name = "JIT for the host (" + cpu + ")";
  // The JIT lives as long as the process: the runtime keeps calling its
  // code. Held by a static pointer, not dropped, so that LeakSanitizer sees
  // it as reachable rather than leaked (volatile: a store that nothing
  // reads would otherwise be optimised away).
  static llvm::orc::LLJIT *volatile hostJit = nullptr;
  hostJit = jit->release();
  attnc_uk_set_generic_kernels(&table, name.c_str());
  return Status::success();
}

Status buildAndRegister(KernelCache &cache) {
  if (bitcode().empty())
    return Status::error("this build of attnc has no bitcode of the portable "
                         "microkernels (no clang++ at configure time)");
  auto tm = hostTargetMachine();
  if (!tm.ok())
    return tm.status();
  std::string cpu = (*tm)->getTargetCPU().str();
  std::string key = KernelCache::makeKey(
      {"portable-microkernels", bitcode().str(), LLVM_VERSION_STRING, cpu,
       (*tm)->getTargetFeatureString().str()});
  std::optional<std::string> object;
  auto hit = cache.lookup(key);
  if (hit.ok() && hit->has_value())
    object = std::move(**hit);
  if (!object) {
    auto built = compileForHost(**tm);
    if (!built.ok())
      return built.status();
    object = std::move(*built);
    (void)cache.store(key, *object); // a cache that cannot store still works
  }
  return loadAndRegister(*object, cpu);
}

} // namespace

Status attnc::checkGenericMicrokernelsEnvironment(bool &jit) {
  const char *env = std::getenv("ATTNC_GENERIC_MICROKERNELS");
  std::string value = env ? env : "";
  jit = value.empty() || value == "jit";
  if (jit || value == "builtin")
    return Status::success();
  return Status::error("ATTNC_GENERIC_MICROKERNELS='" + value +
                       "' is not one of jit, builtin");
}

Status attnc::useHostMicrokernels(KernelCache &cache) {
  static std::mutex mutex;
  static std::optional<Status> result;
  std::lock_guard<std::mutex> lock(mutex);
  if (!result)
    result = buildAndRegister(cache);
  return *result;
}
