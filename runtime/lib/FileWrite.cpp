//===- FileWrite.cpp - Writing outputs without replacing what must stay ---===//
//
// The write side of Npy.h's file helpers: PendingWrite (prepare, then
// commit), writeFileAtomic and createDirectories. Npy.h's file comment has
// the rule a write follows for what is at the path now; this file is that
// rule. Temporaries are named `.<name>.tmp.<pid>.<counter>` beside the file
// they replace (the kernel cache removes stale ones by that pattern).
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Npy.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

using namespace attnc::runtime;

namespace {
std::string errnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// Splits \p path into its directory ("." if none) and last component.
void splitPath(const std::string &path, std::string &dir, std::string &base) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    dir = ".";
    base = path;
  } else {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
}

/// Writes every chunk to \p fd; returns 0 or the errno of the failure.
int writeChunks(int fd, const std::vector<std::string_view> &chunks) {
  for (std::string_view chunk : chunks) {
    const char *p = chunk.data();
    size_t left = chunk.size();
    while (left > 0) {
      ssize_t w =
          ::write(fd, p, left < (size_t(1) << 30) ? left : size_t(1) << 30);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return w < 0 ? errno : ENOSPC;
      p += w;
      left -= size_t(w);
    }
  }
  return 0;
}

/// The path a chain of symbolic links starting at \p path ends at; that
/// path does not exist (the caller found the chain dangling).
Expected<std::string> danglingLinkTarget(const std::string &path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode))
      return p;
    char buf[PATH_MAX];
    ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    if (n < 0)
      return Status::error(path + ": cannot write: cannot read the link: " +
                           errnoText(errno));
    std::string link(buf, size_t(n));
    std::string dir, base;
    splitPath(p, dir, base);
    p = link[0] == '/' ? link : dir + "/" + link;
  }
  return Status::error(path + ": cannot write: " + errnoText(ELOOP));
}

/// Why a file of this type cannot be written, or null if it can.
const char *unwritableType(mode_t m) {
  if (S_ISDIR(m))
    return "is a directory";
  if (S_ISSOCK(m))
    return "is a socket";
  return nullptr;
}
} // namespace

PendingWrite::PendingWrite(PendingWrite &&o) noexcept { *this = std::move(o); }

PendingWrite &PendingWrite::operator=(PendingWrite &&o) noexcept {
  if (this != &o) {
    discard();
    path = std::move(o.path);
    target = std::move(o.target);
    temp = std::move(o.temp);
    direct = o.direct;
    fifo = o.fifo;
    chunks = std::move(o.chunks);
    o.temp.clear();
    o.direct = false;
  }
  return *this;
}

PendingWrite::~PendingWrite() { discard(); }

void PendingWrite::discard() {
  if (!temp.empty())
    ::unlink(temp.c_str());
  temp.clear();
  direct = false;
}

