//===- TileChoiceTest.cpp - The CPU tile choice and its tuned table -------===//
//
// TileChoice.cpp looks up CpuTileTable.inc (written by scripts/tune-tiles.sh).
// Checked here: every row is a tile the kernels accept (and, for the grid
// class, one that grid tiling accepts); the lookup by head dim and storage
// type; the class a spec falls in; explicit sizes overriding the table.
// CpuKernelTest.cpp runs the kernel of every row against the reference.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/TileChoice.h"
#include "attnc/Driver.h"
#include "attnc/Passes/GridSchedule.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <tuple>

using namespace attnc;
using namespace mlir::attn;
using CpuTiles = mlir::attn::TileSizes;
using runtime::DType;
namespace fs = std::filesystem;

namespace {

/// The rows of one path, class and compute type, by head dim.
std::map<int64_t, CpuTiles> rowsOf(CpuIsa isa, CpuTileClass cls, DType type) {
  std::map<int64_t, CpuTiles> rows;
  for (const CpuTileTableRow &r : cpuTileTable())
    if (r.isa == isa && r.cls == cls && r.type == type)
      rows[r.headDim] = r.tiles;
  return rows;
}

/// The paths the table has rows for.
std::set<CpuIsa> tablePaths() {
  std::set<CpuIsa> paths;
  for (const CpuTileTableRow &r : cpuTileTable())
    paths.insert(r.isa);
  return paths;
}

fs::path specPath(const std::string &name) {
  fs::path shared = fs::path(ATTNC_SHARED_SPECS_DIR) / (name + ".attn");
  return fs::exists(shared) ? shared : fs::path(ATTNC_EXAMPLES_DIR) / (name + ".attn");
}

struct LoadedSpec {
  std::string errors;
  llvm::raw_string_ostream errorStream{errors};
  Driver driver{errorStream};
  mlir::OwningOpRef<mlir::ModuleOp> module;
  mlir::attn::SpecOp op() { return *module->getOps<mlir::attn::SpecOp>().begin(); }
};

void load(LoadedSpec &s, const std::string &name,
          std::vector<std::pair<std::string, std::string>> defines = {}) {
  FrontendOptions fo;
  fo.defines = std::move(defines);
  s.module = s.driver.loadSpecFile(specPath(name).string(), fo);
  ASSERT_TRUE(s.module) << s.errors;
  ASSERT_TRUE(mlir::succeeded(s.driver.runSpecPipeline(*s.module))) << s.errors;
}

TEST(CpuTileTable, RowsAreValid) {
  ASSERT_FALSE(cpuTileTable().empty());
  for (CpuIsa isa : tablePaths()) {
    EXPECT_FALSE(rowsOf(isa, CpuTileClass::Rows, DType::F32).empty());
    EXPECT_FALSE(rowsOf(isa, CpuTileClass::Grid, DType::F32).empty());
  }
  std::set<std::tuple<CpuIsa, CpuTileClass, DType, int64_t>> seen;
  for (const CpuTileTableRow &r : cpuTileTable()) {
    SCOPED_TRACE("row D=" + std::to_string(r.headDim));
    EXPECT_TRUE(r.type == DType::F32 || r.type == DType::BF16);
    EXPECT_GT(r.headDim, 0);
    // The Compiler's limits (tiles live on the stack of the workers).
    EXPECT_GE(r.tiles.q, 1);
    EXPECT_LE(r.tiles.q, 256);
    EXPECT_GE(r.tiles.k, 1);
    EXPECT_LE(r.tiles.k, 256);
    // What chooseGridTiling needs of a grid tile: whole 8-column patches.
    if (r.cls == CpuTileClass::Grid) {
      EXPECT_EQ(r.tiles.q % 8, 0);
      EXPECT_GE(r.tiles.q, 16);
      EXPECT_GE(r.tiles.k, 8);
    }
    EXPECT_TRUE(seen.insert({r.isa, r.cls, r.type, r.headDim}).second) << "duplicate row";
  }
}

TEST(CpuTileTable, LookupByHeadDim) {
  for (CpuIsa isa : tablePaths())
    for (CpuTileClass cls : {CpuTileClass::Rows, CpuTileClass::Grid})
      for (DType type : {DType::F32, DType::BF16}) {
        std::map<int64_t, CpuTiles> rows = rowsOf(isa, cls, type);
        if (rows.empty())
          continue;
        int64_t below = 0;
        for (auto [d, tiles] : rows) {
          // Every D in (previous row, this row] gets this row.
          for (int64_t q : {below + 1, (below + 1 + d) / 2, d})
            EXPECT_EQ(tunedCpuTiles(cls, type, q, isa), tiles) << "D=" << q;
          below = d;
        }
        // Beyond the last row: the last row.
        EXPECT_EQ(tunedCpuTiles(cls, type, below + 1, isa), rows.rbegin()->second);
        EXPECT_EQ(tunedCpuTiles(cls, type, 4096, isa), rows.rbegin()->second);
        // Unknown head dim: the D = 128 lookup.
        EXPECT_EQ(tunedCpuTiles(cls, type, 0, isa), tunedCpuTiles(cls, type, 128, isa));
      }
  // A path with no rows of its own takes another path's, in the order
  // avx2, avx512, generic; the path that runs uses its own (or that one).
  for (CpuIsa isa : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512}) {
    CpuIsa used = cpuTileTablePath(isa);
    EXPECT_TRUE(tablePaths().count(used));
    if (tablePaths().count(isa))
      EXPECT_EQ(used, isa);
    else
      EXPECT_EQ(used, tablePaths().count(CpuIsa::Avx2) ? CpuIsa::Avx2 : CpuIsa::Avx512);
    for (int64_t d : {32, 64, 128, 256})
      EXPECT_EQ(tunedCpuTiles(CpuTileClass::Rows, DType::F32, d, isa),
                tunedCpuTiles(CpuTileClass::Rows, DType::F32, d, used));
  }
  for (int64_t d : {64, 128})
    EXPECT_EQ(tunedCpuTiles(CpuTileClass::Rows, DType::F32, d),
              tunedCpuTiles(CpuTileClass::Rows, DType::F32, d, attnc::runtime::activeCpuIsa()));
  // f16 storage computes in f32: the F32 rows.
  for (int64_t d : {16, 64, 100, 128, 256, 512})
    EXPECT_EQ(tunedCpuTiles(CpuTileClass::Rows, DType::F16, d),
              tunedCpuTiles(CpuTileClass::Rows, DType::F32, d));
  // bf16 without rows of its own would fall back to F32's.
  if (rowsOf(cpuTileTablePath(attnc::runtime::activeCpuIsa()), CpuTileClass::Rows, DType::BF16).empty())
    EXPECT_EQ(tunedCpuTiles(CpuTileClass::Rows, DType::BF16, 64),
              tunedCpuTiles(CpuTileClass::Rows, DType::F32, 64));
}

