//===- TempDir.h - A private temporary directory for tests -----*- C++ -*-===//
//
// TempDir makes a fresh directory with mkdtemp (mode 0700) under $TMPDIR,
// or /tmp when that is unset or empty, and removes it with everything in it
// when it goes out of scope. Removal does not follow symlinks (a test may
// leave links to files outside the directory). The unit tests of the
// runtime and the front end and the fuzz targets' private caches share it;
// it does not depend on GoogleTest, so a failed mkdtemp throws
// std::system_error, which a test reports as a failure with its message
// (and a fuzz target as an abort).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_TEMPDIR_H
#define ATTNC_TEST_COMMON_TEMPDIR_H

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <ftw.h>
#include <set>
#include <string>
#include <system_error>

namespace attnc::test {

class TempDir {
public:
  /// A directory named `<tmp>/<prefix>-XXXXXX`.
  explicit TempDir(const std::string &prefix = "attnc-test") {
    const char *tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" +
                       prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      throw std::system_error(errno, std::generic_category(),
                              "mkdtemp " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    ::nftw(
        path.c_str(),
        [](const char *p, const struct stat *, int, struct FTW *) {
          return std::remove(p);
        },
        16, FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  /// The path of `name` inside the directory.
  std::string operator/(const std::string &name) const {
    return path + "/" + name;
  }

  /// The names in the directory (or in its subdirectory `sub`), hidden
  /// ones included; empty if it cannot be read.
  std::set<std::string> list(const std::string &sub = "") const {
    return listDir(sub.empty() ? path : *this / sub);
  }

  /// The names in any directory `dir`, as list() gives them.
  static std::set<std::string> listDir(const std::string &dir) {
    std::set<std::string> names;
    if (DIR *d = ::opendir(dir.c_str())) {
      while (dirent *e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          names.insert(e->d_name);
      ::closedir(d);
    }
    return names;
  }

  std::string path;
};

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_TEMPDIR_H
