//===- ColumnScheduleTest.cpp - The column view against brute force -------===//
//
// The column view of the mask analysis (analyzeMaskColumns, the spec's
// mask_schedule_columns, evaluated by computeColumnSchedule): per key tile,
// the query tiles it meets. For every spec (the examples, the shared
// reference specs, and mask families written here) over random sizes
// (odd, LQ != LK, tiles 16/32/64 that rarely divide them):
//   (a) soundness against the SpecInterpreter: a tile the column view calls
//       EMPTY has no kept pair, FULL no dropped pair;
//   (b) where every atom is affine: the column schedule is the transpose of
//       the row schedule (computeSchedule), tile for tile;
//   (c) each key tile's query-tile range contains every kept pair's query
//       tile and, for causal and sliding windows, is tight.
// Document-ids masks are checked with an IdsReader (the pre-pass's data).
// The generated-code side (ScheduleEmitter.h, unchanged, with the symbols
// LQ / LK exchanged) is folded to constants and compared with the host.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Passes/ScheduleEmitter.h"
#include "attnc/Reference/SpecInterpreter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace mlir;
using namespace mlir::attn;

namespace {

struct Loaded {
  std::unique_ptr<attnc::Driver> driver;
  OwningOpRef<ModuleOp> module;
  SpecOp spec() { return *module->getOps<SpecOp>().begin(); }
};

Loaded load(const std::string &name, const std::string &text) {
  Loaded l;
  std::string errors;
  llvm::raw_string_ostream es(errors);
  l.driver = std::make_unique<attnc::Driver>(es);
  l.module = l.driver->loadSpecText(name, text, attnc::FrontendOptions());
  EXPECT_TRUE(l.module) << name << ": " << errors;
  if (l.module)
    EXPECT_TRUE(succeeded(l.driver->runSpecPipeline(*l.module))) << errors;
  return l;
}

std::string printed(Attribute a) {
  std::string str;
  llvm::raw_string_ostream os(str);
  os << a;
  return str;
}

/// Int input data (document ids, per-head windows) for both oracles: the
/// interpreter's InputReader and the schedule's IdsReader read the same
/// vectors. Reads out of range fail in both.
struct Inputs {
  std::map<std::string, std::vector<int64_t>> data;
  std::set<std::string> bools; // bool inputs: odd values are true
  std::optional<int64_t> get(StringRef name, ArrayRef<int64_t> idx) const {
    auto it = data.find(name.str());
    if (it == data.end() || idx.size() != 1 || idx[0] < 0 ||
        idx[0] >= int64_t(it->second.size()))
      return std::nullopt;
    return it->second[idx[0]];
  }
  InputReader reader() const {
    return [this](StringRef n, ArrayRef<int64_t> i) -> std::optional<Scalar> {
      if (std::optional<int64_t> v = get(n, i))
        return bools.count(n.str()) ? Scalar::ofBool(*v % 2 != 0)
                                    : Scalar::ofInt(*v);
      return std::nullopt;
    };
  }
  IdsReader ids() const {
    return [this](StringRef n, ArrayRef<int64_t> i) { return get(n, i); };
  }
};

/// Sorted ids with runs of random length (each id in [first, last] occurs,
/// so two blocks whose id ranges meet share an id).
std::vector<int64_t> sortedIds(int64_t n, std::mt19937 &rng) {
  std::vector<int64_t> v(n);
  int64_t id = 0;
  for (auto &x : v) {
    if (std::uniform_int_distribution<int>(0, 9)(rng) == 0)
      ++id;
    x = id;
  }
  return v;
}

/// Random data for every rank-1 int input of `spec`; with `sameIds`, every
/// LQ- or LK-long input gets the same id sequence (needs LQ == LK).
Inputs makeInputs(SpecOp spec, const ProblemSizes &s, std::mt19937 &rng,
                  bool sameIds = false) {
  Inputs in;
  std::vector<int64_t> shared = sortedIds(s.LQ, rng);
  if (ArrayAttr inputs = spec.getInputsAttr())
    for (Attribute a : inputs) {
      auto decl = cast<InputAttr>(a);
      auto dim = dyn_cast<StringAttr>(decl.getShape()[0]);
      if (!dim || decl.getRank() != 1)
        continue;
      if (decl.getElementType().isInteger(1))
        in.bools.insert(decl.getName().str());
      if (dim.getValue() == "HQ") { // per-head windows
        std::vector<int64_t> v(s.HQ);
        for (auto &x : v)
          x = std::uniform_int_distribution<int64_t>(1, 40)(rng);
        in.data[decl.getName().str()] = v;
      } else if (dim.getValue() == "LQ" || dim.getValue() == "LK") {
        int64_t n = dim.getValue() == "LQ" ? s.LQ : s.LK;
        in.data[decl.getName().str()] = sameIds ? shared : sortedIds(n, rng);
      }
    }
  return in;
}

/// Whether every atom of `m` is affine (no opaque, no ids_eq).
bool allAffine(MaskAttr m) {
  if (m.getKind() == MaskKind::opaque || m.getKind() == MaskKind::ids_eq)
    return false;
  if (m.getKind() == MaskKind::all_of || m.getKind() == MaskKind::any_of)
    for (Attribute t : m.getTerms())
      if (!allAffine(cast<MaskAttr>(t)))
        return false;
  return true;
}

struct Options {
  int trials = 10;
  uint32_t seed = 1;
  bool tight = false;      // (c): first and last tile of each hull kept
  bool exactEmpty = false; // EMPTY iff no kept pair (ids tests)
  bool sameIds = false;    // LQ == LK, one id sequence for every input
  bool withIds = true;     // give the schedule an IdsReader
};

/// Checks the column view of `spec` on random problems; returns the number
/// of tiles checked, or -1 after the first failure.
int64_t checkColumns(const std::string &name, SpecOp spec, const Options &o) {
  std::mt19937 rng(o.seed);
  MaskAttr rowsMask = spec.getMaskScheduleAttr();
  MaskAttr columns = spec.getMaskScheduleColumnsAttr();
  EXPECT_TRUE(rowsMask && columns) << name << ": not analysed";
  if (!rowsMask || !columns)
    return -1;
  EXPECT_EQ(columns, analyzeMaskColumns(spec)) << name;
  bool affine = allAffine(rowsMask) && allAffine(columns);
  static const int64_t kTiles[] = {16, 32, 64};
  auto len = [&] { return 2 * std::uniform_int_distribution<int64_t>(0, 110)(rng) + 1; };
  int64_t checked = 0;
  for (int t = 0; t < o.trials; ++t) {
    ProblemSizes s;
    s.LQ = len();
    s.LK = o.sameIds ? s.LQ : len();
    s.HQ = 4;
    s.HKV = 2;
    s.h = std::uniform_int_distribution<int64_t>(0, 3)(rng);
    int64_t tq = kTiles[std::uniform_int_distribution<int>(0, 2)(rng)];
    int64_t tk = kTiles[std::uniform_int_distribution<int>(0, 2)(rng)];
    Inputs inputs = makeInputs(spec, s, rng, o.sameIds);
    IdsReader ids = inputs.ids();
    SpecInterpreter interp(spec, s, inputs.reader());
    TileSchedule col = computeColumnSchedule(columns, s, tq, tk,
                                             o.withIds ? &ids : nullptr);
    // Atoms whose bounds read inputs (window[h]) need the reader in both
    // views.
    TileSchedule row = computeSchedule(rowsMask, s, tq, tk,
                                       o.withIds ? &ids : nullptr);
    std::string problem = name + " LQ=" + std::to_string(s.LQ) + " LK=" +
                          std::to_string(s.LK) + " tiles " + std::to_string(tq) +
                          "x" + std::to_string(tk) + " h=" + std::to_string(s.h) +
                          " columns " + printed(columns);
    // The layout: [key tile][query tile].
    EXPECT_EQ(col.numQ, row.numK) << problem;
    EXPECT_EQ(col.numK, row.numQ) << problem;
    EXPECT_EQ(col.tileQ, tk) << problem;
    EXPECT_EQ(col.tileK, tq) << problem;
    if (col.numQ != row.numK || col.numK != row.numQ)
      return -1;
    std::vector<char> kept(s.LQ * s.LK);
    for (int64_t q = 0; q < s.LQ; ++q)
      for (int64_t kv = 0; kv < s.LK; ++kv) {
        std::optional<bool> m = interp.mask({q, kv});
        EXPECT_TRUE(m.has_value()) << problem << ": " << interp.error();
        if (!m)
          return -1;
        kept[q * s.LK + kv] = *m;
      }
    for (int64_t kt = 0; kt < col.numQ; ++kt) {
      auto [first, last] = col.keyTileRange[kt];
      for (int64_t qt = 0; qt < col.numK; ++qt) {
        bool anyKept = false, anyDropped = false;
        for (int64_t q = qt * tq; q < std::min((qt + 1) * tq, s.LQ); ++q)
          for (int64_t kv = kt * tk; kv < std::min((kt + 1) * tk, s.LK); ++kv)
            (kept[q * s.LK + kv] ? anyKept : anyDropped) = true;
        TileKind k = col.at(kt, qt);
        std::string where = problem + " at key tile " + std::to_string(kt) +
                            ", query tile " + std::to_string(qt) + ": " +
                            tileKindChar(k);
        bool ok = true;
        ok &= !(k == TileKind::Empty && anyKept);
        EXPECT_FALSE(k == TileKind::Empty && anyKept) << "EMPTY keeps a pair: " << where;
        ok &= !(k == TileKind::Full && anyDropped);
        EXPECT_FALSE(k == TileKind::Full && anyDropped) << "FULL drops a pair: " << where;
        bool inHull = first <= qt && qt <= last;
        ok &= k == TileKind::Empty || inHull;
        EXPECT_TRUE(k == TileKind::Empty || inHull) << "outside the hull: " << where;
        if (o.exactEmpty) {
          ok &= (k == TileKind::Empty) == !anyKept;
          EXPECT_EQ(k == TileKind::Empty, !anyKept) << "EMPTY not exact: " << where;
        }
        if (affine) {
          ok &= row.at(qt, kt) == k;
          EXPECT_EQ(tileKindChar(row.at(qt, kt)), tileKindChar(k))
              << "not the transpose of the row schedule " << printed(rowsMask)
              << ": " << where;
        }
        if (!ok)
          return -1;
        ++checked;
      }
      if (o.tight && first <= last) {
        EXPECT_NE(col.at(kt, first), TileKind::Empty) << problem << " key tile " << kt;
        EXPECT_NE(col.at(kt, last), TileKind::Empty) << problem << " key tile " << kt;
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
    for (SpecOp spec : l.module->getOps<SpecOp>()) {
      Options o;
      o.seed = 4321 + files;
      EXPECT_GT(checkColumns(entry.path().filename().string(), spec, o), 0);
    }
  }
  EXPECT_GT(files, 0);
}

TEST(ColumnSchedule, ExamplesAreSound) { checkDirectory(ATTNC_EXAMPLES_DIR); }
TEST(ColumnSchedule, SharedSpecsAreSound) { checkDirectory(ATTNC_SHARED_SPECS_DIR); }

struct Family {
  const char *name;
  const char *mask;
  bool tight;
};

// Affine masks: the column schedule must be the transpose of the row one.
const Family kAffineFamilies[] = {
    {"causal", "q >= kv", true},
    {"sliding_window", "q >= kv && q - kv < 37", true},
    {"prefix_lm", "kv < 23 || q >= kv", false},
    {"block_diagonal", "q / 16 == kv / 16", false},
    {"block_causal", "q / 24 >= kv / 24", false},
    {"bottom_right_causal", "q + (LK - LQ) >= kv", false},
    {"cross_window", "q + (LK - LQ) >= kv && q + (LK - LQ) - kv < 40", false},
    {"symmetric_band", "abs(q - kv) <= 9", false},
    {"row_test", "q >= 30 && q >= kv", false},
    {"clamped_window",
     "kv >= clamp(q - 10, 0, LK - 21) && kv <= clamp(q - 10, 0, LK - 21) + 20", false},
};

TEST(ColumnSchedule, TransposeOfRowScheduleOnAffineMasks) {
  uint32_t seed = 7;
  for (const Family &f : kAffineFamilies) {
    Loaded l = load(f.name, std::string("attention ") + f.name + " {\n  mask = " +
                                f.mask + "\n}\n");
    if (!l.module)
      continue;
    EXPECT_TRUE(allAffine(l.spec().getMaskScheduleColumnsAttr()))
        << f.name << ": " << printed(l.spec().getMaskScheduleColumnsAttr());
    Options o;
    o.trials = 20;
    o.seed = ++seed;
    o.tight = f.tight;
    EXPECT_GT(checkColumns(f.name, l.spec(), o), 0);
  }
}

// The ranges are closed forms: for a causal mask the queries of key tile j
// start at the query tile of its first key and run to the last query tile.
TEST(ColumnSchedule, CausalQueryTileRanges) {
  Loaded l = load("causal", "attention causal { mask = q >= kv }");
  ASSERT_TRUE(l.module);
  ProblemSizes s;
  s.LQ = 1001;
  s.LK = 777;
  TileSchedule col = computeColumnSchedule(l.spec().getMaskScheduleColumnsAttr(),
                                           s, /*tileQ=*/64, /*tileK=*/32);
  ASSERT_EQ(col.numQ, (777 + 31) / 32);
  ASSERT_EQ(col.numK, (1001 + 63) / 64);
  for (int64_t kt = 0; kt < col.numQ; ++kt) {
    EXPECT_EQ(col.keyTileRange[kt].first, kt * 32 / 64) << kt;
    EXPECT_EQ(col.keyTileRange[kt].second, col.numK - 1) << kt;
  }
}

// Bottom-right causal cross attention with LQ < LK: the first LK - LQ keys
// are seen by every query, key k by the queries q >= k - (LK - LQ).
TEST(ColumnSchedule, BottomRightCrossQueryRanges) {
  Loaded l = load("br", "attention br { mask = q + (LK - LQ) >= kv }");
  ASSERT_TRUE(l.module);
  ProblemSizes s;
  s.LQ = 100;
  s.LK = 300;
  TileSchedule col = computeColumnSchedule(l.spec().getMaskScheduleColumnsAttr(),
                                           s, /*tileQ=*/16, /*tileK=*/16);
  for (int64_t kt = 0; kt < col.numQ; ++kt) {
    int64_t firstQuery = std::max<int64_t>(kt * 16 - 200, 0);
    EXPECT_EQ(col.keyTileRange[kt].first, firstQuery / 16) << kt;
    EXPECT_EQ(col.keyTileRange[kt].second, 6) << kt;
  }
}

/// The column schedule as the generated code computes it: emitRowBlock and
/// emitTileKind (ScheduleEmitter.h) with the symbols of transposedSizes,
/// for every key tile and every query tile, in one function whose results
/// the canonicalizer folds to constants. Per key tile: hullLo, hullHi, then
/// the kinds of all query tiles (kTileEmpty / kTileFull / kTilePartial).
std::vector<int64_t> emittedColumns(MLIRContext *ctx, MaskAttr columns,
                                    const ProblemSizes &s, int64_t tq,
                                    int64_t tk) {
  ctx->loadDialect<arith::ArithDialect, func::FuncDialect>();
  Location loc = UnknownLoc::get(ctx);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module->getBody());
  int64_t numK = (s.LK + tk - 1) / tk, numQ = (s.LQ + tq - 1) / tq;
  SmallVector<Type> results(numK * (2 + numQ), b.getI64Type());
  auto func = func::FuncOp::create(b, loc, "columns",
                                   FunctionType::get(ctx, {}, results));
  b.setInsertionPointToStart(func.addEntryBlock());
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, loc, v, 64);
  };
  SmallVector<Value> syms;
  for (int64_t v : transposedSizes(s).symbols())
    syms.push_back(c(v));
  SmallVector<Value> out;
  for (int64_t kt = 0; kt < numK; ++kt) {
    int64_t k0 = kt * tk, k1 = std::min(k0 + tk, s.LK) - 1;
    EmittedRows rows = emitRowBlock(b, loc, columns, c(k0), c(k1), syms);
    out.push_back(rows.hullLo);
    out.push_back(rows.hullHi);
    for (int64_t qt = 0; qt < numQ; ++qt) {
      int64_t q0 = qt * tq, q1 = std::min(q0 + tq, s.LQ) - 1;
      out.push_back(emitTileKind(b, loc, columns, rows, c(q0), c(q1)));
    }
  }
  func::ReturnOp::create(b, loc, out);
  PassManager pm(ctx);
  pm.addPass(createCanonicalizerPass());
  if (failed(pm.run(*module)))
    return {};
  std::vector<int64_t> values;
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  for (Value v : ret.getOperands()) {
    IntegerAttr a;
    if (auto cst = v.getDefiningOp<arith::ConstantOp>())
      a = dyn_cast<IntegerAttr>(cst.getValue());
    if (!a)
      return {}; // not folded
    values.push_back(a.getInt());
  }
  return values;
}

