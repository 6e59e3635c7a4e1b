//===- Import.cpp - Follow `import "file.attn"` and share declarations ----===//
//
// resolveImports loads every file the main file imports, directly or not,
// each once, into the same SourceMgr (with the import as its include
// location, so a diagnostic inside an imported file also names the line
// that imported it). Their shared declarations, then the main file's own,
// are copied into every attention block ahead of the block's declarations
// (every param; the inputs and lets the block uses, so that a library's
// unused inputs are not arguments of its kernel): after this step a block
// is self-contained and Sema, MLIRGen and the mask analysis see through
// names and files alike.
//
//===----------------------------------------------------------------------===//
#include "Import.h"
#include "attnc/Frontend/Parser.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace attnc;
using llvm::StringRef;
using llvm::Twine;

namespace {

class ImportResolver {
public:
  ImportResolver(ast::Module &main, llvm::SourceMgr &sm,
                 const FrontendOptions &options, llvm::raw_ostream &errs)
      : main(main), sm(sm), options(options), errs(errs) {}

  bool run();

private:
  bool loadImports(ast::Module &m, unsigned file);
  bool loadOne(const ast::ImportDecl &imp, unsigned importer);
  std::string findFile(StringRef written, unsigned importer,
                       std::string &looked);
  void share(ast::AttentionDecl &from);
  llvm::StringSet<> usedSharedNames(const ast::AttentionDecl &block);

  bool fail(ast::Loc loc, const Twine &msg) {
    llvm::SMLoc at = sm.FindLocForLineAndColumn(main.files[loc.file].bufferId,
                                                loc.line, loc.col);
    sm.PrintMessage(errs, at, llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  static std::string canonical(StringRef path) {
    llvm::SmallString<256> real;
    if (llvm::sys::fs::real_path(path, real))
      return path.str();
    return std::string(real.str());
  }

  ast::Module &main;
  llvm::SourceMgr &sm;
  const FrontendOptions &options;
  llvm::raw_ostream &errs;
  /// The files being loaded, outermost first (canonical path, name).
  std::vector<std::pair<std::string, std::string>> stack;
  llvm::StringSet<> loaded; // canonical paths of finished files
  ast::AttentionDecl shared; // every shared declaration, in rank order
  unsigned nextRank = 0;
};

} // namespace

bool ImportResolver::run() {
  stack.push_back({canonical(main.fileName), main.fileName});
  if (!loadImports(main, 0))
    return false;
  main.files[0].rank = nextRank;
  share(main.shared);
  // Each block gets copies of the shared declarations ahead of its own:
  // every param (-D reaches them all), and the inputs and lets it uses.
  for (ast::AttentionDecl &block : main.attentions) {
    llvm::StringSet<> used = usedSharedNames(block);
    std::vector<ast::ParamDecl> params = shared.params;
    params.insert(params.end(), block.params.begin(), block.params.end());
    block.params = std::move(params);
    std::vector<ast::InputDecl> inputs;
    for (const ast::InputDecl &in : shared.inputs)
      if (used.contains(in.name))
        inputs.push_back(in);
    inputs.insert(inputs.end(), block.inputs.begin(), block.inputs.end());
    block.inputs = std::move(inputs);
    std::vector<ast::LetDecl> lets;
    for (const ast::LetDecl &l : shared.lets) {
      if (!used.contains(l.name))
        continue;
      ast::LetDecl copy;
      copy.name = l.name;
      copy.loc = l.loc;
      copy.isMask = l.isMask;
      copy.expr = ast::cloneExpr(*l.expr);
      lets.push_back(std::move(copy));
    }
    for (ast::LetDecl &l : block.lets)
      lets.push_back(std::move(l));
    block.lets = std::move(lets);
  }
  main.shared = std::move(shared);
  return true;
}

/// Every identifier `e` names (before Sema: Param and Read nodes and call
/// names alike; a superset is harmless).
static void collectNames(const ast::Expr &e, llvm::StringSet<> &names) {
  if (!e.name.empty())
    names.insert(e.name);
  for (const ast::ExprPtr &op : e.operands)
    collectNames(*op, names);
}

/// The names `block` uses, with those of the shared lets it uses (a let
/// reads only earlier lets: one pass from the last), and the names it
/// declares itself (so that a clash with a shared one is still reported).
llvm::StringSet<> ImportResolver::usedSharedNames(const ast::AttentionDecl &block) {
  llvm::StringSet<> used;
  for (const ast::ExprPtr *e : {&block.scale, &block.score, &block.mask,
                                &block.sigmoidBias, &block.softmaxSink,
                                &block.softmaxDropout})
    if (*e)
      collectNames(**e, used);
  for (const ast::LetDecl &l : block.lets) {
    used.insert(l.name);
    collectNames(*l.expr, used);
  }
  for (const ast::InputDecl &in : block.inputs)
    used.insert(in.name);
  for (const ast::ParamDecl &p : block.params)
    used.insert(p.name);
  for (auto it = shared.lets.rbegin(); it != shared.lets.rend(); ++it)
    if (used.contains(it->name))
      collectNames(*it->expr, used);
  return used;
}

void ImportResolver::share(ast::AttentionDecl &from) {
  for (ast::ParamDecl &p : from.params)
    shared.params.push_back(p);
  for (ast::InputDecl &in : from.inputs)
    shared.inputs.push_back(in);
  for (ast::LetDecl &l : from.lets)
    shared.lets.push_back(std::move(l));
}

bool ImportResolver::loadImports(ast::Module &m, unsigned file) {
  for (const ast::ImportDecl &imp : m.imports)
    if (!loadOne(imp, file))
      return false;
  return true;
}

std::string ImportResolver::findFile(StringRef written, unsigned importer,
                                     std::string &looked) {
  llvm::SmallVector<std::string, 4> dirs;
  if (llvm::sys::path::is_absolute(written)) {
    dirs.push_back("");
  } else {
    // Relative to the importing file; for a spec given as text ("<spec>",
    // "<stdin>") that is the working directory. Then the -I directories.
    dirs.push_back(llvm::sys::path::parent_path(main.files[importer].name).str());
    for (const std::string &d : options.importDirs)
      dirs.push_back(d);
  }
  for (const std::string &dir : dirs) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, written);
    if (llvm::sys::fs::exists(path) && !llvm::sys::fs::is_directory(path))
      return std::string(path.str());
    looked += (looked.empty() ? "'" : ", '") + (dir.empty() ? "." : dir) + "'";
  }
  return "";
}

