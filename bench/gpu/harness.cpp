//===- harness.cpp - Check and time carried attnc .cu files on a GPU ------===//
//
// The GPU side of scripts/gpu-check.sh; needs only the runtime (no MLIR):
//   attnc-gpu-harness selftest
//       the hand-written test/runtime/Inputs/copy_kernel.cu (CudaABI.h
//       without the emitter) through NVRTC and forwardCuda: out == q, the
//       pre-pass, a kernel-reported error;
//   attnc-gpu-harness check DATA [CASE_DIR...]
//       every DATA/cases/*/case.txt (or the given ones) (attn-gpu-prepare) for every arch the
//       GPU runs (sm_90a cubin on 9.0, sm_80 cubin on 8.x or PTX elsewhere):
//       NVRTC, launch, max abs and relative Frobenius error against the
//       float64 reference; PASS/FAIL per (arch, case);
//   attnc-gpu-harness bench DATA --out FILE [--runs N] [--warmup N]
//       every DATA/bench/*/case.txt on the device's arch, timed with CUDA
//       events (median); one JSON line per case into FILE; once per entry
//       also the NVRTC compile time with no cache (cold) and through the
//       kernel cache (cached: the lookup and the module load).
// A failing case is reported and the next one runs; the exit code is 1 if
// any failed. Every CUDA call is checked by the runtime.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/Npy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

namespace {
/// One case.txt.
struct Case {
  std::string dir, spec, cu, dtypeName, label;
  DType dtype = DType::BF16;
  int64_t B = 0, HQ = 0, HKV = 0, LQ = 0, LK = 0, D = 0, DV = 0;
  bool sigmoid = false, reference = false;
  std::optional<DropoutSeed> dropout; // a training call (Dropout.h)
  CudaKernelDecl decl;
};

Expected<Case> readCase(const std::string &dir) {
  Expected<std::string> text = readFile(dir + "/case.txt");
  if (!text.ok())
    return text.status();
  Case c;
  c.dir = dir;
  std::istringstream in(*text);
  std::string line;
  const std::vector<std::string> sizes = {"B", "HQ", "HKV", "LQ", "LK", "D", "DV"};
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "spec")
      ls >> c.spec;
    else if (key == "cu")
      ls >> c.cu;
    else if (key == "dtype")
      ls >> c.dtypeName;
    else if (key == "shape")
      ls >> c.B >> c.HQ >> c.HKV >> c.LQ >> c.LK >> c.D >> c.DV;
    else if (key == "sigmoid")
      ls >> c.sigmoid;
    else if (key == "reference")
      ls >> c.reference;
    else if (key == "dropout") {
      DropoutSeed d;
      ls >> d.seed >> d.offset;
      c.dropout = d;
    }
    else if (key == "label")
      std::getline(ls >> std::ws, c.label);
    else if (key == "input") {
      InputDecl d;
      std::string type, dim;
      ls >> d.name >> type;
      d.dtype = type == "int64" ? DType::I64
                : type == "float32" ? DType::F32 : DType::Bool;
      while (ls >> dim) {
        InputDim x;
        auto it = std::find(sizes.begin(), sizes.end(), dim);
        if (it != sizes.end()) {
          x.isSize = true;
          x.size = SizeName(it - sizes.begin());
        } else {
          x.literal = std::stoll(dim);
        }
        d.dims.push_back(x);
      }
      c.decl.inputs.push_back(d);
    }
  }
  std::optional<DType> dt = parseDType(c.dtypeName);
  if (c.spec.empty() || c.cu.empty() || !dt || c.B <= 0)
    return Status::error(dir + "/case.txt is incomplete");
  c.dtype = *dt;
  c.decl.name = c.spec;
  c.decl.storage = c.dtype;
  c.decl.sigmoid = c.sigmoid;
  c.decl.dropout = c.dropout.has_value();
  if (c.label.empty())
    c.label = c.spec;
  return c;
}

