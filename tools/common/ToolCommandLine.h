//===- ToolCommandLine.h - Boost.Program_options for the attnc tools -*- C++ -*-===//
//
// The one place the tools (attnc, attn-demo, attn-bench) parse their flags:
// one positional SPEC, sticky short options (-DNAME=VALUE), and the parse
// error returned as text so each tool prints it with printToolError
// (ToolDiagnostics.h) under its own name. Built with exceptions (Boost
// reports errors by throwing; LLVM code is built without them), and
// nothing is thrown past it.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_COMMON_TOOLCOMMANDLINE_H
#define ATTNC_TOOLS_COMMON_TOOLCOMMANDLINE_H

#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace attnc {

/// Parses `args` into `vm`; returns "" on success, else the error message.
std::string parseToolCommandLine(const std::vector<std::string> &args,
                                 const boost::program_options::options_description &options,
                                 boost::program_options::variables_map &vm);

} // namespace attnc

#endif // ATTNC_TOOLS_COMMON_TOOLCOMMANDLINE_H