bool ImportResolver::loadOne(const ast::ImportDecl &imp, unsigned importer) {
  if (!options.allowImports)
    return fail(imp.loc, "'import' is not allowed here");
  std::string looked;
  std::string path = findFile(imp.path, importer, looked);
  if (path.empty())
    return fail(imp.loc, "cannot find '" + imp.path + "' to import (looked in " +
                             looked + ")");
  std::string key = canonical(path);
  for (auto [i, entry] : llvm::enumerate(stack)) {
    if (entry.first != key)
      continue;
    std::string chain;
    for (size_t j = i; j < stack.size(); ++j)
      chain += stack[j].second + " -> ";
    return fail(imp.loc, "import cycle: " + chain + path);
  }
  if (loaded.contains(key))
    return true; // already brought in (through another import)
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer = readSpecFile(path, error);
  if (!buffer)
    return fail(imp.loc, error);
  llvm::SMLoc at = sm.FindLocForLineAndColumn(main.files[importer].bufferId,
                                              imp.loc.line, imp.loc.col);
  unsigned id = addSpecBuffer(sm, buffer->getBuffer(), path, at);
  unsigned file = unsigned(main.files.size());
  main.files.push_back({path, id, 0});
  std::optional<ast::Module> m = parseModule(sm, id, errs, file);
  if (!m)
    return false;
  stack.push_back({key, path});
  if (!loadImports(*m, file))
    return false;
  stack.pop_back();
  loaded.insert(key);
  main.files[file].rank = nextRank++;
  share(m->shared);
  return true;
}

bool attnc::resolveImports(ast::Module &main, llvm::SourceMgr &sm,
                           const FrontendOptions &options,
                           llvm::raw_ostream &errs) {
  return ImportResolver(main, sm, options, errs).run();
}