// The schedule emitter needs nothing new for the column view: with LQ and
// LK exchanged in its symbols it computes computeColumnSchedule's hulls and
// kinds, tile for tile.
TEST(ColumnSchedule, EmitterWithExchangedSizesMatchesHost) {
  std::mt19937 rng(2024);
  static const int64_t kTiles[] = {16, 32, 64};
  for (const Family &f : kAffineFamilies) {
    Loaded l = load(f.name, std::string("attention ") + f.name + " {\n  mask = " +
                                f.mask + "\n}\n");
    ASSERT_TRUE(l.module);
    MaskAttr columns = l.spec().getMaskScheduleColumnsAttr();
    for (int t = 0; t < 3; ++t) {
      ProblemSizes s;
      s.LQ = std::uniform_int_distribution<int64_t>(1, 150)(rng);
      s.LK = std::uniform_int_distribution<int64_t>(1, 150)(rng);
      int64_t tq = kTiles[std::uniform_int_distribution<int>(0, 2)(rng)];
      int64_t tk = kTiles[std::uniform_int_distribution<int>(0, 2)(rng)];
      std::string where = std::string(f.name) + " LQ=" + std::to_string(s.LQ) +
                          " LK=" + std::to_string(s.LK) + " tiles " +
                          std::to_string(tq) + "x" + std::to_string(tk);
      std::vector<int64_t> got =
          emittedColumns(l.module->getContext(), columns, s, tq, tk);
      TileSchedule col = computeColumnSchedule(columns, s, tq, tk);
      ASSERT_EQ(got.size(), size_t(col.numQ * (2 + col.numK)))
          << where << ": the emitted schedule did not fold";
      size_t i = 0;
      for (int64_t kt = 0; kt < col.numQ; ++kt) {
        int64_t k0 = kt * tk, k1 = std::min(k0 + tk, s.LK) - 1;
        RowBlock rows = evaluateRows(columns, transposedSizes(s), k0, k1);
        EXPECT_EQ(got[i++], rows.hullLo) << where << " key tile " << kt;
        EXPECT_EQ(got[i++], rows.hullHi) << where << " key tile " << kt;
        for (int64_t qt = 0; qt < col.numK; ++qt) {
          int64_t want = col.at(kt, qt) == TileKind::Empty  ? kTileEmpty
                         : col.at(kt, qt) == TileKind::Full ? kTileFull
                                                            : kTilePartial;
          EXPECT_EQ(got[i++], want) << where << " key tile " << kt
                                    << ", query tile " << qt;
        }
      }
    }
  }
}

