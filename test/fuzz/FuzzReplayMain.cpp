//===- FuzzReplayMain.cpp - Runs a fuzz target over saved inputs ----------===//
//
// The main of the fuzz targets' replay executables (attnc-fuzz-replay-*),
// which are built by every build, with or without libFuzzer: each argument
// is a file or a directory whose regular files (sorted by name, not
// recursively) are passed once each to LLVMFuzzerTestOneInput, as libFuzzer
// does when it is given files and -runs=0. The normal test suite runs them
// over test/fuzz/corpus/<target>/, the seeds and every crash found so far.
// A target reports a finding by aborting, so a failing input stops the run
// with its name printed first. Finding no input at all is an error too, so
// that a corpus folder that went missing fails instead of passing empty.
//
//===----------------------------------------------------------------------===//
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int *argc,
                                                          char ***argv);

namespace fs = std::filesystem;

/// Appends the inputs named by `arg` to `files`; false (with a message) if
/// it is neither a regular file nor a readable directory.
static bool collect(const std::string &arg, std::vector<std::string> &files) {
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) {
    files.push_back(arg);
    return true;
  }
  if (!fs::is_directory(arg, ec)) {
    std::fprintf(stderr, "fuzz replay: %s: not a file or directory\n",
                 arg.c_str());
    return false;
  }
  std::vector<std::string> found;
  for (fs::directory_iterator it(arg, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_regular_file(ec))
      found.push_back(it->path().string());
  if (ec) {
    std::fprintf(stderr, "fuzz replay: %s: %s\n", arg.c_str(),
                 ec.message().c_str());
    return false;
  }
  std::sort(found.begin(), found.end());
  files.insert(files.end(), found.begin(), found.end());
  return true;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i)
    if (!collect(argv[i], files))
      return 2;
  if (files.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs found\n");
    return 2;
  }
  for (const std::string &f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", f.c_str());
      return 2;
    }
    std::fprintf(stderr, "fuzz replay: %s (%zu bytes)\n", f.c_str(),
                 bytes.size());
    // A copy of exactly `size` bytes, as libFuzzer passes, so that a read
    // past the end is an ASan report in the sanitizer build.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() ? bytes.size() : 1]);
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  }
  std::fprintf(stderr, "fuzz replay: %zu inputs, no finding\n", files.size());
  return 0;
}
