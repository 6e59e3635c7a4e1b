//===- RunCuda.cpp - attnc run --target=cuda: the kernel on the GPU -------===//
//
// The CUDA half of `attnc run`: parse the spec (its errors come back with
// their location, as the C++ API returns them), build the entry for the
// call's dtype and head dims (CudaBuild.h: emitCuda, NVRTC, cached, loaded
// for the device's arch or --arch), copy q, k, v to the device, run
// forwardCuda (the same checks and error messages as the CPU path), and
// copy out and lse back. The output is poisoned with NaN first, so an
// element the kernel never writes cannot pass for a result.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"

#include "attnc/Codegen/CudaBuild.h"

#include "llvm/Support/raw_ostream.h"

using namespace attnc;
using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

Status attnc::runOnCuda(const CudaRunRequest &r, Tensor &out,
                        std::optional<Tensor> &lse) {
  std::string diagnostics;
  llvm::raw_string_ostream diag(diagnostics);
  Driver driver(diag);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecText(r.specName, r.specText, r.frontend);
  if (!module || failed(driver.runSpecPipeline(*module)))
    return Status::error(diag.str().empty() ? "cannot compile the spec"
                                            : diag.str());
  std::vector<mlir::attn::SpecOp> specs;
  for (auto spec : module->getOps<mlir::attn::SpecOp>())
    specs.push_back(spec);
  if (specs.size() != 1)
    return Status::error(r.specName + " has " + std::to_string(specs.size()) +
                         " attention blocks; pick one with --name");

  const std::vector<int64_t> &qs = r.q->shape(), &vs = r.v->shape();
  std::optional<KernelCache> cache;
  if (KernelCache::defaultDirectory().ok())
    cache.emplace();
  Expected<CudaBuild> build = buildCudaKernel(
      specs.front(), r.storage, qs[3], vs[3], r.arch, cache ? &*cache : nullptr);
  if (!build.ok())
    return build.status();

  Expected<DeviceTensor> dq = DeviceTensor::upload(r.q->view());
  if (!dq.ok())
    return dq.status().withContext("q");
  Expected<DeviceTensor> dk = DeviceTensor::upload(r.k->view());
  if (!dk.ok())
    return dk.status().withContext("k");
  Expected<DeviceTensor> dv = DeviceTensor::upload(r.v->view());
  if (!dv.ok())
    return dv.status().withContext("v");
  Expected<DeviceTensor> dout =
      DeviceTensor::allocate(r.storage, {qs[0], qs[1], qs[2], vs[3]});
  if (!dout.ok())
    return dout.status().withContext("out");
  Status s = dout->fill(0xff);
  if (!s.ok())
    return s;
  std::optional<DeviceTensor> dlse;
  DeviceView lseView;
  if (r.wantLse) {
    Expected<DeviceTensor> l =
        DeviceTensor::allocate(DType::F32, {qs[0], qs[1], qs[2]});
    if (!l.ok())
      return l.status().withContext("lse");
    dlse.emplace(std::move(*l));
    if (!(s = dlse->fill(0xff)).ok())
      return s;
    lseView = dlse->view();
  }
  CudaForwardArgs args;
  args.q = dq->view();
  args.k = dk->view();
  args.v = dv->view();
  args.out = dout->view();
  args.lse = r.wantLse ? &lseView : nullptr;
  args.dropout = r.dropout;
  for (const auto &[name, t] : *r.inputs)
    args.inputs.emplace_back(name, t.view());
  if (!(s = forwardCuda(build->module, build->decl, args)).ok())
    return s;
  Expected<Tensor> hostOut = dout->download();
  if (!hostOut.ok())
    return hostOut.status();
  out = std::move(*hostOut);
  if (dlse) {
    Expected<Tensor> hostLse = dlse->download();
    if (!hostLse.ok())
      return hostLse.status();
    lse.emplace(std::move(*hostLse));
  }
  return Status::success();
}
