//===- CudaForward.cpp - Launch an attnc_fwd_* entry (CudaABI.h) ----------===//
//
// forwardCuda in three phases, as forwardCpu:
//   1. check, before any driver call: forwardCpu's checks (ForwardChecks.h),
//      each device view inside its allocation, and the layout the CUDA
//      kernels need (unit stride along d, 16-byte aligned base addresses
//      and row strides, which TMA and 16-byte vector loads assume);
//   2. prepare: find the entry for (dtype, D, DV), read its launch record
//      and the pre-pass's, copy the inputs (converted as forwardCpu does)
//      and the attnc_input table to the device, allocate scratch and the
//      error word, encode the tensor maps of a TMA entry;
//   3. run: clear the error word, pre-pass, kernel (cuLaunchKernelEx when
//      the record asks for clusters), synchronise, read the error word.
//
//===----------------------------------------------------------------------===//
#include "CudaApi.h"

#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/CudaABI.h"
#include "attnc/Runtime/KernelABI.h"

#include <algorithm>
#include <cstring>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;
using namespace attnc::runtime::cuda::detail;

static_assert(sizeof(attnc_tensor_map) == sizeof(CUtensorMap),
              "CudaABI.h's attnc_tensor_map must be a CUtensorMap");
static_assert(alignof(attnc_tensor_map) == 64, "CUtensorMap is 64-byte aligned");

