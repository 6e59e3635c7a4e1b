//===- attn-gpu-prepare.cpp - Test data for the GPU check, made where LLVM is -===//
//
//   attn-gpu-prepare SPEC.attn --shape B,HQ,HKV,LQ,LK,D,DV --dtype bf16|f16
//                    --out DIR --cu STEM [-D NAME=VALUE]... [--seed N]
//                    [--bench]
//
// The first half of scripts/gpu-check.sh: the GPU machine has no LLVM/MLIR,
// so everything that needs the compiler's front end is made here and
// carried there. Writes into DIR:
//   q.npy, k.npy, v.npy       float32 holding values already rounded to
//                             --dtype (the GPU side converts them exactly);
//   input_<name>.npy          the spec's declared inputs (random, as
//                             attn-demo makes them; int64, float32, bool);
//   ref_out.npy, ref_lse.npy  the float64 reference (ReferenceAttention);
//                             for a spec with softmax(dropout = p), of a
//                             training call with dropout seed 1000 + --seed
//                             and offset 7 (case.txt says so).
// With --bench (benchmark cases, up to 2 x 16 x 8192 x 128) only the inputs
// and case.txt: the harness makes q, k and v on the GPU machine, and the
// carried data stays small.
//   case.txt                  what the harness (bench/gpu/harness.cpp)
//                             needs to launch the kernel without the spec:
//                             name, dtype, shape, normalisation, inputs, and
//                             the .cu stem STEM (cu/STEM.<arch>.cu).
// Exits 1 with a message on any error.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Runtime/Npy.h"
#include "bench-common/BenchCommon.h"
#include "common/ToolCommandLine.h"
#include "common/ToolDiagnostics.h"

#include "llvm/Support/raw_ostream.h"

#include <boost/program_options.hpp>

#include <iostream>
#include <random>

namespace po = boost::program_options;
using namespace attnc;
using namespace attnc::bench;
using runtime::DType;
using runtime::Tensor;