// Document ids through the IdsReader: the transposed ids_eq atom reads the
// key-side input at the key tile and the query-side one at the queries.
// Ids are sorted with every id of a range present, so a pure document mask
// is exact (EMPTY iff no kept pair) for any LQ, LK; with causal, exact
// when both sides hold the same ids.
TEST(ColumnSchedule, DocumentIdsWithReader) {
  Loaded pure = load("doc", "attention doc {\n input dq: int[LQ]\n"
                            " input dk: int[LK]\n mask = dq[q] == dk[kv]\n}\n");
  ASSERT_TRUE(pure.module);
  EXPECT_EQ(printed(pure.spec().getMaskScheduleColumnsAttr()),
            "#attn.mask<ids_eq \"dk\"[q] \"dq\"[kv]>");
  Options o;
  o.trials = 20;
  o.seed = 77;
  o.exactEmpty = true;
  EXPECT_GT(checkColumns("doc", pure.spec(), o), 0);

  Loaded causal = load("doc_causal", readFile(std::filesystem::path(ATTNC_EXAMPLES_DIR) /
                                              "document.attn"));
  ASSERT_TRUE(causal.module);
  o.seed = 78;
  o.sameIds = true;
  EXPECT_GT(checkColumns("document.attn", causal.spec(), o), 0);
}