std::vector<std::string> subdirs(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.')
        out.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string shapeText(const Case &c) {
  std::ostringstream s;
  s << c.B << "," << c.HQ << "," << c.HKV << "," << c.LQ << "," << c.LK << ","
    << c.D << "," << c.DV;
  return s.str();
}

/// The kernel cache of the harness (ATTNC_CACHE_DIR, set by gpu-check.sh).
KernelCache &cache() {
  static KernelCache c;
  return c;
}

/// The .cu of `c` for `arch` and the NVRTC request of its entry.
Expected<std::pair<std::string, CompileRequest>> requestFor(const std::string &data, const Case &c,
                                                            const DeviceInfo &dev,
                                                            const std::string &arch) {
  const std::string path = data + "/cu/" + c.cu + "." + arch + ".cu";
  bool missing = false;
  Expected<std::string> cu = readFile(path, &missing);
  if (!cu.ok())
    return Status::error(missing ? "no " + path +
                                       " (prepare could not emit it; see its "
                                       "log)"
                                 : cu.status().message());
  Expected<BinaryKind> kind = binaryKindFor(dev, arch);
  if (!kind.ok())
    return kind.status();
  CompileRequest req;
  req.arch = arch;
  req.kind = *kind;
  req.defines = entryDefines(c.dtype, c.D, c.DV);
  req.sourceName = c.cu + "." + arch + ".cu";
  return std::make_pair(std::move(*cu), std::move(req));
}

/// NVRTC (through the kernel cache) + load of `c`'s entry for `arch`.
Expected<Module> buildCase(const std::string &data, const Case &c,
                           const DeviceInfo &dev, const std::string &arch) {
  auto r = requestFor(data, c, dev, arch);
  if (!r.ok())
    return r.status();
  Expected<CompileResult> bin = compileCuda(r->first, r->second, &cache());
  if (!bin.ok())
    return bin.status();
  return Module::load(bin->binary);
}

/// Seconds since `t0`.
double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The compile times of `c`'s entry: NVRTC with no cache (cold), then the
/// kernel cache's hit plus the module load (cached), as a JSON fragment;
/// "" when the compile fails (the bench reports that itself).
std::string compileTimes(const std::string &data, const Case &c, const DeviceInfo &dev,
                         const std::string &arch) {
  auto r = requestFor(data, c, dev, arch);
  if (!r.ok())
    return "";
  auto t0 = std::chrono::steady_clock::now();
  if (!compileCuda(r->first, r->second, nullptr).ok())
    return "";
  double cold = secondsSince(t0);
  if (!buildCase(data, c, dev, arch).ok()) // fills the cache
    return "";
  t0 = std::chrono::steady_clock::now();
  if (!buildCase(data, c, dev, arch).ok())
    return "";
  double cached = secondsSince(t0);
  std::printf("nvrtc %-28s %s D=%lld DV=%lld: cold %.2f s, cached %.1f ms\n", c.cu.c_str(),
              c.dtype == DType::BF16 ? "bf16" : "f16", (long long)c.D, (long long)c.DV, cold,
              cached * 1e3);
  std::ostringstream s;
  s << ", \"nvrtc_cold_s\": " << cold << ", \"nvrtc_cached_ms\": " << cached * 1e3;
  return s.str();
}

/// q, k or v of a case, converted to the storage type, on the device.
Expected<DeviceTensor> uploadOperand(const Case &c, const char *file) {
  Expected<Tensor> t = readNpy(c.dir + "/" + file);
  if (!t.ok())
    return t.status();
  Expected<Tensor> s = convert(t->view(), c.dtype);
  if (!s.ok())
    return s.status();
  return DeviceTensor::upload(s->view());
}

/// The declared inputs of a case, in declaration order.
Expected<std::vector<std::pair<std::string, Tensor>>> readInputs(const Case &c) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const InputDecl &d : c.decl.inputs) {
    Expected<Tensor> t = readNpy(c.dir + "/input_" + d.name + ".npy");
    if (!t.ok())
      return t.status();
    out.emplace_back(d.name, std::move(*t));
  }
  return out;
}

