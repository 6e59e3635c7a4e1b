//===- Npy.h - .npy files and atomic file writes ----------------*- C++ -*-===//
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
// The file helpers here are shared with the kernel cache. Writes are
// atomic: a temporary file in the target's directory is written, fsynced
// and renamed over the target, so a reader or a crash never sees a partial
// file, and a failed write leaves neither a temporary nor a changed target.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_NPY_H
#define ATTNC_RUNTIME_NPY_H

#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <string>
#include <string_view>
#include <vector>

namespace attnc::runtime {

/// Reads the .npy file at \p path into a contiguous tensor.
Expected<Tensor> readNpy(const std::string &path);

/// Parses the bytes of a .npy file held in memory; \p name stands for the
/// file in messages.
Expected<Tensor> parseNpy(std::string_view bytes, const std::string &name);

/// Writes \p t to \p path as a C-order .npy file (version 1.0), atomically.
/// Strided views are written as their contiguous copy. bfloat16 has no
/// numpy dtype and is an error.
Status writeNpy(const std::string &path, const TensorView &t);

/// The bytes of the .npy file that writeNpy would write.
Expected<std::string> encodeNpy(const TensorView &t);

/// Reads a whole regular file. If \p missing is given, it is set to whether
/// the failure (if any) was that the file does not exist, which callers
/// that treat absence as normal (the cache) must tell from real errors.
Expected<std::string> readFile(const std::string &path,
                               bool *missing = nullptr);

/// Writes the concatenation of \p chunks to \p path atomically: temporary
/// file in the same directory, fsync, rename; on failure the temporary is
/// removed and \p path is untouched.
Status writeFileAtomic(const std::string &path,
                       const std::vector<std::string_view> &chunks);

/// Writes \p bytes to \p path atomically (see the overload above).
Status writeFileAtomic(const std::string &path, std::string_view bytes);

/// Creates directory \p path and its missing parents (mkdir -p); success if
/// it already exists as a directory, even when created concurrently.
Status createDirectories(const std::string &path);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_NPY_H
