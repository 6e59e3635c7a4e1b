//===- ToolCommandLine.cpp - Boost.Program_options for the attnc tools ----===//
#include "common/ToolCommandLine.h"

namespace po = boost::program_options;

std::string attnc::parseToolCommandLine(const std::vector<std::string> &args,
                                        const po::options_description &options,
                                        po::variables_map &vm) {
  po::positional_options_description positional;
  positional.add("spec", 1);
  try {
    po::store(po::command_line_parser(args)
                  .options(options)
                  .positional(positional)
                  .style(po::command_line_style::default_style |
                         po::command_line_style::allow_sticky)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error &e) {
    return e.what();
  }
  return "";
}