TEST(CpuTileChoice, ClassOfTheSpec) {
  for (int64_t d : {0, 32, 64, 128, 256}) {
    SCOPED_TRACE("headDim=" + std::to_string(d));
    DType storage = DType::F32;
    // natten2d on a 64-column grid: grid patches, with the Grid row's tiles.
    LoadedSpec natten;
    load(natten, "natten2d", {{"width", "64"}});
    CpuTiles g = chooseCpuTiles(natten.op(), storage, d);
    EXPECT_EQ(g, tunedCpuTiles(CpuTileClass::Grid, DType::F32, d));
    EXPECT_TRUE(mlir::attn::chooseGridTiling(natten.op(), g.q, g.k).has_value());
    // Masks without a grid view: the Rows row.
    for (const char *name : {"full", "causal", "sliding_window", "document"}) {
      LoadedSpec s;
      load(s, name);
      EXPECT_EQ(chooseCpuTiles(s.op(), storage, d), tunedCpuTiles(CpuTileClass::Rows, DType::F32, d))
          << name;
    }
    // bf16 storage: the bf16 rows.
    LoadedSpec causal;
    load(causal, "causal");
    EXPECT_EQ(chooseCpuTiles(causal.op(), DType::BF16, d),
              tunedCpuTiles(CpuTileClass::Rows, DType::BF16, d));
  }
}

TEST(CpuTileChoice, ExplicitSizesWin) {
  LoadedSpec causal;
  load(causal, "causal");
  EXPECT_EQ(chooseCpuTiles(causal.op(), DType::F32, 64, 24, 40), (CpuTiles{24, 40}));
  // Only one given: the other from the table.
  EXPECT_EQ(chooseCpuTiles(causal.op(), DType::F32, 64, 24, 0).q, 24);
  EXPECT_EQ(chooseCpuTiles(causal.op(), DType::F32, 64, 24, 0).k,
            tunedCpuTiles(CpuTileClass::Rows, DType::F32, 64).k);
  // A grid spec with a tile-q that grid tiling cannot use (not a multiple
  // of 8) gets the rows tiling with the given sizes.
  LoadedSpec natten;
  load(natten, "natten2d", {{"width", "64"}});
  CpuTiles t = chooseCpuTiles(natten.op(), DType::F32, 64, 20, 64);
  EXPECT_EQ(t, (CpuTiles{20, 64}));
  EXPECT_FALSE(mlir::attn::chooseGridTiling(natten.op(), t.q, t.k).has_value());
}

} // namespace