// A bound read at kv, q >= first[kv] (each key visible from its own first
// query on): the row view cannot solve it for kv (opaque), but transposed
// it bounds the column view's kv (the query) by a read at its q (the key),
// whose min and max over a key tile the schedule scans. Exact: a query
// tile is EMPTY below every key's first query, FULL above every key's.
TEST(ColumnSchedule, BoundReadAtKey) {
  Loaded l = load("first", "attention first {\n input first: int[LK]\n"
                           " mask = q >= first[kv] * 7\n}\n");
  ASSERT_TRUE(l.module);
  EXPECT_EQ(printed(l.spec().getMaskScheduleAttr()), "#attn.mask<opaque>");
  EXPECT_EQ(printed(l.spec().getMaskScheduleColumnsAttr()),
            "#attn.mask<kv_ge \"r0 * 7\" reads(\"first\"[q])>");
  Options o;
  o.trials = 20;
  o.seed = 79;
  o.exactEmpty = true;
  EXPECT_GT(checkColumns("first", l.spec(), o), 0);
}

// Without an IdsReader the ids atoms classify like opaque: never EMPTY by
// ids alone, still sound.
TEST(ColumnSchedule, DocumentIdsWithoutReaderAreSound) {
  Loaded l = load("doc", "attention doc {\n input dq: int[LQ]\n"
                         " input dk: int[LK]\n mask = dq[q] == dk[kv]\n}\n");
  ASSERT_TRUE(l.module);
  Options o;
  o.withIds = false;
  EXPECT_GT(checkColumns("doc", l.spec(), o), 0);
  ProblemSizes s;
  s.LQ = 50;
  s.LK = 70;
  TileSchedule col = computeColumnSchedule(l.spec().getMaskScheduleColumnsAttr(),
                                           s, 16, 32);
  for (TileKind k : col.kinds)
    EXPECT_EQ(k, TileKind::Partial);
}

