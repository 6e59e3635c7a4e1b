//===- MaskAnalysisTest.cpp - Tile schedules against brute force ----------===//
//
// For every spec (the shared reference specs, the examples, and a list of
// mask families written here) and many random sizes and tile shapes, the
// classification from the mask formula is compared with a brute-force
// evaluation of the mask region by the reference interpreter:
//   - soundness, for every spec: an EMPTY tile has no kept pair, a FULL tile
//     no dropped pair, and no kept pair lies outside the row's key-tile range;
//   - exactness, for the families the analysis is symbolic on (causal,
//     bottom-right causal, windows, prefix-LM, block-diagonal, abs/min/max/
//     clamp bands, dilation): EMPTY iff no kept pair, FULL iff no dropped one.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/SpecInterpreter.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace mlir;
using namespace mlir::attn;

namespace {

// checkSpec returns a count, so it cannot use ASSERT_*: stop at the first
// failure with this instead.
#define REQUIRE(cond, message)                                                 \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ADD_FAILURE() << message;                                                \
      return -1;                                                               \
    }                                                                          \
  } while (false)

struct Loaded {
  std::unique_ptr<attnc::Driver> driver;
  OwningOpRef<ModuleOp> module;
  SpecOp spec() { return *module->getOps<SpecOp>().begin(); }
};

Loaded load(const std::string &name, const std::string &text,
            std::vector<std::pair<std::string, std::string>> defines = {}) {
  Loaded l;
  std::string errors;
  llvm::raw_string_ostream es(errors);
  l.driver = std::make_unique<attnc::Driver>(es);
  attnc::FrontendOptions fo;
  fo.defines = std::move(defines);
  l.module = l.driver->loadSpecText(name, text, fo);
  EXPECT_TRUE(l.module) << name << ": " << errors;
  if (l.module)
    EXPECT_TRUE(succeeded(l.driver->runSpecPipeline(*l.module))) << errors;
  return l;
}

/// Random data for masks that read inputs: sorted document ids, windows.
struct RandomInputs {
  std::map<std::string, std::vector<int64_t>> data;
  InputReader reader() {
    return [this](StringRef name, ArrayRef<int64_t> idx) -> std::optional<Scalar> {
      auto it = data.find(name.str());
      if (it == data.end() || idx.size() != 1 || idx[0] < 0 ||
          idx[0] >= int64_t(it->second.size()))
        return std::nullopt;
      return Scalar::ofInt(it->second[idx[0]]);
    };
  }
};

RandomInputs makeInputs(SpecOp spec, const ProblemSizes &s, std::mt19937 &rng) {
  RandomInputs in;
  if (ArrayAttr inputs = spec.getInputsAttr())
    for (Attribute a : inputs) {
      auto decl = cast<InputAttr>(a);
      auto dim = cast<StringAttr>(decl.getShape()[0]).getValue();
      int64_t n = dim == "LQ" ? s.LQ : dim == "LK" ? s.LK : s.HQ;
      std::vector<int64_t> v(n);
      if (dim == "HQ") { // per-head windows
        for (auto &x : v)
          x = std::uniform_int_distribution<int64_t>(1, 40)(rng);
      } else { // sorted document ids with runs of random length
        int64_t id = 0;
        for (auto &x : v) {
          if (std::uniform_int_distribution<int>(0, 9)(rng) == 0)
            ++id;
          x = id;
        }
      }
      in.data[decl.getName().str()] = v;
    }
  return in;
}

std::string printed(Attribute a) {
  std::string str;
  llvm::raw_string_ostream os(str);
  os << a;
  return str;
}

