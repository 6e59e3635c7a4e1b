//===- CudaElementCodeTest.cpp - The CUDA element code, run on the host ---===//
//
// The CUDA back end's element functions and tile schedule are plain C++
// with ATTNC_HD defined empty, so without a GPU they can still be compiled
// (by the host compiler) and run: for every shared spec and examples with
// inputs, the test emits the code, builds a small program around it with
// random sizes and input data, and compares every mask value, score, scale
// and bias, and every tile kind, with SpecInterpreter and MaskSchedule;
// tile kinds both as the kernel computes them without a pre-pass (ids
// scanned per tile) and from the pre-pass words (attnc_ids_tile_<n>, what
// the attnc_prepass_<n> kernel stores).
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaElementCode.h"
#include "attnc/Driver.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Passes/ScheduleEmitter.h"
#include "attnc/Reference/SpecInterpreter.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace fs = std::filesystem;
using namespace mlir;
using namespace mlir::attn;

namespace {

std::vector<fs::path> specFiles() {
  std::vector<fs::path> files;
  if (fs::is_directory(ATTNC_SHARED_SPECS_DIR))
    for (auto &e : fs::directory_iterator(ATTNC_SHARED_SPECS_DIR))
      if (e.path().extension() == ".attn")
        files.push_back(e.path());
  // relative_bias: reads in range only under the evaluation rule (a `?:`
  // arm, a `&&` operand), so an error here is a read reported off its path.
  // t5_bucket and composed_masks: let bindings and named masks (the latter
  // imported). gpt_oss_sinks: a softmax sink (attnc_sink_<n>).
  for (const char *f : {"all_features.attn", "sigmoid_softcap.attn", "block_diagonal.attn",
                        "dilated_causal.attn", "relative_bias.attn", "t5_bucket.attn",
                        "composed_masks.attn", "gpt_oss_sinks.attn"})
    files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / f);
  // Bounds read at q (kv < stop[b, q]): the rows' min and max, scanned.
  files.push_back(fs::path(__FILE__).parent_path() / "Inputs" / "row-bounds.attn");
  // exp2, log2, round and sign, and an input named bias.
  files.push_back(fs::path(__FILE__).parent_path() / "Inputs" / "base2-steps.attn");
  // & | ^ << >>, with a shift count that is not a constant.
  files.push_back(fs::path(__FILE__).parent_path() / "Inputs" / "bitwise.attn");
  std::sort(files.begin(), files.end());
  return files;
}

