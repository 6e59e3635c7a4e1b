//===- Show.cpp - attnc show: the mask and its tile schedule --------------===//
//
// Prints, per attention block, the mask formula of the analysis and the
// tile schedule, one character per (query tile, key tile): `.` EMPTY (the
// kernel skips it), `#` FULL (no mask code), `+` PARTIAL (mask per element).
// With --png it draws the element mask, evaluated by the reference
// interpreter, over the tile grid.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"
#include "attnc/Driver.h"
#include "attnc/PngWriter.h"

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/SpecInterpreter.h"
#include "llvm/Support/raw_ostream.h"

#include <iostream>

using namespace attnc;
using namespace mlir::attn;

namespace {
constexpr int64_t kMaxLength = int64_t(1) << 31;
constexpr int64_t kMaxPngElements = int64_t(4096) * 4096;
constexpr int64_t kMaxScheduleTiles = int64_t(1) << 24;

// Colours: kept pairs by tile kind, dropped pairs, tile grid.
constexpr uint32_t kKeptFull = 0x1f4e9a, kKeptPartial = 0x4a90d9,
                   kDroppedPartial = 0xffffff, kEmptyTile = 0xe4e4e4,
                   kGrid = 0xd03030;

/// Draws the element mask of one spec. Returns false with a message on
/// failure (an input-reading mask, a too-large picture, an I/O error).
bool drawPng(SpecOp spec, const ProblemSizes &sizes, const TileSchedule &s,
             const std::string &path) {
  if (sizes.LQ * sizes.LK > kMaxPngElements) {
    llvm::errs() << "attnc show: error: --png draws at most 4096x4096 "
                    "elements; use a smaller --lq/--lk\n";
    return false;
  }
  int64_t longest = std::max(sizes.LQ, sizes.LK);
  int scale = int(std::clamp<int64_t>(512 / longest, 1, 16));
  int width = int(sizes.LK * scale), height = int(sizes.LQ * scale);
  RgbImage image(width, height);
  SpecInterpreter interp(spec, sizes);
  for (int64_t q = 0; q < sizes.LQ; ++q)
    for (int64_t kv = 0; kv < sizes.LK; ++kv) {
      std::optional<bool> kept = interp.mask({q, kv});
      if (!kept) {
        llvm::errs() << "attnc show: error: cannot draw the mask of '"
                     << spec.getSymName() << "': " << interp.error()
                     << " (masks that read inputs have no picture without "
                        "their data)\n";
        return false;
      }
      TileKind k = s.at(q / s.tileQ, kv / s.tileK);
      uint32_t c = k == TileKind::Empty
                       ? kEmptyTile
                       : (*kept ? (k == TileKind::Full ? kKeptFull
                                                       : kKeptPartial)
                                : kDroppedPartial);
      if (k == TileKind::Empty && *kept)
        c = 0xff00ff; // would be a soundness bug: make it loud
      for (int dy = 0; dy < scale; ++dy)
        for (int dx = 0; dx < scale; ++dx)
          image.set(int(kv * scale + dx), int(q * scale + dy), c);
    }
  // Tile boundaries.
  for (int64_t kt = 1; kt < s.numK; ++kt)
    for (int y = 0; y < height; ++y)
      image.set(int(kt * s.tileK * scale), y, kGrid);
  for (int64_t qt = 1; qt < s.numQ; ++qt)
    for (int x = 0; x < width; ++x)
      image.set(x, int(qt * s.tileQ * scale), kGrid);
  std::optional<std::string> bytes = encodePng(image);
  if (!bytes) {
    llvm::errs() << "attnc show: error: PNG encoding failed\n";
    return false;
  }
  return writeOutputFile(path, *bytes, llvm::errs());
}
} // namespace

int attnc::runShow(const std::vector<std::string> &args) {
  std::string spec, png, name;
  int64_t lq = 0, lk = 0, tileQ = 64, tileK = 64;
  std::vector<std::string> defines;
  po::options_description options("attnc show SPEC.attn --lq N --lk N [options]");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&spec), "the .attn spec file ('-' for stdin)")
      ("lq", po::value(&lq), "number of queries LQ (required)")
      ("lk", po::value(&lk), "number of keys LK (required)")
      ("tile-q", po::value(&tileQ)->default_value(64), "query rows per tile")
      ("tile-k", po::value(&tileK)->default_value(64), "keys per tile")
      ("define,D", po::value(&defines)->composing(),
       "NAME=VALUE: override a param (repeatable)")
      ("name", po::value(&name), "show only the block NAME")
      ("png", po::value(&png), "also draw the element mask to this PNG file");
  po::variables_map vm;
  if (!parseCommandLine("show", args, options, vm))
    return 1;
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (spec.empty() || !vm.count("lq") || !vm.count("lk")) {
    llvm::errs() << "attnc show: error: needs SPEC, --lq and --lk\n";
    return 1;
  }
  if (lq <= 0 || lk <= 0 || lq > kMaxLength || lk > kMaxLength) {
    llvm::errs() << "attnc show: error: --lq and --lk must be in [1, 2^31]\n";
    return 1;
  }
  if (tileQ <= 0 || tileK <= 0 || tileQ > kMaxLength || tileK > kMaxLength) {
    llvm::errs() << "attnc show: error: --tile-q and --tile-k must be in "
                    "[1, 2^31]\n";
    return 1;
  }
  int64_t tiles = ((lq + tileQ - 1) / tileQ) * ((lk + tileK - 1) / tileK);
  if (tiles > kMaxScheduleTiles) {
    llvm::errs() << "attnc show: error: " << tiles
                 << " tiles is too many to print; use larger tiles\n";
    return 1;
  }
  FrontendOptions fo;
  fo.onlyName = name;
  if (!parseDefines(defines, fo))
    return 1;
  Driver driver(llvm::errs());
  mlir::OwningOpRef<mlir::ModuleOp> module = driver.loadSpecFile(spec, fo);
  if (!module || failed(driver.runSpecPipeline(*module)))
    return 1;

  if (!png.empty() &&
      std::distance(module->getOps<SpecOp>().begin(),
                    module->getOps<SpecOp>().end()) != 1) {
    llvm::errs() << "attnc show: error: --png draws one block; pick it with "
                    "--name\n";
    return 1;
  }
  ProblemSizes sizes;
  sizes.LQ = lq;
  sizes.LK = lk;
  llvm::raw_ostream &os = llvm::outs();
  for (SpecOp op : module->getOps<SpecOp>()) {
    MaskAttr mask = op.getMaskScheduleAttr();
    TileSchedule s = computeSchedule(mask, sizes, tileQ, tileK);
    int64_t counts[3] = {0, 0, 0};
    for (TileKind k : s.kinds)
      ++counts[static_cast<int>(k)];
    os << "attention " << op.getSymName() << ": LQ=" << lq << " LK=" << lk
       << ", tiles " << tileQ << "x" << tileK << " (" << s.numQ << "x"
       << s.numK << ")\n";
    os << "mask: " << mask << "\n";
    os << "schedule ('.' empty, '#' full, '+' partial):\n";
    for (int64_t qt = 0; qt < s.numQ; ++qt) {
      for (int64_t kt = 0; kt < s.numK; ++kt)
        os << tileKindChar(s.at(qt, kt));
      os << "\n";
    }
    os << "tiles: " << counts[0] << " empty, " << counts[1] << " full, "
       << counts[2] << " partial\n";
    if (!png.empty() && !drawPng(op, sizes, s, png))
      return 1;
  }
  return 0;
}
