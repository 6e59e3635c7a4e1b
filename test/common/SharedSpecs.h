//===- SharedSpecs.h - The reference specs the tests run ---------*- C++ -*-===//
//
// The `.attn` files of ../shared/specs (ATTNC_SHARED_SPECS_DIR), sorted, and
// a whole-file reader: what every test that runs each shared spec shares.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_SHAREDSPECS_H
#define ATTNC_TEST_COMMON_SHAREDSPECS_H

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace attnc::test {

/// The whole text of \p p ("" if it cannot be read).
inline std::string readTextFile(const std::filesystem::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The shared specs, sorted by path (none if the folder is missing).
inline std::vector<std::filesystem::path> sharedSpecFiles() {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  if (fs::is_directory(ATTNC_SHARED_SPECS_DIR))
    for (const auto &e : fs::directory_iterator(ATTNC_SHARED_SPECS_DIR))
      if (e.path().extension() == ".attn")
        files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_SHAREDSPECS_H