std::string readFile(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// An input of the spec with its random data (dims resolved).
struct In {
  std::string name;
  Type type;
  std::vector<int64_t> dims;
  std::vector<double> data;
};

/// The host program that prints every value the element code computes: per
/// (b, h, q, kv) the mask, scale and score in both forms (and the bias or
/// the row's sink), then the tile kinds, then the error word.
std::string elementProgram(SpecOp spec, const std::string &code,
                           const ProblemSizes &sizes, const std::vector<In> &inputs) {
  std::string n = spec.getSymName().str();
  std::ostringstream src;
  src << "#define ATTNC_HD\n" << attnc::cudaElementPrelude() << code
      << "#include <stdio.h>\nint main() {\n";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const In &in = inputs[i];
    const char *t = in.type.isF32() ? "float" : in.type.isInteger(1) ? "uint8_t" : "int64_t";
    src << "  static const " << t << " d" << i << "[] = {";
    for (double v : in.data)
      src << (in.type.isF32() ? std::to_string(v) + "f" : std::to_string(int64_t(v))) << ", ";
    src << "0};\n";
  }
  src << "  attnc_input ins[" << std::max<size_t>(inputs.size(), 1) << "] = {};\n";
  for (size_t i = 0; i < inputs.size(); ++i) {
    src << "  ins[" << i << "].data = d" << i << ";\n";
    int64_t stride = 1;
    for (int64_t d = int64_t(inputs[i].dims.size()) - 1; d >= 0; --d) {
      src << "  ins[" << i << "].dims[" << d << "] = " << inputs[i].dims[d] << "; ins[" << i
          << "].strides[" << d << "] = " << stride << ";\n";
      stride *= inputs[i].dims[d];
    }
  }
  src << "  int64_t err[4] = {0, 0, 0, 0};\n"
      << "  attnc_ctx c = {" << sizes.B << ", " << sizes.HQ << ", " << sizes.HKV << ", "
      << sizes.LQ << ", " << sizes.LK << ", " << sizes.D << ", " << sizes.DV
      << ", 0, 0, 0, ins, err};\n"
      << "  for (c.b = 0; c.b < c.B; ++c.b)\n  for (c.h = 0; c.h < c.HQ; ++c.h) {\n"
      << "    c.hkv = c.h / (c.HQ / c.HKV);\n"
      << "    for (int64_t q = 0; q < c.LQ; ++q)\n      for (int64_t kv = 0; kv < c.LK; ++kv) {\n"
      << "        float s = 0.37f * (float)((q * 7 + kv * 3) % 11) - 1.5f;\n"
      << "        printf(\"%d %.9g %.9g\", (int)attnc_mask_" << n << "(c, q, kv), attnc_scale_"
      << n << "(c, q, kv), attnc_score_" << n << "(c, s, q, kv));\n"
      // The fast forms the kernels call (32-bit positions, unchecked reads
      // where in range by declaration; precise math on the host).
      << "        printf(\" %d %.9g %.9g\", (int)attnc_mask_f_" << n
      << "(c, (int)q, (int)kv), attnc_scale_f_" << n << "(c, (int)q, (int)kv), attnc_score_f_" << n
      << "(c, s, (int)q, (int)kv));\n";
  if (spec.getNormalize() == NormalizeKind::sigmoid)
    src << "        printf(\" %.9g %.9g\", attnc_bias_" << n << "(c, q, kv), attnc_bias_f_" << n
        << "(c, (int)q, (int)kv));\n";
  const bool sink = !spec.getSink().empty();
  if (sink) // the row's sink (its regions read no kv)
    src << "        printf(\" %.9g %.9g\", attnc_sink_" << n << "(c, q, 0), attnc_sink_f_" << n
        << "(c, (int)q, 0));\n";
  src << "        printf(\"\\n\");\n      }\n"
      << "    for (int64_t q0 = 0; q0 < c.LQ; q0 += 16) {\n"
      << "      int64_t q1 = q0 + 16 < c.LQ ? q0 + 15 : c.LQ - 1;\n"
      << "      attnc_rowset_" << n << " r = attnc_rows_" << n << "(c, q0, q1);\n"
      << "      for (int64_t k0 = 0; k0 < c.LK; k0 += 32) {\n"
      << "        int64_t k1 = k0 + 32 < c.LK ? k0 + 31 : c.LK - 1;\n"
      << "        int kind = (r.hullLo > r.hullHi) ? 0 : attnc_tile_kind_" << n
      << "(c, r, k0, k1, nullptr);\n"
      // The pre-pass path: the tile's key-side id ranges computed first
      // (what attnc_prepass_<n> stores per key tile), then classified.
      << "        int64_t pre[2 * ATTNC_IDS_" << n << " + 1] = {0};\n"
      << "        attnc_ids_tile_" << n << "(c, k0, k1, pre);\n"
      << "        int kindPre = (r.hullLo > r.hullHi) ? 0 : attnc_tile_kind_" << n
      << "(c, r, k0, k1, ATTNC_IDS_" << n << " ? pre : nullptr);\n"
      << "        printf(\"%d %d\\n\", kind, kindPre);\n      }\n    }\n  }\n"
      << "  printf(\"error %lld\\n\", (long long)err[0]);\n  return 0;\n}\n";

  return src.str();
}

class CudaElementCode : public ::testing::TestWithParam<fs::path> {};