/// Runs one case on one arch and compares with the reference; "" or why
/// it failed. `summary` gets the errors.
std::string checkCase(const std::string &data, const Case &c,
                      const DeviceInfo &dev, const std::string &arch,
                      std::string &summary) {
  Expected<Module> mod = buildCase(data, c, dev, arch);
  if (!mod.ok())
    return mod.status().message();
  Expected<DeviceTensor> q = uploadOperand(c, "q.npy"),
                         k = uploadOperand(c, "k.npy"),
                         v = uploadOperand(c, "v.npy");
  for (const Status *s : {&q.status(), &k.status(), &v.status()})
    if (!s->ok())
      return s->message();
  Expected<DeviceTensor> out = DeviceTensor::allocate(c.dtype, {c.B, c.HQ, c.LQ, c.DV});
  Expected<DeviceTensor> lse = DeviceTensor::allocate(DType::F32, {c.B, c.HQ, c.LQ});
  if (!out.ok() || !lse.ok())
    return (!out.ok() ? out : lse).status().message();
  Status st = out->fill(0xff); // NaN: elements never written fail
  if (st.ok())
    st = lse->fill(0xff);
  if (!st.ok())
    return st.message();
  auto inputs = readInputs(c);
  if (!inputs.ok())
    return inputs.status().message();
  CudaForwardArgs args;
  args.q = q->view();
  args.k = k->view();
  args.v = v->view();
  args.out = out->view();
  DeviceView lseView = lse->view();
  args.lse = c.sigmoid ? nullptr : &lseView;
  args.dropout = c.dropout;
  for (const auto &[name, t] : *inputs)
    args.inputs.emplace_back(name, t.view());
  if (!(st = forwardCuda(*mod, c.decl, args)).ok())
    return st.message();

  Expected<Tensor> got = out->download();
  Expected<Tensor> ref = readNpy(c.dir + "/ref_out.npy");
  if (!got.ok() || !ref.ok())
    return (!got.ok() ? got : ref).status().message();
  if (ref->numel() != got->numel())
    return "ref_out.npy has " + std::to_string(ref->numel()) +
           " elements, the output " + std::to_string(got->numel());
  double maxAbs = 0, diff2 = 0, ref2 = 0;
  int64_t nans = 0;
  for (int64_t i = 0; i < got->numel(); ++i) {
    const double g = got->getAsDouble(i), r = ref->getAsDouble(i);
    if (std::isnan(g)) {
      ++nans;
      continue;
    }
    maxAbs = std::max(maxAbs, std::fabs(g - r));
    diff2 += (g - r) * (g - r);
    ref2 += r * r;
  }
  const double rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  char buf[256];
  std::snprintf(buf, sizeof buf, "out max_abs %.3g rel_frob %.3g", maxAbs, rel);
  summary = buf;
  std::string why;
  if (nans)
    why = std::to_string(nans) + " NaN outputs (unwritten or invalid)";
  else if (!(rel < 1e-2))
    why = "relative Frobenius error " + std::to_string(rel) + " >= 1e-2";
  if (!c.sigmoid) {
    Expected<Tensor> gl = lse->download();
    Expected<Tensor> rl = readNpy(c.dir + "/ref_lse.npy");
    if (!gl.ok() || !rl.ok())
      return (!gl.ok() ? gl : rl).status().message();
    double lseMax = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < gl->numel(); ++i) {
      const double g = gl->getAsDouble(i), r = rl->getAsDouble(i);
      if (std::isinf(r)) {
        bad += !(std::isinf(g) && g < 0);
        continue;
      }
      if (std::isnan(g)) {
        ++bad;
        continue;
      }
      lseMax = std::max(lseMax, std::fabs(g - r));
    }
    std::snprintf(buf, sizeof buf, "; lse max_abs %.3g", lseMax);
    summary += buf;
    if (why.empty() && bad)
      why = std::to_string(bad) + " lse values wrong (NaN, or not -inf on a "
                                  "fully masked row)";
    if (why.empty() && !(lseMax < 2e-2))
      why = "lse max abs error " + std::to_string(lseMax) + " >= 2e-2";
  }
  return why;
}

/// The arches this GPU runs: sm_90a (9.0 only) and sm_80.
std::vector<std::string> archesFor(const DeviceInfo &dev) {
  std::vector<std::string> out;
  for (const char *a : {"sm_80", "sm_90a"})
    if (binaryKindFor(dev, a).ok())
      out.push_back(a);
  return out;
}

