//===- CudaCommon.cpp - The CUDA runtime's parts that need no CUDA --------===//
//
// Entry names, the arch choice and the argument checks of forwardCuda:
// plain C++, built whether or not the runtime's CUDA half is
// (ATTNC_ENABLE_CUDA), so that the checks are tested on any machine and
// the CLI can name entries without a toolkit.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Cuda.h"

#include <cctype>
#include <cstdint>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

int attnc::runtime::cuda::dtypeCode(DType storage) {
  return storage == DType::BF16 ? 1 : 0;
}

const char *attnc::runtime::cuda::dtypeTag(DType storage) {
  return storage == DType::BF16 ? "bf16" : "f16";
}

namespace {

/// The layout rules of the CUDA kernels for q, k, v or out.
Status checkLayout(const DeviceView &t, const char *name) {
  const TensorView &v = t.view;
  const int64_t elem = int64_t(dtypeSize(v.dtype));
  if (v.shape[3] > 1 && v.strides[3] != 1)
    return Status::error(std::string(name) +
                         ": the CUDA kernels need unit stride along d "
                         "(dimension 3), got stride " +
                         std::to_string(v.strides[3]));
  if (reinterpret_cast<uintptr_t>(v.data) % 16 != 0)
    return Status::error(std::string(name) +
                         ": the CUDA kernels need a 16-byte aligned base "
                         "address");
  static const char *const dimNames[] = {"b", "h", "l"};
  for (int d = 2; d >= 0; --d) { // rows first: the likeliest culprit
    if (v.shape[size_t(d)] <= 1)
      continue; // the stride of a dimension of extent 1 is never used
    const int64_t s = v.strides[size_t(d)];
    if (s < 0 || (s * elem) % 16 != 0)
      return Status::error(
          std::string(name) +
          ": the CUDA kernels need non-negative strides that are multiples "
          "of 16 bytes along b, h and l (16-byte aligned rows); dimension " +
          std::to_string(d) + " (" + dimNames[d] + ") has stride " +
          std::to_string(s) + " (" + std::to_string(s * elem) + " bytes)");
  }
  return Status::success();
}

Status checkAllocation(const DeviceView &t, const char *name) {
  if (!t.buffer)
    return Status::error(std::string(name) +
                         ": no device allocation given (DeviceView::buffer "
                         "is 0)");
  Status s = checkBounds(t.view, reinterpret_cast<const void *>(t.buffer),
                         t.bufferBytes);
  return s.ok() ? s : s.withContext(name);
}

} // namespace

bool attnc::runtime::cuda::isValidArch(std::string_view arch) {
  if (arch.size() < 4 || arch.substr(0, 3) != "sm_")
    return false;
  std::string_view rest = arch.substr(3);
  if (!rest.empty() && rest.back() == 'a')
    rest.remove_suffix(1);
  if (rest.empty() || rest.size() > 3)
    return false;
  for (char c : rest)
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return false;
  return true;
}

Expected<std::string> attnc::runtime::cuda::archForDevice(const DeviceInfo &d) {
  if (d.major == 9 && d.minor == 0)
    return std::string("sm_90a");
  if (d.major >= 8)
    return std::string("sm_80");
  return Status::error("CUDA device " + std::to_string(d.ordinal) + " (" +
                       d.name + ") has compute capability " +
                       std::to_string(d.major) + "." + std::to_string(d.minor) +
                       "; attnc's kernels need 8.0 or later");
}