TEST_P(CudaElementCode, MatchesInterpreterAndSchedule) {
  fs::path path = GetParam();
  std::string errors;
  llvm::raw_string_ostream es(errors);
  attnc::Driver driver(es);
  auto module = driver.loadSpecText(path.string(), readFile(path), {});
  ASSERT_TRUE(module) << errors;
  ASSERT_TRUE(succeeded(driver.runSpecPipeline(*module))) << errors;
  SpecOp spec = *module->getOps<SpecOp>().begin();
  auto code = attnc::emitCudaElementCode(spec);
  ASSERT_TRUE(code.ok()) << code.status().message();
  std::string n = spec.getSymName().str();

  // Sizes and input data.
  std::mt19937 rng(std::random_device{}());
  ProblemSizes sizes;
  sizes.B = 2, sizes.HQ = 4, sizes.HKV = 2, sizes.LQ = 37 + rng() % 90,
  sizes.LK = 29 + rng() % 90, sizes.D = 16, sizes.DV = 8;
  const int64_t sz[] = {sizes.B, sizes.HQ, sizes.HKV, sizes.LQ, sizes.LK, sizes.D, sizes.DV};
  std::vector<In> inputs;
  if (ArrayAttr decls = spec.getInputsAttr()) {
    for (Attribute a : decls) {
      auto d = cast<InputAttr>(a);
      In in{d.getName().getValue().str(), d.getElementType(), {}, {}};
      int64_t count = 1;
      for (Attribute dim : d.getShape()) {
        int64_t e = 0;
        if (auto i = dyn_cast<IntegerAttr>(dim))
          e = i.getInt();
        else if (auto s = symbolizeSizeVar(cast<StringAttr>(dim).getValue()))
          e = sz[static_cast<int>(*s)];
        else
          e = cast<IntegerAttr>(spec.lookupParam(cast<StringAttr>(dim).getValue()).getValue()).getInt();
        in.dims.push_back(e);
        count *= e;
      }
      std::uniform_int_distribution<int> small(0, 3), big(0, 60);
      std::uniform_real_distribution<double> u(-1, 1);
      for (int64_t i = 0; i < count; ++i)
        in.data.push_back(in.type.isF32() ? double(float(u(rng)))
                          : in.type.isInteger(1) ? double(small(rng) % 2)
                          : in.dims.size() == 1 ? double(small(rng)) : double(big(rng)));
      if (in.type.isInteger(64) && in.dims.size() == 1)
        std::sort(in.data.begin(), in.data.end());
      inputs.push_back(std::move(in));
    }
  }

  const std::string program = elementProgram(spec, code.value(), sizes, inputs);
  const bool sink = !spec.getSink().empty();
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("attnc-cuda-element", dir));
  struct Cleanup {
    llvm::SmallString<128> &d;
    ~Cleanup() { llvm::sys::fs::remove_directories(d); }
  } cleanup{dir};
  std::string cpp = (dir + "/check.cpp").str(), exe = (dir + "/check").str(),
              outFile = (dir + "/out.txt").str();
  { std::ofstream(cpp) << program; }
  auto cxx = llvm::sys::findProgramByName("c++");
  ASSERT_TRUE(bool(cxx)) << "no host C++ compiler";
  std::string err;
  llvm::StringRef args[] = {*cxx, "-std=c++17", "-O1", "-w", "-o", exe, cpp, "-lm"};
  ASSERT_EQ(llvm::sys::ExecuteAndWait(*cxx, args, std::nullopt, {}, 0, 0, &err), 0)
      << err << "\n" << program;
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(outFile),
                                                std::nullopt};
  llvm::StringRef runArgs[] = {exe};
  ASSERT_EQ(llvm::sys::ExecuteAndWait(exe, runArgs, std::nullopt, redirects), 0);
  std::ifstream out(outFile);

  // The same values from the interpreter and the host schedule.
  InputReader reader = [&](llvm::StringRef name, llvm::ArrayRef<int64_t> idx)
      -> std::optional<Scalar> {
    for (const In &in : inputs) {
      if (in.name != name)
        continue;
      int64_t flat = 0;
      for (size_t d = 0; d < idx.size(); ++d) {
        if (idx[d] < 0 || idx[d] >= in.dims[d])
          return std::nullopt;
        flat = flat * in.dims[d] + idx[d];
      }
      double v = in.data[flat];
      if (in.type.isF32()) return Scalar::ofFloat(v);
      if (in.type.isInteger(1)) return Scalar::ofBool(v != 0);
      return Scalar::ofInt(int64_t(v));
    }
    return std::nullopt;
  };
  IdsReader ids = [&](llvm::StringRef name, llvm::ArrayRef<int64_t> idx) -> std::optional<int64_t> {
    auto s = reader(name, idx);
    if (!s) return std::nullopt;
    return s->i;
  };
  SpecInterpreter interp(spec, sizes, reader);
  int64_t checked = 0, prepassTiles = 0;
  auto hasIdsAtoms = [](SpecOp s) {
    return !collectIdsAtoms(s.getMaskScheduleAttr()).empty();
  };
  for (int64_t b = 0; b < sizes.B; ++b)
    for (int64_t h = 0; h < sizes.HQ; ++h) {
      ProblemSizes s = sizes;
      s.b = b, s.h = h;
      interp.setSizes(s);
      for (int64_t q = 0; q < sizes.LQ; ++q)
        for (int64_t kv = 0; kv < sizes.LK; ++kv) {
          int m, mf;
          double scale, score, bias = 0, scalef, scoref, biasf = 0;
          out >> m >> scale >> score >> mf >> scalef >> scoref;
          double sinkv = 0, sinkf = 0;
          if (spec.getNormalize() == NormalizeKind::sigmoid)
            out >> bias >> biasf;
          if (sink)
            out >> sinkv >> sinkf;
          ASSERT_TRUE(out.good());
          // The fast form: the same mask, the same values up to a division
          // turned into a multiply by the reciprocal.
          ASSERT_EQ(mf, m) << "fast mask at b=" << b << " h=" << h << " q=" << q << " kv=" << kv;
          ASSERT_NEAR(scalef, scale, 1e-6 * (1 + std::abs(scale)));
          ASSERT_NEAR(scoref, score, 1e-5 * (1 + std::abs(score))) << "fast score at q=" << q << " kv=" << kv;
          ASSERT_NEAR(biasf, bias, 1e-6 * (1 + std::abs(bias)));
          auto em = interp.mask({q, kv});
          ASSERT_TRUE(em) << interp.error();
          ASSERT_EQ(m, int(*em)) << "mask at b=" << b << " h=" << h << " q=" << q << " kv=" << kv;
          auto es = interp.scale({q, kv});
          ASSERT_TRUE(es);
          ASSERT_NEAR(scale, *es, 1e-6 * (1 + std::abs(*es)));
          float s32 = 0.37f * float((q * 7 + kv * 3) % 11) - 1.5f;
          auto esc = interp.score({q, kv}, s32);
          ASSERT_TRUE(esc);
          ASSERT_NEAR(score, *esc, 1e-4 * (1 + std::abs(*esc))) << "score at q=" << q << " kv=" << kv;
          if (spec.getNormalize() == NormalizeKind::sigmoid) {
            auto eb = interp.bias({q, kv});
            ASSERT_TRUE(eb);
            ASSERT_NEAR(bias, *eb, 1e-5 * (1 + std::abs(*eb)));
          }
          if (sink) {
            auto es2 = interp.sink({q, 0});
            ASSERT_TRUE(es2) << interp.error();
            ASSERT_NEAR(sinkv, *es2, 1e-6 * (1 + std::abs(*es2))) << "sink at q=" << q;
            ASSERT_NEAR(sinkf, *es2, 1e-6 * (1 + std::abs(*es2))) << "fast sink at q=" << q;
          }
          ++checked;
        }
      TileSchedule sched = computeSchedule(spec.getMaskScheduleAttr(), s, 16, 32, &ids);
      for (int64_t qt = 0; qt < sched.numQ; ++qt)
        for (int64_t kt = 0; kt < sched.numK; ++kt) {
          int kind, kindPre;
          out >> kind >> kindPre;
          ASSERT_EQ(kind, int(sched.at(qt, kt))) << "tile " << qt << "," << kt << " b=" << b << " h=" << h;
          ASSERT_EQ(kindPre, int(sched.at(qt, kt)))
              << "pre-pass path, tile " << qt << "," << kt << " b=" << b << " h=" << h;
          if (hasIdsAtoms(spec))
            ++prepassTiles;
        }
    }
  std::string word;
  int64_t errorCode = -1;
  out >> word >> errorCode;
  EXPECT_EQ(word, "error");
  EXPECT_EQ(errorCode, 0) << "the element code reported an error";
  EXPECT_GT(checked, 0);
  if (hasIdsAtoms(spec))
    EXPECT_GT(prepassTiles, 0) << "the pre-pass path was not exercised";
}