int selftest(const DeviceInfo &dev) {
  Expected<std::string> abi =
      readFile(ATTNC_REPO_ROOT "/runtime/include/attnc/Runtime/CudaABI.h");
  Expected<std::string> cu =
      readFile(ATTNC_REPO_ROOT "/test/runtime/Inputs/copy_kernel.cu");
  if (!abi.ok() || !cu.ok()) {
    std::printf("FAIL selftest: %s\n",
                (!abi.ok() ? abi : cu).status().message().c_str());
    return 1;
  }
  int failures = 0;
  for (const std::string &arch : archesFor(dev)) {
    auto fail = [&](const std::string &why) {
      std::printf("FAIL selftest %s: %s\n", arch.c_str(), why.c_str());
      ++failures;
    };
    CompileRequest req;
    req.arch = arch;
    req.kind = *binaryKindFor(dev, arch);
    req.sourceName = "copy_kernel.cu";
    Expected<CompileResult> bin = compileCuda(*abi + "\n" + *cu, req);
    if (!bin.ok()) {
      fail(bin.status().message());
      continue;
    }
    Expected<Module> mod = Module::load(bin->binary);
    if (!mod.ok()) {
      fail(mod.status().message());
      continue;
    }
    Tensor q = std::move(Tensor::zeros(DType::BF16, {2, 3, 45, 64}).value());
    for (int64_t i = 0; i < q.numel(); ++i)
      q.setFromDouble(i, double(i % 97) - 48.0);
    Expected<DeviceTensor> dq = DeviceTensor::upload(q.view());
    Expected<DeviceTensor> dout = DeviceTensor::allocate(DType::BF16, {2, 3, 45, 64});
    Expected<DeviceTensor> dlse = DeviceTensor::allocate(DType::F32, {2, 3, 45});
    if (!dq.ok() || !dout.ok() || !dlse.ok()) {
      fail("device memory");
      continue;
    }
    CudaKernelDecl decl;
    decl.name = "copy";
    decl.storage = DType::BF16;
    CudaForwardArgs args;
    args.q = args.k = args.v = dq->view();
    args.out = dout->view();
    DeviceView lse = dlse->view();
    args.lse = &lse;
    Status st = forwardCuda(*mod, decl, args);
    if (!st.ok()) {
      fail(st.message());
      continue;
    }
    Expected<Tensor> out = dout->download();
    Expected<Tensor> l = dlse->download();
    if (!out.ok() || !l.ok() ||
        std::memcmp(out->data(), q.data(), q.nbytes()) != 0 ||
        l->getAsDouble(44) != 1044.0) {
      fail("wrong results (out != q or lse != l + 1000)");
      continue;
    }
    std::printf("PASS selftest %s: copy kernel, pre-pass, launch record\n",
                arch.c_str());
    if (dev.major < 9)
      continue;
    // The sm_90a calling convention: tensor maps as a second parameter,
    // clusters of 2 (the kernel reports an empty map).
    decl.name = "copytma";
    args.lse = nullptr;
    if (!(st = dout->fill(0)).ok() ||
        !(st = forwardCuda(*mod, decl, args)).ok()) {
      fail("copytma (tensor maps, clusters): " + st.message());
      continue;
    }
    out = dout->download();
    if (!out.ok() || std::memcmp(out->data(), q.data(), q.nbytes()) != 0) {
      fail("copytma: out != q");
      continue;
    }
    std::printf("PASS selftest %s: tensor maps and clusters\n", arch.c_str());
  }
  return failures ? 1 : 0;
}

int check(const std::string &data, const DeviceInfo &dev,
          std::vector<std::string> dirs) {
  int passed = 0, failed = 0;
  if (dirs.empty())
    dirs = subdirs(data + "/cases");
  for (const std::string &dir : dirs) {
    Expected<Case> c = readCase(dir);
    if (!c.ok()) {
      std::printf("FAIL %s: %s\n", dir.c_str(), c.status().message().c_str());
      ++failed;
      continue;
    }
    for (const std::string &arch : archesFor(dev)) {
      std::string summary;
      std::string why = checkCase(data, *c, dev, arch, summary);
      // Multi-line messages (NVRTC's log) stay visibly one case's.
      for (size_t at = why.find('\n'); at != std::string::npos;
           at = why.find('\n', at + 1))
        why.insert(at + 1, "      | ");
      std::printf("%s %-6s %-28s %-4s %-22s %s%s%s\n", why.empty() ? "PASS" : "FAIL",
                  arch.c_str(), c->label.c_str(), c->dtypeName.c_str(),
                  shapeText(*c).c_str(), summary.c_str(),
                  why.empty() ? "" : (summary.empty() ? "" : "; "), why.c_str());
      std::fflush(stdout);
      (why.empty() ? passed : failed)++;
    }
  }
  std::printf("check: %d passed, %d failed\n", passed, failed);
  return failed || !passed ? 1 : 0;
}