/// Checks one spec on `trials` random problems. Returns the number of
/// tiles checked.
int64_t checkSpec(const std::string &name, SpecOp spec, bool exact,
                  int trials, uint32_t seed) {
  std::mt19937 rng(seed);
  MaskAttr mask = spec.getMaskScheduleAttr();
  EXPECT_TRUE(mask) << name;
  if (!mask)
    return 0;
  int64_t checked = 0;
  auto len = [&] { return std::uniform_int_distribution<int64_t>(1, 300)(rng); };
  auto tile = [&] {
    static const int64_t sizes[] = {1, 2, 3, 7, 16, 32, 64};
    return sizes[std::uniform_int_distribution<int>(0, 6)(rng)];
  };
  for (int t = 0; t < trials; ++t) {
    ProblemSizes s;
    s.LQ = len();
    s.LK = std::uniform_int_distribution<int>(0, 3)(rng) == 0 ? s.LQ : len();
    s.HQ = 4;
    s.HKV = 2;
    s.h = std::uniform_int_distribution<int64_t>(0, 3)(rng);
    int64_t tq = tile(), tk = tile();
    RandomInputs inputs = makeInputs(spec, s, rng);
    InputReader reader = inputs.reader();
    SpecInterpreter interp(spec, s, reader);
    // Atoms that read inputs (ids, bounds) are classified from the data.
    IdsReader ids = [&](StringRef name, ArrayRef<int64_t> idx) -> std::optional<int64_t> {
      std::optional<Scalar> v = reader(name, idx);
      return v ? std::optional<int64_t>(v->i) : std::nullopt;
    };
    TileSchedule sched = computeSchedule(mask, s, tq, tk, &ids);
    // Brute force: which pairs are kept.
    std::vector<char> kept(s.LQ * s.LK);
    for (int64_t q = 0; q < s.LQ; ++q)
      for (int64_t kv = 0; kv < s.LK; ++kv) {
        std::optional<bool> m = interp.mask({q, kv});
        REQUIRE(m.has_value(), name << ": " << interp.error());
        kept[q * s.LK + kv] = *m;
      }
    for (int64_t qt = 0; qt < sched.numQ; ++qt) {
      auto [first, last] = sched.keyTileRange[qt];
      for (int64_t kt = 0; kt < sched.numK; ++kt) {
        bool anyKept = false, anyDropped = false;
        for (int64_t q = qt * tq; q < std::min((qt + 1) * tq, s.LQ); ++q)
          for (int64_t kv = kt * tk; kv < std::min((kt + 1) * tk, s.LK); ++kv)
            (kept[q * s.LK + kv] ? anyKept : anyDropped) = true;
        TileKind k = sched.at(qt, kt);
        std::string where = name + " LQ=" + std::to_string(s.LQ) +
                            " LK=" + std::to_string(s.LK) + " tile " +
                            std::to_string(tq) + "x" + std::to_string(tk) +
                            " at (" + std::to_string(qt) + "," +
                            std::to_string(kt) + ") h=" + std::to_string(s.h);
        if (k == TileKind::Empty)
          REQUIRE(!anyKept, "EMPTY tile keeps a pair: " << where);
        if (k == TileKind::Full)
          REQUIRE(!anyDropped, "FULL tile drops a pair: " << where);
        if (anyKept)
          REQUIRE(first <= kt && kt <= last,
                  "kept pair outside the key-tile range: " << where);
        if (exact) {
          TileKind want = !anyKept ? TileKind::Empty
                                   : (!anyDropped ? TileKind::Full
                                                  : TileKind::Partial);
          REQUIRE(tileKindChar(k) == tileKindChar(want),
                  "not exact: " << where << " got " << tileKindChar(k)
                                << " want " << tileKindChar(want)
                                << " formula " << printed(mask));
        }
        ++checked;
      }
    }
  }
  return checked;
}

std::string readFile(const std::filesystem::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void checkDirectory(const char *dir) {
  if (!std::filesystem::is_directory(dir))
    GTEST_SKIP() << dir << " does not exist";
  int files = 0;
  for (auto &entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".attn")
      continue;
    ++files;
    Loaded l = load(entry.path().string(), readFile(entry.path()));
    if (!l.module)
      continue;
    for (SpecOp spec : l.module->getOps<SpecOp>())
      EXPECT_GT(checkSpec(entry.path().filename().string(), spec,
                          /*exact=*/false, 12, 1234 + files),
                0);
  }
  EXPECT_GT(files, 0);
}

TEST(MaskSchedule, SharedSpecsAreSound) { checkDirectory(ATTNC_SHARED_SPECS_DIR); }
TEST(MaskSchedule, ExamplesAreSound) { checkDirectory(ATTNC_EXAMPLES_DIR); }

struct Family {
  const char *name;
  const char *mask;
};

// Masks on which the analysis must be exact.
const Family kExactFamilies[] = {
    {"full", "true"},
    {"causal", "q >= kv"},
    {"causal_strict", "q > kv"},
    {"anti_causal", "kv >= q"},
    {"bottom_right_causal", "q + (LK - LQ) >= kv"},
    {"sliding_window", "q >= kv && q - kv < 17"},
    {"symmetric_band", "abs(q - kv) <= 9"},
    {"band_min_max", "max(q, kv) - min(q, kv) < 12"},
    {"prefix_lm", "kv < 23 || q >= kv"},
    {"block_diagonal", "q / 16 == kv / 16"},
    {"block_causal", "q / 16 >= kv / 16"},
    {"not_causal", "!(q < kv)"},
    {"clamped_window", "kv >= clamp(q - 10, 0, LK - 21) && kv <= clamp(q - 10, 0, LK - 21) + 20"},
    {"strided_rows", "q / 3 * 3 >= kv"},
    {"cross_window", "q + (LK - LQ) >= kv && q + (LK - LQ) - kv < 40"},
    {"ternary", "q < 50 ? kv < 50 : kv >= 50"},
    {"row_test", "q >= 30 && q >= kv"},
    {"never", "q < 0"},
};

