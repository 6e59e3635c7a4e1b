//===- Npy.h - .npy files, safe file reads and writes -----------*- C++ -*-===//
//
// numpy's .npy format (versions 1.0, 2.0 and 3.0 are read; 1.0 is written,
// 2.0 only when a header exceeds 64 KiB), for the dtypes of attnc run:
// '<f4' '<f2' '<f8' '<i4' '<i8' '|b1'. Fortran-order files are transposed
// into C order on read. Files come from users, so a reader must survive any
// bytes: every malformed file (truncated, bad magic, a header that lies
// about its length or shape, big-endian or object dtypes, ...) yields an
// error that names the file; nothing is read out of bounds and nothing is
// allocated before the file is known to hold that many bytes.
//
// The file helpers here are shared with the kernel cache.
//
// Reading (readFile, readNpy) opens non-blocking, so a FIFO or a device
// never hangs the open, and refuses anything that is not a regular file.
//
// Writing (writeFileAtomic, PendingWrite) follows one rule for a path:
//   - it does not exist, or is a regular file with one link: a temporary
//     in the same directory is written, fsynced and renamed over it, so a
//     reader or a crash never sees a partial file, and a failed write
//     leaves neither a temporary nor a changed target; a replaced file
//     keeps its permission bits (within the requested mode);
//   - it is a symbolic link: the chain of links is followed and the file it
//     ends at is written by this rule (created if the chain dangles), so
//     the links stay links;
//   - it is a regular file with several hard links: it is truncated and
//     written in place, so every link sees the new contents (not atomic);
//   - it is a device, FIFO or other special file: it is opened without
//     O_CREAT/O_TRUNC and written directly (a FIFO without a reader is an
//     error, not a hang); a device is never replaced, and every write error
//     (ENOSPC from /dev/full) is reported;
//   - it is a directory or a socket: an error.
// With WriteTarget::Replace (the kernel cache) a path is always replaced
// by rename, whatever it is now. "-" is no special name here: callers
// that mean stdout handle it themselves.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_NPY_H
#define ATTNC_RUNTIME_NPY_H

#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::runtime {

/// Reads the .npy file at \p path into a contiguous tensor.
Expected<Tensor> readNpy(const std::string &path);

/// Parses the bytes of a .npy file held in memory; \p name stands for the
/// file in messages.
Expected<Tensor> parseNpy(std::string_view bytes, const std::string &name);

/// Writes \p t to \p path as a C-order .npy file (version 1.0), by the
/// rule of the file comment (atomically when the target is replaced).
/// Strided views are written as their contiguous copy. bfloat16 has no
/// numpy dtype and is an error.
Status writeNpy(const std::string &path, const TensorView &t);

/// The bytes of the .npy file that writeNpy would write.
Expected<std::string> encodeNpy(const TensorView &t);

/// Reads a whole regular file, opened with O_NONBLOCK (a FIFO does not
/// hang) and checked with fstat: anything but a regular file is an error,
/// and so is a file over \p maxSize bytes, before anything is allocated.
/// With \p noFollow a symbolic link is refused (O_NOFOLLOW). If \p missing
/// is given, it is set to whether the failure (if any) was that the file
/// does not exist, which callers that treat absence as normal (the cache)
/// must tell from real errors.
Expected<std::string> readFile(const std::string &path,
                               bool *missing = nullptr,
                               uint64_t maxSize = UINT64_MAX,
                               bool noFollow = false);

/// How a write treats what is at the path now (see the file comment).
enum class WriteTarget {
  Follow,  ///< the rule of the file comment (user outputs)
  Replace, ///< always rename a new file over the path (the kernel cache)
};

/// The default mode of files a write creates (before the umask).
constexpr unsigned kDefaultFileMode = 0666;

/// One output written by the rule of the file comment in two steps, so that
/// several outputs can commit together (attnc run's -o and --lse).
/// prepare() does everything that can fail for a replaced file (the
/// temporary is written and fsynced); commit() writes a device, FIFO or
/// hard-linked file directly and renames a temporary over its target. An
/// uncommitted temporary is removed by discard() or the destructor.
class PendingWrite {
public:
  PendingWrite() = default;
  PendingWrite(PendingWrite &&other) noexcept;
  PendingWrite &operator=(PendingWrite &&other) noexcept;
  PendingWrite(const PendingWrite &) = delete;
  PendingWrite &operator=(const PendingWrite &) = delete;
  ~PendingWrite();

  /// Prepares writing the concatenation of \p chunks to \p path. New
  /// files get \p mode & ~umask. For a target written in place the chunks
  /// are kept by reference: they must outlive commit().
  static Expected<PendingWrite>
  prepare(const std::string &path, const std::vector<std::string_view> &chunks,
          unsigned mode = kDefaultFileMode,
          WriteTarget how = WriteTarget::Follow);

  /// True if commit() writes the target in place (a device, FIFO or
  /// hard-linked file): it can fail then, and is not atomic.
  bool inPlace() const { return direct; }

  /// Makes the write visible (see prepare). Errors name the path.
  Status commit();

  /// Removes the temporary, if any; the target stays as it was.
  void discard();

private:
  std::string path;   // as given, for messages
  std::string target; // the file written (links resolved)
  std::string temp;   // the staged temporary; empty when in place
  bool direct = false;
  bool fifo = false;
  std::vector<std::string_view> chunks; // in place only
};

/// Writes the concatenation of \p chunks to \p path by the rule of the
/// file comment (prepare, then commit). On failure a replaced target is
/// untouched and no temporary is left.
Status writeFileAtomic(const std::string &path,
                       const std::vector<std::string_view> &chunks,
                       unsigned mode = kDefaultFileMode,
                       WriteTarget how = WriteTarget::Follow);

/// Writes \p bytes to \p path (see the overload above).
Status writeFileAtomic(const std::string &path, std::string_view bytes,
                       unsigned mode = kDefaultFileMode,
                       WriteTarget how = WriteTarget::Follow);

/// Creates directory \p path and its missing parents (mkdir -p), each
/// created one with \p mode & ~umask; success if it already exists as a
/// directory, even when created concurrently.
Status createDirectories(const std::string &path, unsigned mode = 0777);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_NPY_H