int bench(const std::string &data, const DeviceInfo &dev,
          const std::string &outFile, int runs, int warmup) {
  std::ofstream out(outFile);
  if (!out) {
    std::printf("FAIL bench: cannot write %s\n", outFile.c_str());
    return 1;
  }
  const std::string arch = *archForDevice(dev);
  int failed = 0;
  std::set<std::string> timedEntries; // compile times once per entry
  for (const std::string &dir : subdirs(data + "/bench")) {
    Expected<Case> c = readCase(dir);
    std::string why, compile;
    double ms = 0;
    if (!c.ok()) {
      why = c.status().message();
    } else {
      if (timedEntries.insert(c->cu + "/" + std::to_string(c->D) + "/" + std::to_string(c->DV) + "/" +
                              std::to_string(int(c->dtype))).second)
        compile = compileTimes(data, *c, dev, arch);
      Expected<Module> mod = buildCase(data, *c, dev, arch);
      // Random data: the time does not depend on the values.
      auto random = [&](std::vector<int64_t> shape, unsigned seed) {
        Expected<Tensor> t = Tensor::zeros(c->dtype, shape);
        uint32_t x = seed;
        for (int64_t i = 0; t.ok() && i < t->numel(); ++i) {
          x = x * 1664525u + 1013904223u;
          t->setFromDouble(i, double(int(x >> 20) - 2048) / 1024.0);
        }
        return t.ok() ? DeviceTensor::upload(t->view())
                      : Expected<DeviceTensor>(t.status());
      };
      Expected<DeviceTensor> q = random({c->B, c->HQ, c->LQ, c->D}, 1),
                             k = random({c->B, c->HKV, c->LK, c->D}, 2),
                             v = random({c->B, c->HKV, c->LK, c->DV}, 3),
                             o = DeviceTensor::allocate(c->dtype,
                                                        {c->B, c->HQ, c->LQ, c->DV});
      auto inputs = readInputs(*c);
      for (const Status *s : {&mod.status(), &q.status(), &k.status(),
                              &v.status(), &o.status(), &inputs.status()})
        if (why.empty() && !s->ok())
          why = s->message();
      if (why.empty()) {
        CudaForwardArgs args;
        args.q = q->view();
        args.k = k->view();
        args.v = v->view();
        args.out = o->view();
        for (const auto &[name, t] : *inputs)
          args.inputs.emplace_back(name, t.view());
        auto p = prepareForward(*mod, c->decl, args);
        if (!p.ok()) {
          why = p.status().message();
        } else {
          auto times = (*p)->time(warmup, runs);
          if (!times.ok()) {
            why = times.status().message();
          } else {
            std::sort(times->begin(), times->end());
            ms = (*times)[times->size() / 2];
          }
        }
      }
    }
    const std::string label = c.ok() ? c->label : dir;
    if (!why.empty()) {
      std::printf("FAIL bench %s: %s\n", label.c_str(), why.c_str());
      ++failed;
      out << "{\"label\": \"" << label << "\", \"error\": true}\n";
      continue;
    }
    std::printf("bench %-28s L=%-6lld %.3f ms\n", label.c_str(),
                (long long)c->LQ, ms);
    out << "{\"label\": \"" << label << "\", \"spec\": \"" << c->spec
        << "\", \"L\": " << c->LQ << ", \"shape\": \"" << shapeText(*c)
        << "\", \"arch\": \"" << arch << "\", \"ms\": " << ms << compile << "}\n";
  }
  return failed ? 1 : 0;
}
} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fprintf(stderr, "usage: attnc-gpu-harness selftest | check DATA [CASE_DIR...] | "
                         "bench DATA --out FILE [--runs N] [--warmup N]\n");
    return 2;
  }
  Expected<DeviceInfo> dev = currentDevice();
  if (!dev.ok()) {
    std::printf("FAIL: %s\n", dev.status().message().c_str());
    return 1;
  }
  std::printf("device %d: %s, compute capability %d.%d, driver %d, NVRTC %s\n",
              dev->ordinal, dev->name.c_str(), dev->major, dev->minor,
              dev->driverVersion,
              nvrtcVersion().ok() ? nvrtcVersion()->c_str() : "missing");
  if (args[0] == "selftest")
    return selftest(*dev);
  if (args[0] == "check" && args.size() >= 2)
    return check(args[1], *dev,
                 std::vector<std::string>(args.begin() + 2, args.end()));
  if (args[0] == "bench" && args.size() >= 2) {
    std::string out;
    int runs = 20, warmup = 5;
    for (size_t i = 2; i + 1 < args.size(); i += 2) {
      if (args[i] == "--out")
        out = args[i + 1];
      else if (args[i] == "--runs")
        runs = std::stoi(args[i + 1]);
      else if (args[i] == "--warmup")
        warmup = std::stoi(args[i + 1]);
    }
    if (out.empty()) {
      std::fprintf(stderr, "bench needs --out FILE\n");
      return 2;
    }
    return bench(args[1], *dev, out, runs, warmup);
  }
  std::fprintf(stderr, "unknown command\n");
  return 2;
}