Expected<BinaryKind> attnc::runtime::cuda::binaryKindFor(const DeviceInfo &d,
                                                         std::string_view arch) {
  const std::string cc = std::to_string(d.major) + "." + std::to_string(d.minor);
  if (arch == "sm_90a") {
    if (d.major == 9 && d.minor == 0)
      return BinaryKind::Cubin;
    return Status::error("sm_90a code runs only on compute capability 9.0 "
                         "(H100/H200); this device (" + d.name + ") is " + cc +
                         ": use --arch=sm_80");
  }
  if (arch == "sm_80") {
    if (d.major == 8)
      return BinaryKind::Cubin; // sm_8x runs sm_80 cubins
    if (d.major > 8)
      return BinaryKind::Ptx; // the driver JITs sm_80 PTX for newer GPUs
  }
  if (!isValidArch(arch))
    return Status::error("invalid CUDA architecture '" + std::string(arch) + "'");
  return Status::error("code for " + std::string(arch) +
                       " cannot run on this device (" + d.name +
                       ", compute capability " + cc + ")");
}

// --- Names -------------------------------------------------------------------

std::string attnc::runtime::cuda::entryName(const std::string &spec,
                                            DType storage, int64_t d,
                                            int64_t dv) {
  return "attnc_fwd_" + spec + "__" + dtypeTag(storage) + "_" +
         std::to_string(d) + "_" + std::to_string(dv);
}

std::string attnc::runtime::cuda::prepassName(const std::string &spec) {
  return "attnc_prepass_" + spec;
}

std::vector<std::string> attnc::runtime::cuda::entryDefines(DType storage,
                                                            int64_t d,
                                                            int64_t dv) {
  return {"ATTNC_ONLY_DT=" + std::to_string(dtypeCode(storage)),
          "ATTNC_ONLY_HD=" + std::to_string(d),
          "ATTNC_ONLY_HDV=" + std::to_string(dv)};
}

// --- Checks ------------------------------------------------------------------

Status attnc::runtime::cuda::checkCudaForward(const CudaKernelDecl &decl,
                                              const CudaForwardArgs &args,
                                              CheckedCall &checked) {
  if (decl.storage != DType::F16 && decl.storage != DType::BF16)
    return Status::error(kernelLabel(decl.name) +
                         ": the CUDA kernels store q, k, v and out as "
                         "float16 or bfloat16, not " +
                         dtypeName(decl.storage));
  const Signature sig = decl.signature();
  Status s = checkForwardCall(sig,
                              {args.q.view, args.k.view, args.v.view,
                               args.out.view,
                               args.lse ? &args.lse->view : nullptr,
                               args.inputs},
                              checked);
  if (!s.ok())
    return s;
  if (!(s = checkDropoutSeed(decl.name, decl.dropout, args.dropout)).ok())
    return s;
  const std::pair<const DeviceView *, const char *> tensors[] = {
      {&args.q, "q"}, {&args.k, "k"}, {&args.v, "v"}, {&args.out, "out"},
      {args.lse, "lse"}};
  for (auto [t, name] : tensors)
    if (t && !(s = checkAllocation(*t, name)).ok())
      return s;
  for (auto [t, name] : tensors)
    if (t && t != args.lse && !(s = checkLayout(*t, name)).ok())
      return s;
  for (size_t i = 0; i < checked.inputs.size(); ++i)
    if (checked.inputs[i].view.rank() > 4)
      return Status::error("input '" + decl.inputs[i].name +
                           "': the CUDA kernels take inputs of rank 4 or "
                           "less, got shape " +
                           shapeToString(checked.inputs[i].view.shape));
  using S = SizeName;
  if (checked.size(S::HQ) > 65535 || checked.size(S::B) > 65535)
    return Status::error("the CUDA grid is (query tiles, HQ, B); HQ = " +
                         std::to_string(checked.size(S::HQ)) + " and B = " +
                         std::to_string(checked.size(S::B)) +
                         " must be at most 65535");
  // The kernels hold positions and TMA coordinates in 32 bits.
  if (checked.size(S::LQ) > INT32_MAX || checked.size(S::LK) > INT32_MAX)
    return Status::error("the CUDA kernels index positions in 32 bits; LQ = " +
                         std::to_string(checked.size(S::LQ)) + " and LK = " +
                         std::to_string(checked.size(S::LK)) +
                         " must be at most 2147483647");
  return Status::success();
}