TEST(ColumnSchedule, TransposedSizes) {
  ProblemSizes s;
  s.B = 3;
  s.HQ = 8;
  s.HKV = 2;
  s.LQ = 17;
  s.LK = 45;
  s.D = 32;
  s.DV = 48;
  s.b = 2;
  s.h = 5;
  ProblemSizes t = transposedSizes(s);
  EXPECT_EQ(t.LQ, 45);
  EXPECT_EQ(t.LK, 17);
  EXPECT_EQ(t.B, 3);
  EXPECT_EQ(t.HQ, 8);
  EXPECT_EQ(t.HKV, 2);
  EXPECT_EQ(t.D, 32);
  EXPECT_EQ(t.DV, 48);
  EXPECT_EQ(t.b, 2);
  EXPECT_EQ(t.h, 5);
  EXPECT_EQ(t.hkv(), s.hkv());
  EXPECT_EQ(t.hkv(), 1);
}

// analyzeMaskColumns works on a copy: the spec's regions and attributes are
// unchanged, and the row formula of the spec is still the same.
TEST(ColumnSchedule, AnalysisLeavesTheSpecAlone) {
  Loaded l = load("br", "attention br {\n input dq: int[LQ]\n input dk: int[LK]\n"
                        " mask = q + (LK - LQ) >= kv && dq[q] == dk[kv]\n}\n");
  ASSERT_TRUE(l.module);
  std::string before;
  llvm::raw_string_ostream bs(before);
  l.module->print(bs);
  MaskAttr columns = analyzeMaskColumns(l.spec());
  EXPECT_EQ(printed(columns),
            "#attn.mask<all_of(kv_ge \"q - LQ + LK\", ids_eq \"dk\"[q] \"dq\"[kv])>");
  std::string after;
  llvm::raw_string_ostream as(after);
  l.module->print(as);
  EXPECT_EQ(before, after);
  EXPECT_EQ(analyzeMask(l.spec()), l.spec().getMaskScheduleAttr());
}

} // namespace