namespace {
int64_t ceilDiv(int64_t n, int64_t d) { return n <= 0 ? 0 : (n + d - 1) / d; }

/// Reads the launch record `<fn>__launch` of \p module.
Status readRecord(const Driver &dr, CUmodule module, const std::string &fn,
                  std::vector<int> &record) {
  const std::string sym = fn + "__launch";
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  CUresult r = dr.cuModuleGetGlobal(&ptr, &bytes, module, sym.c_str());
  if (r == CUDA_ERROR_NOT_FOUND)
    return Status::error("the module has " + fn + " but no launch record " +
                         sym + " (CudaABI.h)");
  Status s = check(dr, r, "cuModuleGetGlobal");
  if (!s.ok())
    return s.withContext(sym);
  if (bytes < sizeof(int) * ATTNC_LAUNCH_WORDS)
    return Status::error(sym + " has " + std::to_string(bytes) +
                         " bytes; a launch record has " +
                         std::to_string(sizeof(int) * ATTNC_LAUNCH_WORDS));
  record.assign(ATTNC_LAUNCH_WORDS, 0);
  ATTNC_CU(dr, cuMemcpyDtoH, record.data(), ptr,
           sizeof(int) * ATTNC_LAUNCH_WORDS);
  const int rows = record[ATTNC_LAUNCH_ROWS],
            threads = record[ATTNC_LAUNCH_THREADS],
            smem = record[ATTNC_LAUNCH_SMEM],
            cluster = record[ATTNC_LAUNCH_CLUSTER],
            scratch = record[ATTNC_LAUNCH_SCRATCH],
            tma = record[ATTNC_LAUNCH_TMA], keys = record[ATTNC_LAUNCH_KEYS];
  if (rows <= 0 || threads <= 0 || threads > 1024 || smem < 0 ||
      cluster < 0 || cluster > 16 || scratch < 0 || (tma != 0 && tma != 1) ||
      (tma == 1 && (keys <= 0 || keys > 256 || rows > 256)))
    return Status::error(
        sym + " is not a valid launch record: rows " + std::to_string(rows) +
        ", threads " + std::to_string(threads) + ", smem " +
        std::to_string(smem) + ", cluster " + std::to_string(cluster) +
        ", scratch " + std::to_string(scratch) + ", tma " +
        std::to_string(tma) + ", keys " + std::to_string(keys));
  return Status::success();
}

/// The tensor map of q, k or v (CudaABI.h: rank 4, dims (D, L, H, B)
/// innermost first, box (64, rows, 1, 1), 128-byte swizzle).
Status encodeMap(const Driver &dr, const TensorView &t, int boxRows,
                 attnc_tensor_map &out, const char *name) {
  const uint64_t elem = dtypeSize(t.dtype);
  // A map needs positive extents; an empty dimension (LK = 0) is never
  // read, as there are no key tiles.
  auto extent = [&](int d) { return cuuint64_t(std::max<int64_t>(t.shape[size_t(d)], 1)); };
  cuuint64_t dims[4] = {extent(3), extent(2), extent(1), extent(0)};
  // Byte strides of l, h, b. A dimension of extent 1 has no meaningful
  // stride; TMA still wants a multiple of 16, so it gets the extent of the
  // dimensions inside it.
  cuuint64_t strides[3];
  uint64_t inner = uint64_t(t.shape[3]) * elem;
  inner = (inner + 15) / 16 * 16;
  for (int i = 0; i < 3; ++i) {
    const int dim = 2 - i; // l, h, b
    strides[i] = t.shape[size_t(dim)] > 1
                     ? cuuint64_t(t.strides[size_t(dim)]) * elem
                     : inner;
    inner = strides[i] * cuuint64_t(std::max<int64_t>(t.shape[size_t(dim)], 1));
  }
  cuuint32_t box[4] = {64, cuuint32_t(boxRows), 1, 1};
  cuuint32_t elementStrides[4] = {1, 1, 1, 1};
  CUtensorMap map;
  Status s = check(
      dr,
      dr.cuTensorMapEncodeTiled(
          &map,
          t.dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
          4, t.data, dims, strides, box, elementStrides,
          CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
          CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
      "cuTensorMapEncodeTiled");
  if (!s.ok())
    return s.withContext(std::string("the tensor map of ") + name);
  std::memcpy(&out, &map, sizeof map);
  return Status::success();
}
} // namespace

// --- PreparedForward -----------------------------------------------------------

struct PreparedForward::Impl {
  Module module; // keeps the image loaded
  CudaKernelDecl decl;
  CheckedCall checked;
  std::string entry;
  std::vector<int> record, prepassRecord;
  CUfunction fn = nullptr, prepass = nullptr;
  unsigned grid[3] = {0, 1, 1}, prepassGrid[3] = {0, 1, 1};
  std::vector<DeviceTensor> inputData;
  DeviceBuffer inputTable, error, scratch;
  attnc_cuda_args args{};
  attnc_tma_maps maps{};
  bool nothingToDo = false;
};

PreparedForward::PreparedForward(std::unique_ptr<Impl> impl)
    : p(std::move(impl)) {}
PreparedForward::~PreparedForward() = default;
const std::string &PreparedForward::entry() const { return p->entry; }
const std::vector<int> &PreparedForward::launchRecord() const {
  return p->record;
}

// --- Preparing ---------------------------------------------------------------

/// Finds the entry of \p impl in \p mod and reads its launch record.
static Status loadEntryFunction(const Driver &dr, CUmodule mod,
                                PreparedForward::Impl &impl) {
  const CudaKernelDecl &decl = impl.decl;
  const int64_t D = impl.checked.size(SizeName::D),
                DV = impl.checked.size(SizeName::DV);
  CUresult r = dr.cuModuleGetFunction(&impl.fn, mod, impl.entry.c_str());
  if (r == CUDA_ERROR_NOT_FOUND)
    return Status::error(
        "the CUDA module has no entry " + impl.entry + ": it was not built "
        "for " + dtypeName(decl.storage) + " with D = " + std::to_string(D) +
        ", DV = " + std::to_string(DV) + " (the kernels take D and DV that "
        "are multiples of 8 from 8 to 128, or the .cu was compiled with other "
        "-DATTNC_ONLY_* values)");
  Status s = check(dr, r, "cuModuleGetFunction");
  if (!s.ok())
    return s.withContext(impl.entry);
  return readRecord(dr, mod, impl.entry, impl.record);
}

/// Finds the pre-pass of \p impl's kernel in \p mod, if the module has
/// one, and reads its launch record.
static Status loadPrepassFunction(const Driver &dr, CUmodule mod,
                                  PreparedForward::Impl &impl) {
  const std::string pre = prepassName(impl.decl.name);
  CUresult r = dr.cuModuleGetFunction(&impl.prepass, mod, pre.c_str());
  if (r == CUDA_ERROR_NOT_FOUND) {
    impl.prepass = nullptr;
    return Status::success();
  }
  Status s = check(dr, r, "cuModuleGetFunction");
  if (!s.ok())
    return s.withContext(pre);
  return readRecord(dr, mod, pre, impl.prepassRecord);
}

/// Copies the inputs of \p impl's call to the device and the attnc_input
/// table that describes them after them.
static Status uploadInputs(PreparedForward::Impl &impl) {
  // Inputs, converted as forwardCpu converts them, then on the device with
  // C-order strides; the attnc_input table after them.
  std::vector<attnc_input> table;
  for (size_t j = 0; j < impl.checked.inputs.size(); ++j) {
    CheckedInput &in = impl.checked.inputs[j];
    TensorView host = in.view;
    if (in.target) {
      Expected<Tensor> conv = convert(in.view, *in.target);
      if (!conv.ok())
        return conv.status().withContext("input '" + impl.decl.inputs[j].name + "'");
      in.owned.emplace(std::move(*conv));
      host = in.owned->view();
    }
    Expected<DeviceTensor> dev = DeviceTensor::upload(host);
    if (!dev.ok())
      return dev.status().withContext("input '" + impl.decl.inputs[j].name + "'");
    attnc_input e{};
    DeviceView v = dev->view();
    e.data = v.view.data;
    for (size_t k = 0; k < 4; ++k) {
      e.dims[k] = k < v.view.shape.size() ? v.view.shape[k] : 1;
      e.strides[k] = k < v.view.strides.size() ? v.view.strides[k] : 0;
    }
    table.push_back(e);
    impl.inputData.push_back(std::move(*dev));
  }
  if (!table.empty()) {
    Expected<DeviceBuffer> t =
        DeviceBuffer::allocate(table.size() * sizeof(attnc_input));
    if (!t.ok())
      return t.status();
    impl.inputTable = std::move(*t);
    Status s = impl.inputTable.upload(table.data(), impl.inputTable.size());
    if (!s.ok())
      return s;
  }
  return Status::success();
}

/// Allocates the pre-pass's scratch (zeroed) and sets its grid, one block
/// per key tile, head and batch, and its dynamic shared memory.
static Status preparePrepass(const Driver &dr, PreparedForward::Impl &impl) {
  const CheckedCall &c = impl.checked;
  const int64_t B = c.size(SizeName::B), HQ = c.size(SizeName::HQ),
                LK = c.size(SizeName::LK);
  const std::vector<int> &pr = impl.prepassRecord;
  const int64_t tiles = ceilDiv(LK, pr[ATTNC_LAUNCH_ROWS]);
  int64_t words = 0;
  if (__builtin_mul_overflow(B * HQ, std::max<int64_t>(tiles, 1), &words) ||
      __builtin_mul_overflow(words, int64_t(pr[ATTNC_LAUNCH_SCRATCH]), &words))
    return Status::error("the pre-pass scratch size overflows int64");
  Expected<DeviceBuffer> sc =
      DeviceBuffer::allocate(size_t(words) * sizeof(int64_t));
  if (!sc.ok())
    return sc.status().withContext("the pre-pass scratch");
  impl.scratch = std::move(*sc);
  // The pre-pass fills it; zeros make a word it skips deterministic.
  Status s = impl.scratch.fill(0);
  if (!s.ok())
    return s;
  impl.prepassGrid[0] = unsigned(std::max<int64_t>(tiles, 1));
  impl.prepassGrid[1] = unsigned(HQ);
  impl.prepassGrid[2] = unsigned(B);
  if (pr[ATTNC_LAUNCH_SMEM] > 0)
    ATTNC_CU(dr, cuFuncSetAttribute, impl.prepass,
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
             pr[ATTNC_LAUNCH_SMEM]);
  return Status::success();
}

/// Fills the kernel's attnc_cuda_args: the tensors with their strides, the
/// sizes, the dtype and the device buffers of \p impl.
static void fillKernelArgs(PreparedForward::Impl &impl,
                           const CudaForwardArgs &args) {
  using S = SizeName;
  const CheckedCall &c = impl.checked;
  attnc_cuda_args &a = impl.args;
  auto copyStrides = [](int64_t *dst, const TensorView &t) {
    std::copy(t.strides.begin(), t.strides.end(), dst);
  };
  a.q = args.q.view.data;
  a.k = args.k.view.data;
  a.v = args.v.view.data;
  a.out = args.out.view.data;
  a.lse = args.lse ? static_cast<float *>(args.lse->view.data) : nullptr;
  copyStrides(a.qs, args.q.view);
  copyStrides(a.ks, args.k.view);
  copyStrides(a.vs, args.v.view);
  copyStrides(a.os, args.out.view);
  if (args.lse)
    copyStrides(a.ls, args.lse->view);
  a.B = c.size(S::B);
  a.HQ = c.size(S::HQ);
  a.HKV = c.size(S::HKV);
  a.LQ = c.size(S::LQ);
  a.LK = c.size(S::LK);
  a.D = c.size(S::D);
  a.DV = c.size(S::DV);
  a.dtype = dtypeCode(impl.decl.storage);
  a.inputs = impl.inputData.empty() ? nullptr
                                    : reinterpret_cast<const attnc_input *>(
                                          impl.inputTable.address());
  a.error = reinterpret_cast<int64_t *>(impl.error.address());
  a.scratch = impl.prepass
                  ? reinterpret_cast<int64_t *>(impl.scratch.address())
                  : nullptr;
  // Checked by checkDropoutSeed: the offset fits 32 bits. The call is one
  // whole batch, so its first sequence is sequence 0 of the counter.
  a.dropout = args.dropout ? 1 : 0;
  a.dropout_seed = args.dropout ? args.dropout->seed : 0;
  a.dropout_offset = args.dropout ? unsigned(args.dropout->offset) : 0u;
  a.dropout_batch = 0;
}

/// Sets the kernel's dynamic shared memory and its grid: query tiles (in
/// whole clusters), heads, batches.
static Status setKernelGrid(const Driver &dr, PreparedForward::Impl &impl) {
  const CheckedCall &c = impl.checked;
  const int64_t B = c.size(SizeName::B), HQ = c.size(SizeName::HQ),
                LQ = c.size(SizeName::LQ);
  const std::vector<int> &rec = impl.record;
  if (rec[ATTNC_LAUNCH_SMEM] > 0)
    ATTNC_CU(dr, cuFuncSetAttribute, impl.fn,
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
             rec[ATTNC_LAUNCH_SMEM]);
  int64_t tiles = ceilDiv(LQ, rec[ATTNC_LAUNCH_ROWS]);
  const int cluster = rec[ATTNC_LAUNCH_CLUSTER];
  if (cluster > 1) // a grid is whole clusters; the extra CTAs see no rows
    tiles = ceilDiv(tiles, cluster) * cluster;
  if (tiles > 0x7fffffff)
    return Status::error("LQ = " + std::to_string(LQ) +
                         " needs more query tiles than a CUDA grid holds");
  impl.grid[0] = unsigned(tiles);
  impl.grid[1] = unsigned(HQ);
  impl.grid[2] = unsigned(B);
  return Status::success();
}

Expected<std::unique_ptr<PreparedForward>>
attnc::runtime::cuda::prepareForward(const Module &module,
                                     const CudaKernelDecl &decl,
                                     const CudaForwardArgs &args) {
  // --- 1. Check. -------------------------------------------------------------
  auto impl = std::make_unique<PreparedForward::Impl>();
  impl->module = module;
  impl->decl = decl;
  Status s = checkCudaForward(decl, args, impl->checked);
  if (!s.ok())
    return s;
  using S = SizeName;
  const CheckedCall &c = impl->checked;
  const int64_t LQ = c.size(S::LQ), D = c.size(S::D), DV = c.size(S::DV);
  impl->entry = entryName(decl.name, decl.storage, D, DV);
  // An empty problem (ForwardChecks.h): nothing to compute or write.
  if (LQ == 0 || c.size(S::B) == 0 || c.size(S::HQ) == 0) {
    impl->nothingToDo = true;
    return std::unique_ptr<PreparedForward>(new PreparedForward(std::move(impl)));
  }

  // --- 2. Prepare. -----------------------------------------------------------
  if (!module.loaded())
    return Status::error("no CUDA module loaded (Module::load)");
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  const Driver &dr = **d;
  CUmodule mod = module.impl().module;
  if (!(s = loadEntryFunction(dr, mod, *impl)).ok())
    return s;
  const std::vector<int> &rec = impl->record;
  if (!(s = loadPrepassFunction(dr, mod, *impl)).ok())
    return s;

  if (!(s = uploadInputs(*impl)).ok())
    return s;
  Expected<DeviceBuffer> err =
      DeviceBuffer::allocate(ATTNC_STATUS_WORDS * sizeof(int64_t));
  if (!err.ok())
    return err.status();
  impl->error = std::move(*err);

  if (impl->prepass)
    if (!(s = preparePrepass(dr, *impl)).ok())
      return s;

  fillKernelArgs(*impl, args);

  if (rec[ATTNC_LAUNCH_TMA] == 1) {
    if (!(s = encodeMap(dr, args.q.view, rec[ATTNC_LAUNCH_ROWS],
                        impl->maps.q, "q"))
             .ok() ||
        !(s = encodeMap(dr, args.k.view, rec[ATTNC_LAUNCH_KEYS],
                        impl->maps.k, "k"))
             .ok() ||
        !(s = encodeMap(dr, args.v.view, rec[ATTNC_LAUNCH_KEYS],
                        impl->maps.v, "v"))
             .ok())
      return s;
  }
  if (!(s = setKernelGrid(dr, *impl)).ok())
    return s;
  return std::unique_ptr<PreparedForward>(new PreparedForward(std::move(impl)));
}

// --- Running -----------------------------------------------------------------

static Status launchOnce(PreparedForward::Impl &p, const Driver &dr) {
  if (p.prepass) {
    const std::vector<int> &pr = p.prepassRecord;
    void *params[] = {&p.args};
    ATTNC_CU(dr, cuLaunchKernel, p.prepass, p.prepassGrid[0], p.prepassGrid[1],
             p.prepassGrid[2], unsigned(pr[ATTNC_LAUNCH_THREADS]), 1, 1,
             unsigned(pr[ATTNC_LAUNCH_SMEM]), nullptr, params, nullptr);
  }
  const std::vector<int> &rec = p.record;
  void *params[] = {&p.args, &p.maps};
  if (rec[ATTNC_LAUNCH_CLUSTER] > 1) {
    CUlaunchAttribute attr{};
    attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim.x = unsigned(rec[ATTNC_LAUNCH_CLUSTER]);
    attr.value.clusterDim.y = 1;
    attr.value.clusterDim.z = 1;
    CUlaunchConfig cfg{};
    cfg.gridDimX = p.grid[0];
    cfg.gridDimY = p.grid[1];
    cfg.gridDimZ = p.grid[2];
    cfg.blockDimX = unsigned(rec[ATTNC_LAUNCH_THREADS]);
    cfg.blockDimY = cfg.blockDimZ = 1;
    cfg.sharedMemBytes = unsigned(rec[ATTNC_LAUNCH_SMEM]);
    cfg.hStream = nullptr;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    ATTNC_CU(dr, cuLaunchKernelEx, &cfg, p.fn, params, nullptr);
  } else {
    ATTNC_CU(dr, cuLaunchKernel, p.fn, p.grid[0], p.grid[1], p.grid[2],
             unsigned(rec[ATTNC_LAUNCH_THREADS]), 1, 1,
             unsigned(rec[ATTNC_LAUNCH_SMEM]), nullptr, params, nullptr);
  }
  return Status::success();
}

Status PreparedForward::launch() {
  if (p->nothingToDo)
    return Status::success();
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  Status s = p->error.fill(0);
  if (!s.ok())
    return s;
  return launchOnce(*p, **d);
}

Status PreparedForward::finish() {
  if (p->nothingToDo)
    return Status::success();
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  Status s = check(**d, (*d)->cuCtxSynchronize(), "cuCtxSynchronize");
  if (!s.ok())
    return s.withContext("running " + p->entry);
  int64_t words[ATTNC_STATUS_WORDS] = {};
  if (!(s = p->error.download(words, sizeof words)).ok())
    return s;
  if (words[0] != ATTNC_STATUS_OK)
    return kernelStatusError(p->decl.signature(), p->checked.inputs, words);
  return Status::success();
}

Expected<std::vector<double>> PreparedForward::time(int warmup, int runs) {
  if (warmup < 0 || runs < 1)
    return Status::error("timing needs warmup >= 0 and runs >= 1");
  std::vector<double> ms;
  if (p->nothingToDo)
    return std::vector<double>(size_t(runs), 0.0);
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  const Driver &dr = **d;
  // The first warm-up run clears the error word (later runs keep the first
  // error); with no warm-up asked for, it is still run once, untimed.
  Status s = launch();
  for (int i = 1; s.ok() && i < warmup; ++i)
    s = launchOnce(*p, dr);
  if (s.ok())
    s = finish();
  if (!s.ok())
    return s;
  CUevent start = nullptr, stop = nullptr;
  ATTNC_CU(dr, cuEventCreate, &start, CU_EVENT_DEFAULT);
  s = check(dr, dr.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  for (int i = 0; s.ok() && i < runs; ++i) {
    float elapsed = 0;
    if ((s = check(dr, dr.cuEventRecord(start, nullptr), "cuEventRecord")).ok() &&
        (s = launchOnce(*p, dr)).ok() &&
        (s = check(dr, dr.cuEventRecord(stop, nullptr), "cuEventRecord")).ok() &&
        (s = check(dr, dr.cuEventSynchronize(stop), "cuEventSynchronize")).ok() &&
        (s = check(dr, dr.cuEventElapsedTime(&elapsed, start, stop),
                   "cuEventElapsedTime"))
            .ok())
      ms.push_back(double(elapsed));
  }
  if (stop)
    (void)dr.cuEventDestroy(stop); // the run's status is what matters
  (void)dr.cuEventDestroy(start);
  if (s.ok())
    s = finish();
  if (!s.ok())
    return s;
  return ms;
}

Status attnc::runtime::cuda::forwardCuda(const Module &module,
                                         const CudaKernelDecl &decl,
                                         const CudaForwardArgs &args) {
  Expected<std::unique_ptr<PreparedForward>> p =
      prepareForward(module, decl, args);
  if (!p.ok())
    return p.status();
  Status s = (*p)->launch();
  if (!s.ok())
    return s;
  return (*p)->finish();
}