TEST(MaskSchedule, ExactOnAffineFamilies) {
  uint32_t seed = 99;
  for (const Family &f : kExactFamilies) {
    std::string text = std::string("attention ") + f.name + " {\n  mask = " +
                       f.mask + "\n}\n";
    Loaded l = load(f.name, text);
    if (!l.module)
      continue;
    EXPECT_GT(checkSpec(f.name, l.spec(), /*exact=*/true, 25, ++seed), 0);
  }
}

// Bounds read at q, per row: a length (exact: a key tile is EMPTY past
// every row's bound and FULL inside every row's) and a window that starts
// at a per-row distance before the diagonal (sound). makeInputs gives an
// [LQ] input sorted runs of small ids, scaled here to reach across tiles.
TEST(MaskSchedule, BoundsReadAtQ) {
  Loaded length = load("row_length", "attention row_length {\n"
                                     "  input stop: int[LQ]\n"
                                     "  mask = kv < stop[q] * 9 + 2\n}\n");
  ASSERT_TRUE(length.module);
  EXPECT_GT(checkSpec("row_length", length.spec(), /*exact=*/true, 25, 31), 0);
  Loaded window = load("row_window", "attention row_window {\n"
                                     "  input back: int[LQ]\n"
                                     "  mask = kv >= q - back[q] * 5 && kv <= q\n}\n");
  ASSERT_TRUE(window.module);
  EXPECT_GT(checkSpec("row_window", window.spec(), /*exact=*/false, 25, 32), 0);
}

// Dilation (`% constant` of kv) is decided per element, which is exact for
// tiles at least 2 wide in both directions: such a tile always holds both
// parities. The causal part must still make tiles above the diagonal EMPTY.
TEST(MaskSchedule, DilationSkipsEmptyTiles) {
  Loaded l = load("dilated", "attention dilated {\n"
                             "  mask = q >= kv && (q - kv) % 2 == 0\n}\n");
  ASSERT_TRUE(l.module);
  ProblemSizes s;
  s.LQ = s.LK = 256;
  TileSchedule sched = computeSchedule(l.spec().getMaskScheduleAttr(), s, 64, 64);
  for (int64_t qt = 0; qt < 4; ++qt)
    for (int64_t kt = 0; kt < 4; ++kt)
      EXPECT_EQ(tileKindChar(sched.at(qt, kt)), kt > qt ? '.' : '+');
  EXPECT_GT(checkSpec("dilated", l.spec(), false, 20, 7), 0);
}

// The row ranges are closed forms: for a causal mask the range of query
// tile i is [0, i] without looking at other tiles.
TEST(MaskSchedule, CausalKeyTileRanges) {
  Loaded l = load("causal", "attention causal { mask = q >= kv }");
  ASSERT_TRUE(l.module);
  ProblemSizes s;
  s.LQ = 1000;
  s.LK = 1000;
  TileSchedule sched = computeSchedule(l.spec().getMaskScheduleAttr(), s, 128, 64);
  for (int64_t qt = 0; qt < sched.numQ; ++qt) {
    int64_t lastRow = std::min<int64_t>((qt + 1) * 128, 1000) - 1;
    EXPECT_EQ(sched.keyTileRange[qt].first, 0);
    EXPECT_EQ(sched.keyTileRange[qt].second, lastRow / 64);
  }
}

// Params bound with -D change the formula.
TEST(MaskAnalysis, DefinesReachTheFormula) {
  Loaded l = load("w", "attention w {\n param window: int = 8\n"
                       " mask = q >= kv && q - kv < window\n}\n",
                  {{"window", "100"}});
  ASSERT_TRUE(l.module);
  std::string str;
  llvm::raw_string_ostream os(str);
  os << l.spec().getMaskScheduleAttr();
  EXPECT_EQ(str, "#attn.mask<all_of(kv_le \"q\", kv_ge \"q - 99\")>");
}

} // namespace
