//===- Show.cpp - attnc show: the mask and its tile schedule --------------===//
//
// Prints, per attention block, the mask formula of the analysis and the
// tile schedule, one character per (query tile, key tile): `.` EMPTY (the
// kernel skips it), `#` FULL (no mask code), `+` PARTIAL (mask per element).
// With --input NAME=FILE.npy (masks that read inputs, e.g. document ids)
// it also prints the schedule those inputs give, each tile the analysis
// left PARTIAL evaluated element by element. With --png it draws the
// element mask, evaluated by the reference interpreter, over the tile grid.
// Every argument is checked before anything is printed. Inputs are read
// for batch 0 and head 0.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"
#include "attnc/Driver.h"
#include "attnc/PngWriter.h"
#include "bench-common/BenchCommon.h"

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/SpecInterpreter.h"
#include "attnc/Runtime/Npy.h"
#include "llvm/Support/raw_ostream.h"

#include <iostream>

using namespace attnc;
using namespace mlir::attn;
using attnc::bench::inputReader;
using attnc::bench::NamedTensors;
using attnc::runtime::DType;

namespace {
constexpr int64_t kMaxLength = int64_t(1) << 31;
constexpr int64_t kMaxPngElements = int64_t(4096) * 4096;
constexpr int64_t kMaxScheduleTiles = int64_t(1) << 24;
/// The data schedule evaluates the mask per element of the PARTIAL tiles.
constexpr int64_t kMaxDataElements = int64_t(1) << 26;

// Colours: kept pairs by tile kind, dropped pairs, tile grid.
constexpr uint32_t kKeptFull = 0x1f4e9a, kKeptPartial = 0x4a90d9,
                   kDroppedPartial = 0xffffff, kEmptyTile = 0xe4e4e4,
                   kGrid = 0xd03030;

/// Draws the element mask of one spec. Returns false with a message on
/// failure (an input-reading mask, a too-large picture, an I/O error).
bool drawPng(SpecOp spec, const ProblemSizes &sizes, const TileSchedule &s,
             const InputReader &inputs, const std::string &path) {
  int64_t longest = std::max(sizes.LQ, sizes.LK);
  int scale = int(std::clamp<int64_t>(512 / longest, 1, 16));
  int width = int(sizes.LK * scale), height = int(sizes.LQ * scale);
  RgbImage image(width, height);
  SpecInterpreter interp(spec, sizes, inputs);
  for (int64_t q = 0; q < sizes.LQ; ++q)
    for (int64_t kv = 0; kv < sizes.LK; ++kv) {
      std::optional<bool> kept = interp.mask({q, kv});
      if (!kept) {
        reportError("cannot draw the mask of '" + spec.getSymName() +
                    "': " + interp.error());
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
    reportError("PNG encoding failed");
    return false;
  }
  return writeOutputFile(path, *bytes, llvm::errs());
}
/// Whether the mask region of \p spec reads an input.
bool maskReadsInputs(SpecOp spec) {
  bool reads = false;
  spec.getMask().walk([&](ReadOp) { reads = true; });
  return reads;
}

/// The schedule the inputs give: each PARTIAL tile of \p s evaluated per
/// element into EMPTY (no pair kept), FULL (every pair kept) or PARTIAL.
/// Returns false after printing the interpreter's error.
bool refineWithData(SpecOp spec, const ProblemSizes &sizes,
                    const InputReader &inputs, TileSchedule &s) {
  SpecInterpreter interp(spec, sizes, inputs);
  for (int64_t qt = 0; qt < s.numQ; ++qt)
    for (int64_t kt = 0; kt < s.numK; ++kt) {
      if (s.at(qt, kt) != TileKind::Partial)
        continue;
      int64_t kept = 0, total = 0;
      for (int64_t q = qt * s.tileQ; q < std::min(sizes.LQ, (qt + 1) * s.tileQ); ++q)
        for (int64_t kv = kt * s.tileK; kv < std::min(sizes.LK, (kt + 1) * s.tileK);
             ++kv, ++total) {
          std::optional<bool> m = interp.mask({q, kv});
          if (!m) {
            reportError("'" + spec.getSymName() + "': " + interp.error());
            return false;
          }
          kept += *m;
        }
      s.kinds[size_t(qt * s.numK + kt)] = kept == 0       ? TileKind::Empty
                                          : kept == total ? TileKind::Full
                                                          : TileKind::Partial;
    }
  return true;
}

/// Prints one block's schedule grid and its tile counts under \p title.
void printGrid(llvm::raw_ostream &os, const TileSchedule &s,
               llvm::StringRef title) {
  int64_t counts[3] = {0, 0, 0};
  for (TileKind k : s.kinds)
    ++counts[static_cast<int>(k)];
  os << title << " ('.' empty, '#' full, '+' partial):\n";
  for (int64_t qt = 0; qt < s.numQ; ++qt) {
    for (int64_t kt = 0; kt < s.numK; ++kt)
      os << tileKindChar(s.at(qt, kt));
    os << "\n";
  }
  os << "tiles: " << counts[0] << " empty, " << counts[1] << " full, "
     << counts[2] << " partial\n";
}

/// The flags of attnc show.
struct ShowFlags {
  std::string spec, png, name;
  int64_t lq = 0, lk = 0, tileQ = 64, tileK = 64;
  std::vector<std::string> defines, inputs, importDirs;
};

int fail(const std::string &message) { return reportError(message); }

/// The checks that need no spec. Returns 0 or fail's 1.
int checkSizes(const ShowFlags &f) {
  if (f.lq <= 0 || f.lk <= 0 || f.lq > kMaxLength || f.lk > kMaxLength)
    return fail("--lq and --lk must be in [1, 2^31]");
  if (f.tileQ <= 0 || f.tileK <= 0 || f.tileQ > kMaxLength ||
      f.tileK > kMaxLength)
    return fail("--tile-q and --tile-k must be in [1, 2^31]");
  int64_t tiles =
      ((f.lq + f.tileQ - 1) / f.tileQ) * ((f.lk + f.tileK - 1) / f.tileK);
  if (tiles > kMaxScheduleTiles)
    return fail(std::to_string(tiles) +
                " tiles is too many to print; use larger tiles");
  if (!f.png.empty() && f.lq * f.lk > kMaxPngElements)
    return fail("--png draws at most 4096x4096 elements; use a smaller "
                "--lq/--lk");
  if (!f.inputs.empty() && f.lq * f.lk > kMaxDataElements)
    return fail("--input evaluates the mask per element, at most 2^26 "
                "elements; use a smaller --lq/--lk");
  return 0;
}

/// Reads the --input files and checks them against the declarations of
/// the blocks in \p module (name, element type, rank). Returns 0 or 1.
int loadInputs(const ShowFlags &f, mlir::ModuleOp module,
               NamedTensors &inputs) {
  for (const std::string &arg : f.inputs) {
    size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
      return fail("--input " + arg + ": expected NAME=FILE.npy");
    std::string name = arg.substr(0, eq);
    for (const auto &[n, t] : inputs)
      if (n == name)
        return fail("--input " + name + " is given twice");
    InputAttr decl;
    for (SpecOp op : module.getOps<SpecOp>())
      if (!decl)
        decl = op.lookupInput(name);
    if (!decl)
      return fail("--input " + name + ": the spec declares no input '" +
                  name + "'");
    runtime::Expected<runtime::Tensor> t = runtime::readNpy(arg.substr(eq + 1));
    if (!t.ok())
      return fail(t.status().message());
    DType dt = t->dtype();
    mlir::Type et = decl.getElementType();
    bool typeOk = et.isInteger(1)    ? dt == DType::Bool
                  : et.isInteger(64) ? dt == DType::I32 || dt == DType::I64
                                     : dt == DType::F32;
    if (!typeOk)
      return fail("--input " + name + ": " + runtime::dtypeName(dt) +
                  " data for an input declared " +
                  (et.isInteger(1) ? "bool" : et.isInteger(64) ? "int" : "float"));
    if (int64_t(t->shape().size()) != decl.getRank())
      return fail("--input " + name + ": rank " + std::to_string(int64_t(t->shape().size())) +
                  ", declared rank " + std::to_string(decl.getRank()));
    inputs.emplace_back(name, std::move(*t));
  }
  return 0;
}

/// The checks that need the analysed spec, before anything is printed.
int checkBlocks(const ShowFlags &f, mlir::ModuleOp module) {
  auto blocks = module.getOps<SpecOp>();
  if (!f.png.empty() && std::distance(blocks.begin(), blocks.end()) != 1)
    return fail("--png draws one block; pick it with --name");
  for (SpecOp op : module.getOps<SpecOp>())
    if (!f.png.empty() && f.inputs.empty() && maskReadsInputs(op))
      return fail("--png: the mask of '" + op.getSymName().str() +
                  "' reads inputs; give them with --input NAME=FILE.npy");
  return 0;
}
} // namespace

int attnc::runShow(const std::vector<std::string> &args) {
  ShowFlags f;
  po::options_description options("attnc show SPEC.attn --lq N --lk N [options]");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&f.spec), "the .attn spec file ('-' for stdin)")
      ("lq", po::value(&f.lq), "number of queries LQ (required)")
      ("lk", po::value(&f.lk), "number of keys LK (required)")
      ("tile-q", po::value(&f.tileQ)->default_value(64), "query rows per tile")
      ("tile-k", po::value(&f.tileK)->default_value(64), "keys per tile")
      ("define,D", po::value(&f.defines)->composing(),
       "NAME=VALUE: override a param (repeatable)")
      ("import-dir,I", po::value(&f.importDirs)->composing(),
       "DIR: where import \"PATH\" looks after the spec's directory "
       "(repeatable)")
      ("input", po::value(&f.inputs)->composing(),
       "NAME=FILE.npy: data of an input the mask reads (batch 0, head 0); "
       "also prints the schedule this data gives (repeatable)")
      ("name", po::value(&f.name), "show only the block NAME")
      ("png", po::value(&f.png), "also draw the element mask to this PNG file");
  po::variables_map vm;
  if (!parseCommandLine("show", args, options, vm))
    return 1;
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (f.spec.empty() || !vm.count("lq") || !vm.count("lk"))
    return fail("needs SPEC, --lq and --lk");
  if (checkSizes(f))
    return 1;
  FrontendOptions fo;
  fo.onlyName = f.name;
  fo.importDirs = f.importDirs;
  if (!parseDefines(f.defines, fo))
    return 1;
  Driver driver(llvm::errs());
  mlir::OwningOpRef<mlir::ModuleOp> module = driver.loadSpecFile(f.spec, fo);
  if (!module || failed(driver.runSpecPipeline(*module)))
    return 1;
  NamedTensors inputs;
  if (checkBlocks(f, *module) || loadInputs(f, *module, inputs))
    return 1;
  InputReader reader = inputReader(inputs);

  ProblemSizes sizes;
  sizes.LQ = f.lq;
  sizes.LK = f.lk;
  // Everything that can fail runs before the first line is printed.
  struct Shown {
    SpecOp op;
    TileSchedule schedule;
    std::optional<TileSchedule> withData;
  };
  std::vector<Shown> shown;
  for (SpecOp op : module->getOps<SpecOp>()) {
    Shown s{op, computeSchedule(op.getMaskScheduleAttr(), sizes, f.tileQ, f.tileK),
            std::nullopt};
    if (!inputs.empty() && maskReadsInputs(op)) {
      s.withData = s.schedule;
      if (!refineWithData(op, sizes, reader, *s.withData))
        return 1;
    }
    shown.push_back(std::move(s));
  }
  llvm::raw_ostream &os = llvm::outs();
  for (Shown &s : shown) {
    os << "attention " << s.op.getSymName() << ": LQ=" << f.lq
       << " LK=" << f.lk << ", tiles " << f.tileQ << "x" << f.tileK << " ("
       << s.schedule.numQ << "x" << s.schedule.numK << ")\n";
    os << "mask: " << s.op.getMaskScheduleAttr() << "\n";
    printMaskNotes(mlir::ModuleOp(s.op->getParentOp()), os, s.op.getSymName());
    printGrid(os, s.schedule, "schedule");
    if (s.withData)
      printGrid(os, *s.withData, "schedule with the --input data");
  }
  os.flush();
  if (!f.png.empty() && !drawPng(shown.front().op, sizes, shown.front().schedule,
                                 reader, f.png))
    return 1;
  return 0;
}