Expected<PendingWrite>
PendingWrite::prepare(const std::string &path,
                      const std::vector<std::string_view> &chunks,
                      unsigned mode, WriteTarget how) {
  PendingWrite w;
  w.path = w.target = path;
  struct stat st;
  bool exists = false;
  if (how == WriteTarget::Follow) {
    if (::lstat(path.c_str(), &st) == 0) {
      exists = true;
      if (S_ISLNK(st.st_mode)) {
        // Keep the link: write the file at the end of the chain.
        if (::stat(path.c_str(), &st) == 0) {
          if (S_ISREG(st.st_mode)) {
            char *real = ::realpath(path.c_str(), nullptr);
            if (!real)
              return Status::error(path + ": cannot write: " +
                                   errnoText(errno));
            w.target = real;
            std::free(real);
          }
        } else if (errno == ENOENT) {
          exists = false;
          Expected<std::string> end = danglingLinkTarget(path);
          if (!end.ok())
            return end.status();
          w.target = *end;
        } else {
          return Status::error(path + ": cannot write: " + errnoText(errno));
        }
      }
    } else if (errno != ENOENT) {
      return Status::error(path + ": cannot write: " + errnoText(errno));
    }
  }
  if (exists) {
    if (const char *why = unwritableType(st.st_mode))
      return Status::error(path + ": cannot write: " + why);
    if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
      // A device, FIFO or hard-linked file is written where it is.
      w.direct = true;
      w.fifo = S_ISFIFO(st.st_mode);
      w.chunks = chunks;
      return std::move(w);
    }
  }

  std::string dir, base;
  splitPath(w.target, dir, base);
  if (base.empty() || base == "." || base == "..")
    return Status::error(path + ": cannot write: not a file name");
  // pid + a process-wide counter makes names unique among writers on this
  // host; O_EXCL catches anything else (another host on a shared disk).
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = dir + "/." + base + ".tmp." + std::to_string(::getpid()) + "." +
          std::to_string(counter.fetch_add(1));
    fd = ::open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                mode & 0777);
    if (fd < 0 && errno != EEXIST)
      return Status::error(path + ": cannot write: " + errnoText(errno));
  }
  if (fd < 0)
    return Status::error(path + ": cannot write: no free temporary name");
  auto failWith = [&](const std::string &what, int err) {
    if (fd >= 0)
      ::close(fd);
    ::unlink(tmp.c_str());
    return Status::error(path + ": cannot write: " + what + errnoText(err));
  };
  // A replaced file keeps its permission bits, within `mode`.
  if (exists && ::fchmod(fd, st.st_mode & mode & 0777) != 0)
    return failWith("chmod: ", errno);
  if (int err = writeChunks(fd, chunks))
    return failWith("", err);
  if (::fsync(fd) != 0)
    return failWith("fsync: ", errno);
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0)
    return failWith("close: ", errno);
  w.temp = tmp;
  return std::move(w);
}

Status PendingWrite::commit() {
  if (direct) {
    direct = false;
    // O_NONBLOCK: a FIFO with no reader fails (ENXIO) instead of hanging,
    // and no device open blocks; cleared again for the writes.
    struct stat st;
    bool regular = ::stat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    int fd = ::open(target.c_str(),
                    O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                        (regular ? O_TRUNC : 0));
    if (fd < 0) {
      int err = errno;
      if (err == ENXIO && fifo)
        return Status::error(path + ": cannot write: a FIFO with no reader");
      return Status::error(path + ": cannot write: " + errnoText(err));
    }
    int fl = ::fcntl(fd, F_GETFL);
    int err = fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0
                  ? errno
                  : writeChunks(fd, chunks);
    // Devices and FIFOs may not support fsync; a regular file must.
    if (err == 0 && regular && ::fsync(fd) != 0)
      err = errno;
    if (::close(fd) != 0 && err == 0)
      err = errno;
    if (err)
      return Status::error(path + ": cannot write: " + errnoText(err));
    return Status::success();
  }
  if (temp.empty())
    return Status::error(path + ": cannot write: nothing was prepared");
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    int err = errno;
    discard();
    return Status::error(path + ": cannot write: " + errnoText(err));
  }
  temp.clear();
  // Make the rename itself durable; a failure here loses nothing that is
  // visible, so it is not an error.
  std::string dir, base;
  splitPath(target, dir, base);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::success();
}

Status attnc::runtime::writeFileAtomic(
    const std::string &path, const std::vector<std::string_view> &chunks,
    unsigned mode, WriteTarget how) {
  Expected<PendingWrite> w = PendingWrite::prepare(path, chunks, mode, how);
  if (!w.ok())
    return w.status();
  return w->commit();
}

Status attnc::runtime::writeFileAtomic(const std::string &path,
                                       std::string_view bytes, unsigned mode,
                                       WriteTarget how) {
  return writeFileAtomic(path, std::vector<std::string_view>{bytes}, mode,
                         how);
}

Status attnc::runtime::createDirectories(const std::string &path,
                                         unsigned mode) {
  if (path.empty())
    return Status::error("cannot create a directory with an empty name");
  int lastErr = 0;
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/')
      continue;
    if (path[pos - 1] == '/')
      continue; // "a//b" or a trailing slash
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode & 07777) != 0 && errno != EEXIST)
      lastErr = errno;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return Status::success();
  if (lastErr == 0)
    return Status::error(path + ": cannot create directory: it exists and "
                                "is not a directory");
  return Status::error(path +
                       ": cannot create directory: " + errnoText(lastErr));
}