/// The element code of every spec, in one .cu with a kernel per spec that
/// calls each function, compiles with nvcc for sm_80 and sm_90a (device
/// code; skipped, with a message, where nvcc is absent).
TEST(CudaElementCodeNvcc, CompilesForSm80AndSm90a) {
  std::string nvcc = "/usr/local/cuda/bin/nvcc";
  if (!llvm::sys::fs::can_execute(nvcc)) {
    auto found = llvm::sys::findProgramByName("nvcc");
    if (!found)
      GTEST_SKIP() << "nvcc not found: the CUDA element code is only run on the host";
    nvcc = *found;
  }
  std::ostringstream src;
  src << attnc::cudaElementPrelude();
  for (const fs::path &path : specFiles()) {
    std::string errors;
    llvm::raw_string_ostream es(errors);
    attnc::Driver driver(es);
    auto module = driver.loadSpecText(path.string(), readFile(path), {});
    ASSERT_TRUE(module && succeeded(driver.runSpecPipeline(*module))) << errors;
    SpecOp spec = *module->getOps<SpecOp>().begin();
    auto code = attnc::emitCudaElementCode(spec);
    ASSERT_TRUE(code.ok()) << code.status().message();
    std::string n = spec.getSymName().str();
    src << code.value() << "__global__ void attnc_check_" << n
        << "(attnc_ctx c, float *o) {\n  int64_t q = threadIdx.x, kv = blockIdx.x;\n"
        << "  attnc_rowset_" << n << " r = attnc_rows_" << n << "(c, q, q + 3);\n"
        << "  o[q] = attnc_scale_" << n << "(c, q, kv) * attnc_score_" << n
        << "(c, 1.0f, q, kv) + attnc_mask_" << n << "(c, q, kv) + attnc_tile_kind_" << n
        << "(c, r, kv, kv + 8, nullptr) + attnc_score_f_" << n
        << "(c, 1.0f, (int)q, (int)kv) + attnc_mask_f_" << n << "(c, (int)q, (int)kv)"
        << (spec.getSink().empty() ? std::string()
                                   : " + attnc_sink_f_" + n + "(c, (int)q, 0)")
        << ";\n}\n";
  }
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("attnc-cuda-nvcc", dir));
  struct Cleanup {
    llvm::SmallString<128> &d;
    ~Cleanup() { llvm::sys::fs::remove_directories(d); }
  } cleanup{dir};
  std::string cu = (dir + "/element.cu").str();
  { std::ofstream(cu) << src.str(); }
  for (const char *arch : {"sm_80", "sm_90a"}) {
    std::string obj = (dir + "/element-" + arch + ".o").str(), archFlag = std::string("-arch=") + arch;
    std::string err;
    llvm::StringRef args[] = {nvcc, archFlag, "-std=c++17", "-c", "-o", obj, cu};
    ASSERT_EQ(llvm::sys::ExecuteAndWait(nvcc, args, std::nullopt, {}, 600, 0, &err), 0)
        << arch << ": " << err;
    EXPECT_TRUE(llvm::sys::fs::exists(obj));
  }
}

INSTANTIATE_TEST_SUITE_P(Specs, CudaElementCode, ::testing::ValuesIn(specFiles()),
                         [](const auto &info) {
                           std::string s = info.param.stem().string();
                           for (char &ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

} // namespace
