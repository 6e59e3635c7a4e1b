//===- CudaBench.cpp - attn-bench --target=cuda: time a kernel on the GPU -===//
#include "CudaBench.h"

#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/CudaBuild.h"
#include "attnc/Codegen/Pipeline.h"

#include <algorithm>
#include <chrono>

using namespace attnc;
using namespace attnc::bench;
using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

KernelInfo attnc::bench::cudaKernelInfo(mlir::attn::SpecOp spec, DType storage,
                                        std::string &error) {
  // The declaration (name, normalisation, inputs) is the same for both
  // arches' tiled forms; the tiles are the kernel's own (0 here).
  Expected<mlir::OwningOpRef<mlir::ModuleOp>> tiled = tileForCuda(spec, storage, "sm_90a");
  if (!tiled.ok()) {
    error = tiled.status().message();
    return KernelInfo();
  }
  Expected<KernelInfo> info = describeKernel(flashOps(**tiled).front());
  if (!info.ok()) {
    error = info.status().message();
    return KernelInfo();
  }
  info->tileQ = info->tileK = 0;
  return *info;
}

std::string attnc::bench::requireCudaDevice(std::string &deviceName) {
  Expected<DeviceInfo> d = currentDevice();
  if (!d.ok())
    return d.status().message();
  deviceName = d->name;
  return "";
}

std::string attnc::bench::benchCudaKernel(
    mlir::attn::SpecOp spec, const Shape &s, DType storage, const Tensor &q,
    const Tensor &k, const Tensor &v, const NamedTensors &inputs, int warmup,
    int runs, const std::string &cacheDir, BenchResult &r, Tensor &out,
    std::optional<runtime::DropoutSeed> dropout) {
  // Cold: an empty cache; cached: a second cache object on the same (now
  // filled) directory, i.e. what a second process sees.
  Expected<CudaBuild> build = Status::error("not built");
  for (int pass = 0; pass < 2; ++pass) {
    KernelCache cache(cacheDir);
    build = buildCudaKernel(spec, storage, s.D, s.DV, "", &cache);
    if (!build.ok())
      return build.status().message();
    (pass == 0 ? r.compileMs : r.cachedCompileMs) = build->compileMs;
  }
  Expected<DeviceTensor> dq = DeviceTensor::upload(q.view());
  Expected<DeviceTensor> dk = DeviceTensor::upload(k.view());
  Expected<DeviceTensor> dv = DeviceTensor::upload(v.view());
  Expected<DeviceTensor> dout =
      DeviceTensor::allocate(storage, {s.B, s.HQ, s.LQ, s.DV});
  for (const Status *st : {&dq.status(), &dk.status(), &dv.status(),
                           &dout.status()})
    if (!st->ok())
      return st->message();
  if (Status st = dout->fill(0xff); !st.ok())
    return st.message();
  CudaForwardArgs args;
  args.q = dq->view();
  args.k = dk->view();
  args.v = dv->view();
  args.out = dout->view();
  args.dropout = dropout;
  for (const auto &[name, t] : inputs)
    args.inputs.emplace_back(name, t.view());
  Expected<std::unique_ptr<PreparedForward>> p =
      prepareForward(build->module, build->decl, args);
  if (!p.ok())
    return p.status().message();
  Expected<std::vector<double>> ms = (*p)->time(warmup, runs);
  if (!ms.ok())
    return ms.status().message();
  r.msMin = *std::min_element(ms->begin(), ms->end());
  r.ms = median(*ms);
  Expected<Tensor> host = dout->download();
  if (!host.ok())
    return host.status().message();
  out = std::move(*host);
  return "";
}