namespace {
int fail(const std::string &message) {
  printToolError("attn-gpu-prepare", message);
  return 1;
}

const char *kSizeNames[] = {"B", "HQ", "HKV", "LQ", "LK", "D", "DV"};

/// A float32 (or float64) tensor of `values` with `shape`.
Tensor denseTensor(DType dt, const std::vector<int64_t> &shape,
                   const std::vector<double> &values) {
  Tensor t = std::move(Tensor::zeros(dt, shape).value());
  for (size_t i = 0; i < values.size(); ++i)
    t.setFromDouble(int64_t(i), values[i]);
  return t;
}

/// The dropout seed and offset of a correctness case of a spec with
/// softmax(dropout = p): 1000 + --seed, and 7.
constexpr uint64_t kDropoutSeedBase = 1000;
constexpr uint32_t kDropoutOffset = 7;

/// case.txt (see the file comment) of a case of `info` at shape `s`.
std::string caseText(const runtime::KernelInfo &info, const Shape &s, const std::string &cu,
                     const std::string &dtypeText, const std::vector<std::string> &defines,
                     bool benchCase, unsigned seed) {
  std::string m;
  m += "spec " + info.name + "\n";
  m += "cu " + cu + "\n";
  m += "dtype " + dtypeText + "\n";
  m += "shape " + std::to_string(s.B) + " " + std::to_string(s.HQ) + " " +
       std::to_string(s.HKV) + " " + std::to_string(s.LQ) + " " +
       std::to_string(s.LK) + " " + std::to_string(s.D) + " " +
       std::to_string(s.DV) + "\n";
  m += std::string("sigmoid ") + (info.sigmoid ? "1" : "0") + "\n";
  m += std::string("reference ") + (benchCase ? "0" : "1") + "\n";
  if (info.dropout && !benchCase) // a training call: the mask is checked too
    m += "dropout " + std::to_string(kDropoutSeedBase + seed) + " " +
         std::to_string(kDropoutOffset) + "\n";
  for (const runtime::InputDecl &d : info.inputs) {
    m += "input " + d.name + " " +
         (d.dtype == DType::I64 ? "int64"
                                : d.dtype == DType::F32 ? "float32" : "bool");
    for (const runtime::InputDim &dim : d.dims)
      m += " " + (dim.isSize ? std::string(kSizeNames[int(dim.size)])
                             : std::to_string(dim.literal));
    m += "\n";
  }
  std::string label = info.name;
  for (const std::string &d : defines)
    label += " " + d;
  if (info.dropout && !benchCase)
    label += " (training call)";
  m += "label " + label + "\n";
  return m;
}

int run(int argc, char **argv) {
  std::string spec, shapeText, dtypeText, out, cu;
  std::vector<std::string> defines;
  unsigned seed = 1;
  bool benchCase = false;
  po::options_description options(
      "attn-gpu-prepare SPEC.attn --shape B,HQ,HKV,LQ,LK,D,DV --dtype bf16|f16 "
      "--out DIR --cu STEM [options]");
  options.add_options()("help,h", "print this help")(
      "spec", po::value(&spec), "the .attn spec")(
      "shape", po::value(&shapeText), "B,HQ,HKV,LQ,LK,D,DV")(
      "dtype", po::value(&dtypeText)->default_value("bf16"), "bf16|f16")(
      "out", po::value(&out), "the case directory (created)")(
      "cu", po::value(&cu), "the stem of the case's .cu files")(
      "define,D", po::value(&defines)->composing(), "NAME=VALUE")(
      "seed", po::value(&seed)->default_value(1), "seed of the data")(
      "bench", po::bool_switch(&benchCase),
      "a benchmark case: inputs and case.txt only (no q/k/v, no reference)");
  po::variables_map vm;
  std::string err = parseToolCommandLine(
      std::vector<std::string>(argv + 1, argv + argc), options, vm);
  if (!err.empty())
    return fail(err);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (spec.empty() || shapeText.empty() || out.empty() || cu.empty())
    return fail("SPEC, --shape, --out and --cu are required");
  std::optional<DType> dtype = runtime::parseDType(dtypeText);
  if (!dtype || (*dtype != DType::BF16 && *dtype != DType::F16))
    return fail("--dtype=" + dtypeText + ": expected bf16 or f16");
  std::optional<Shape> s = parseShape(shapeText, err);
  if (!s)
    return fail(err);

  FrontendOptions fo;
  for (const std::string &d : defines) {
    std::pair<std::string, std::string> define;
    if (std::string why = parseDefine(d, define); !why.empty())
      return fail(why);
    fo.defines.push_back(std::move(define));
  }
  Driver driver(llvm::errs());
  mlir::OwningOpRef<mlir::ModuleOp> module = driver.loadSpecFile(spec, fo);
  if (!module || failed(driver.runSpecPipeline(*module)))
    return 1;
  auto specs = llvm::to_vector(module->getOps<mlir::attn::SpecOp>());
  if (specs.size() != 1)
    return fail(spec + ": expected one attention block");
  // The inputs the kernel declares, from its tiled form.
  PipelineOptions po;
  po.storage = *dtype;
  if (failed(runPipeline(*module, po, PipelineStage::Analysed, PipelineStage::Tiled)))
    return 1;
  runtime::Expected<runtime::KernelInfo> info = describeKernel(flashOps(*module).front());
  if (!info.ok())
    return fail(info.status().message());

  std::mt19937 rng(seed);
  // A benchmark case needs no q/k/v here: tiny placeholders keep the code
  // below uniform.
  const int64_t lq = benchCase ? 1 : s->LQ, lk = benchCase ? 1 : s->LK;
  auto q = randomOperand(*dtype, {s->B, s->HQ, lq, s->D}, rng, -2, 2);
  auto k = randomOperand(*dtype, {s->B, s->HKV, lk, s->D}, rng, -2, 2);
  auto v = randomOperand(*dtype, {s->B, s->HKV, lk, s->DV}, rng, -1, 1);
  auto inputs = randomInputs(*info, *s, rng);
  for (const runtime::Status *st :
       {&q.status(), &k.status(), &v.status(), &inputs.status()})
    if (!st->ok())
      return fail(st->message());
  // Packed documents (as attn-bench): with LQ == LK, an int vector over LK
  // gets the ids of the one over LQ, so the documents line up.
  if (s->LQ == s->LK) {
    Tensor *idsQ = nullptr, *idsK = nullptr;
    for (const runtime::InputDecl &d : info->inputs)
      if (d.dtype == DType::I64 && d.dims.size() == 1 && d.dims[0].isSize)
        for (auto &[name, t] : *inputs)
          if (name == d.name && d.dims[0].size == runtime::SizeName::LQ)
            idsQ = &t;
          else if (name == d.name && d.dims[0].size == runtime::SizeName::LK)
            idsK = &t;
    if (idsQ && idsK)
      *idsK = *idsQ;
  }

  if (runtime::Status st = runtime::createDirectories(out); !st.ok())
    return fail(st.message());
  auto write = [&](const std::string &file, const Tensor &t) {
    runtime::Status st = runtime::writeNpy(out + "/" + file, t.view());
    if (!st.ok())
      fail(st.message());
    return st.ok();
  };
  if (!benchCase &&
      (!write("q.npy", denseTensor(DType::F32, q->tensor.shape(), q->values)) ||
       !write("k.npy", denseTensor(DType::F32, k->tensor.shape(), k->values)) ||
       !write("v.npy", denseTensor(DType::F32, v->tensor.shape(), v->values))))
    return 1;
  for (const auto &[name, t] : *inputs)
    if (!write("input_" + name + ".npy", t))
      return 1;

  if (!benchCase) {
    mlir::attn::ReferenceProblem p;
    p.sizes = problemSizes(*s);
    p.q = q->values.data();
    p.k = k->values.data();
    p.v = v->values.data();
    p.inputs = inputReader(*inputs);
    if (info->dropout)
      p.dropout = mlir::attn::ReferenceProblem::Dropout{kDropoutSeedBase + seed,
                                                        kDropoutOffset, 0};
    std::vector<double> refOut, refLse;
    std::string why = mlir::attn::referenceAttention(specs[0], p, refOut, refLse);
    if (!why.empty())
      return fail("the reference: " + why);
    if (!write("ref_out.npy",
               denseTensor(DType::F64, {s->B, s->HQ, s->LQ, s->DV}, refOut)) ||
        !write("ref_lse.npy",
               denseTensor(DType::F64, {s->B, s->HQ, s->LQ}, refLse)))
      return 1;
  }

  const std::string m = caseText(*info, *s, cu, dtypeText, defines, benchCase, seed);
  if (runtime::Status st = runtime::writeFileAtomic(out + "/case.txt", m);
      !st.ok())
    return fail(st.message());
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    return fail(e.what());
  }
}
