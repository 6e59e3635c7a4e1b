//===- RuntimeTestUtil.h - Helpers of the runtime's unit tests --*- C++ -*-===//
//
// What several of the runtime's test files need: scoped environment
// variables, reading, writing and probing files, a deterministic filled
// tensor, and running a check that could hang in a child process under
// alarm(). The temporary directory is test/common/TempDir.h.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_RUNTIME_RUNTIMETESTUTIL_H
#define ATTNC_TEST_RUNTIME_RUNTIMETESTUTIL_H

#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Tensor.h"

#include "../common/TempDir.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace runtime_test {

using attnc::test::TempDir;

/// Sets an environment variable for one scope, then restores it.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      saved = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { saved ? setenv(name, saved->c_str(), 1) : unsetenv(name); }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  const char *name;
  std::optional<std::string> saved;
};

/// The bytes of `path` (through the runtime's readFile), or "<why not>".
inline std::string slurp(const std::string &path) {
  attnc::runtime::Expected<std::string> s = attnc::runtime::readFile(path);
  return s.ok() ? *s : "<" + s.status().message() + ">";
}

/// Whether something (a dangling link included) is at `path`.
inline bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

/// Replaces `path` by `bytes` (the runtime's atomic write).
inline void writeBytes(const std::string &path, const std::string &bytes) {
  ASSERT_TRUE(attnc::runtime::writeFileAtomic(path, bytes).ok()) << path;
}

/// A tensor whose element i is +-(i + 0.5) (alternating), or for Bool
/// i % 3 == 1: every element distinct and nonzero where the dtype allows.
inline attnc::runtime::Tensor filled(attnc::runtime::DType t,
                                     std::vector<int64_t> shape) {
  using attnc::runtime::DType;
  attnc::runtime::Tensor x =
      attnc::runtime::Tensor::zeros(t, std::move(shape)).value();
  for (int64_t i = 0; i < x.numel(); ++i)
    x.setFromDouble(i, t == DType::Bool ? (i % 3 == 1)
                                        : (i % 2 ? -1.0 : 1.0) * (i + 0.5));
  return x;
}

/// Runs \p fn in a child process killed after \p seconds; the child's exit
/// code (fn's result), or -1 if it was killed or crashed.
template <class Fn> int inChild(Fn fn, unsigned seconds = 10) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(seconds);
    _exit(fn());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

} // namespace runtime_test

#endif // ATTNC_TEST_RUNTIME_RUNTIMETESTUTIL_H
