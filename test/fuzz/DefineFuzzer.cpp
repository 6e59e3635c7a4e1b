//===- DefineFuzzer.cpp - libFuzzer target for -D NAME=VALUE --------------===//
//
// Feeds arbitrary bytes as the argument of `-D` through the path of the CLI
// and the C++ API: parseDefine splits NAME=VALUE, parseParamValue reads
// VALUE as an int, a float and a bool, and the front end applies the define
// to a spec that declares one param of each type, which then goes through
// canonicalisation, the mask analysis and the tile schedule. Any crash,
// sanitizer report or hang fails, and so does any disagreement:
//   - a split must give back the argument (NAME '=' VALUE);
//   - an accepted int prints and reads back to itself; an accepted float is
//     finite in f32 and reads back from its %.17g form; an accepted bool is
//     one of true, false, 1, 0;
//   - the front end accepts the define exactly when NAME is one of the
//     spec's params and parseParamValue accepts VALUE for its type.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Sema.h"

#include "llvm/Support/raw_ostream.h"

#include "FuzzSchedule.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace attnc;

[[noreturn]] static void finding(const char *what, const std::string &arg) {
  std::fprintf(stderr, "define fuzzer: %s\n  -D %s\n", what, arg.c_str());
  std::abort();
}

/// Whether VALUE is accepted as a param of `type`; checks what it read.
static bool acceptedAs(ast::Type type, const std::string &value,
                       const std::string &arg) {
  ast::ParamDecl p;
  p.type = type;
  if (!parseParamValue(value, p).empty())
    return false;
  if (!p.hasValue)
    finding("a value accepted but not stored", arg);
  ast::ParamDecl back;
  back.type = type;
  if (type == ast::Type::Int) {
    if (!parseParamValue(std::to_string(p.intValue), back).empty() ||
        back.intValue != p.intValue)
      finding("an int that does not read back", arg);
  } else if (type == ast::Type::Float) {
    if (!std::isfinite(static_cast<float>(p.floatValue)))
      finding("a float accepted that is not finite in f32", arg);
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", p.floatValue);
    if (!parseParamValue(text, back).empty() ||
        back.floatValue != p.floatValue)
      finding("a float that does not read back", arg);
  } else if (value != "true" && value != "false" && value != "1" &&
             value != "0") {
    finding("a bool accepted from another word", arg);
  }
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string arg(reinterpret_cast<const char *>(data), size);
  std::pair<std::string, std::string> define;
  std::string why = parseDefine(arg, define);
  if (!why.empty()) {
    if (why.rfind("-D ", 0) != 0)
      finding("an error that does not start with '-D '", arg);
    return 0;
  }
  if (define.first.empty() || define.first + "=" + define.second != arg)
    finding("a split that does not give back the argument", arg);

  const std::string &name = define.first, &value = define.second;
  bool asInt = acceptedAs(ast::Type::Int, value, arg);
  bool asFloat = acceptedAs(ast::Type::Float, value, arg);
  bool asBool = acceptedAs(ast::Type::Bool, value, arg);
  bool expected = (name == "i" && asInt) || (name == "f" && asFloat) ||
                  (name == "c" && asBool);

  static const char *kSpec = "attention d {\n"
                             "  param i: int = 1\n"
                             "  param f: float = 1.5\n"
                             "  param c: bool = true\n"
                             "  scale = f\n"
                             "  mask = kv <= q + i && c\n"
                             "}\n";
  std::string errors;
  llvm::raw_string_ostream errs(errors);
  Driver driver(errs);
  FrontendOptions options;
  options.defines.push_back(define);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecText("define.attn", kSpec, options);
  if (bool(module) != expected)
    finding(expected ? "the front end refused an accepted define"
                     : "the front end took a refused define",
            arg + "\n  " + errors);
  if (!module)
    return 0;
  if (mlir::failed(driver.runSpecPipeline(*module)))
    finding("a define the front end took fails the spec pipeline",
            arg + "\n  " + errors);
  fuzz::scheduleEverySpec(*module);
  return 0;
}
