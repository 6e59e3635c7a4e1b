//===- Npy.cpp - .npy files and safe file reads --------------------------===//
//
// Reading works on a "source" (a file descriptor or a byte string) through
// one function, so readNpy and parseNpy share every check. The order of the
// checks is what keeps a hostile file harmless: the preamble is checked
// against the real file size before the header is read, the header length
// is capped, and the data size implied by the shape is computed with
// overflow checks and compared with the bytes actually present before the
// tensor is allocated.
//
// The header is a Python dict literal; the parser accepts exactly what
// numpy's writers produce (any key order, either quote, optional trailing
// commas, whitespace anywhere, the 'L' suffix of Python 2 integers) and
// nothing else, and rejects unknown and duplicate keys.
//
// readFile is here too (it shares openRegular); the write side of the file
// helpers is FileWrite.cpp.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Npy.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the runtime reads little-endian .npy data in place"
#endif

using namespace attnc::runtime;

namespace {
constexpr std::string_view kMagic("\x93NUMPY", 6);
/// numpy itself refuses headers over 10000 bytes by default; 1 MiB leaves
/// room for any real shape while bounding what a lying file can make us
/// read.
constexpr uint64_t kMaxHeaderLen = 1 << 20;
constexpr size_t kMaxRank = 64;

std::string errnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// Printable rendering of a byte for messages.
std::string showChar(char c) {
  if (c >= 0x20 && c < 0x7f)
    return std::string("'") + c + "'";
  static const char hex[] = "0123456789abcdef";
  unsigned char u = static_cast<unsigned char>(c);
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

struct Header {
  DType dtype = DType::F32;
  bool fortran = false;
  std::vector<int64_t> shape;
};

Expected<DType> dtypeFromDescr(const std::string &d) {
  if (d == "<f4" || d == "=f4")
    return DType::F32;
  if (d == "<f2" || d == "=f2")
    return DType::F16;
  if (d == "<f8" || d == "=f8")
    return DType::F64;
  if (d == "<i4" || d == "=i4")
    return DType::I32;
  if (d == "<i8" || d == "=i8")
    return DType::I64;
  if (d == "|b1" || d == "b1" || d == "?")
    return DType::Bool;
  if (!d.empty() && d[0] == '>')
    return Status::error("big-endian dtype '" + d +
                         "' is not supported; save the array with "
                         "a.astype('<" +
                         d.substr(1) + "')");
  if (d.find('O') != std::string::npos)
    return Status::error("object arrays are not supported");
  return Status::error("unsupported dtype '" + d +
                       "' (supported: <f4 <f2 <f8 <i4 <i8 |b1)");
}

const char *descrFor(DType t) {
  switch (t) {
  case DType::F32:
    return "<f4";
  case DType::F16:
    return "<f2";
  case DType::F64:
    return "<f8";
  case DType::I32:
    return "<i4";
  case DType::I64:
    return "<i8";
  case DType::Bool:
    return "|b1";
  case DType::BF16:
    break;
  }
  return nullptr;
}

/// Recursive descent over the header's dict literal.
class HeaderParser {
public:
  explicit HeaderParser(std::string_view text) : s(text) {}

  Status parse(Header &h) {
    bool seenDescr = false, seenFortran = false, seenShape = false;
    skipSpace();
    if (Status st = expect('{'); !st.ok())
      return st;
    while (true) {
      skipSpace();
      if (consume('}'))
        break;
      std::string key;
      if (Status st = parseString(key); !st.ok())
        return st;
      skipSpace();
      if (Status st = expect(':'); !st.ok())
        return st;
      skipSpace();
      Status st;
      bool *seen;
      if (key == "descr") {
        seen = &seenDescr;
        if (peek() == '[')
          return Status::error("structured dtypes are not supported");
        std::string descr;
        st = parseString(descr);
        if (st.ok()) {
          Expected<DType> t = dtypeFromDescr(descr);
          st = t.status();
          if (t.ok())
            h.dtype = *t;
        }
      } else if (key == "fortran_order") {
        seen = &seenFortran;
        st = parseBool(h.fortran);
      } else if (key == "shape") {
        seen = &seenShape;
        st = parseShape(h.shape);
      } else {
        return Status::error("unexpected header key '" + key + "'");
      }
      if (!st.ok())
        return st;
      if (*seen)
        return Status::error("duplicate header key '" + key + "'");
      *seen = true;
      skipSpace();
      if (consume(','))
        continue;
      if (Status st2 = expect('}'); !st2.ok())
        return st2;
      break;
    }
    skipSpace();
    if (i != s.size())
      return fail("unexpected " + showChar(s[i]) + " after the header dict");
    if (!seenDescr || !seenFortran || !seenShape)
      return Status::error("header lacks the key '" +
                           std::string(!seenDescr     ? "descr"
                                       : !seenFortran ? "fortran_order"
                                                      : "shape") +
                           "'");
    return Status::success();
  }

private:
  std::string_view s;
  size_t i = 0;

  char peek() const { return i < s.size() ? s[i] : '\0'; }
  void skipSpace() {
    while (i < s.size() &&
           (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
      ++i;
  }
  bool consume(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  Status fail(const std::string &msg) const {
    return Status::error("malformed header at byte " + std::to_string(i) +
                         ": " + msg);
  }
  Status expect(char c) {
    if (consume(c))
      return Status::success();
    return fail(std::string("expected '") + c + "', found " +
                (i < s.size() ? showChar(s[i]) : "the end"));
  }
  Status parseString(std::string &out) {
    char q = peek();
    if (q != '\'' && q != '"')
      return fail("expected a string");
    size_t start = ++i;
    while (i < s.size() && s[i] != q) {
      if (s[i] == '\\' || s[i] == '\n')
        return fail("unsupported character in a string");
      ++i;
    }
    if (i == s.size())
      return fail("unterminated string");
    out.assign(s.substr(start, i - start));
    ++i;
    return Status::success();
  }
  Status parseBool(bool &out) {
    if (s.substr(i, 4) == "True") {
      i += 4;
      out = true;
      return Status::success();
    }
    if (s.substr(i, 5) == "False") {
      i += 5;
      out = false;
      return Status::success();
    }
    return fail("expected True or False");
  }
  Status parseInt(int64_t &out) {
    if (peek() < '0' || peek() > '9')
      return fail("expected a non-negative integer dimension");
    out = 0;
    while (peek() >= '0' && peek() <= '9') {
      if (__builtin_mul_overflow(out, int64_t(10), &out) ||
          __builtin_add_overflow(out, int64_t(s[i] - '0'), &out))
        return fail("dimension does not fit int64");
      ++i;
    }
    consume('L');
    return Status::success();
  }
  Status parseShape(std::vector<int64_t> &out) {
    if (Status st = expect('('); !st.ok())
      return st;
    out.clear();
    while (true) {
      skipSpace();
      if (consume(')'))
        break;
      int64_t d;
      if (Status st = parseInt(d); !st.ok())
        return st;
      if (out.size() == kMaxRank)
        return fail("more than " + std::to_string(kMaxRank) + " dimensions");
      out.push_back(d);
      skipSpace();
      // numpy writes "(5,)" for rank 1; "(5)" is not a tuple.
      if (consume(','))
        continue;
      if (out.size() == 1)
        return fail("a rank-1 shape needs a trailing comma: (N,)");
      if (Status st = expect(')'); !st.ok())
        return st;
      break;
    }
    return Status::success();
  }
};

/// Reads \p len bytes at \p offset into \p dst, or fails.
using ReadFn = std::function<Status(uint64_t offset, size_t len, void *dst)>;

/// The whole .npy reader over a source of \p size bytes.
Expected<Tensor> readFromSource(uint64_t size, const ReadFn &read) {
  auto truncated = [&](const std::string &what) {
    return Status::error("truncated file: " + what + " (the file has " +
                         std::to_string(size) + " bytes)");
  };
  if (size < 10)
    return truncated("no room for the .npy preamble");
  char pre[12];
  if (Status st = read(0, size < 12 ? 10 : 12, pre); !st.ok())
    return st;
  if (std::string_view(pre, 6) != kMagic)
    return Status::error("not a .npy file (wrong magic bytes)");
  const unsigned major = static_cast<unsigned char>(pre[6]);
  const unsigned minor = static_cast<unsigned char>(pre[7]);
  if (major < 1 || major > 3 || minor != 0)
    return Status::error("unsupported .npy format version " +
                         std::to_string(major) + "." + std::to_string(minor));
  auto byteAt = [&](int k) { return uint64_t(uint8_t(pre[k])); };
  uint64_t headerLen, headerStart;
  if (major == 1) {
    headerLen = byteAt(8) | byteAt(9) << 8;
    headerStart = 10;
  } else {
    if (size < 12)
      return truncated("no room for the version 2+ preamble");
    headerLen =
        byteAt(8) | byteAt(9) << 8 | byteAt(10) << 16 | byteAt(11) << 24;
    headerStart = 12;
  }
  if (headerLen > kMaxHeaderLen)
    return Status::error("header length " + std::to_string(headerLen) +
                         " is implausibly large");
  if (headerStart + headerLen > size)
    return truncated("the header claims " + std::to_string(headerLen) +
                     " bytes");
  std::string text(headerLen, '\0');
  if (Status st = read(headerStart, headerLen, text.data()); !st.ok())
    return st;
  Header h;
  if (Status st = HeaderParser(text).parse(h); !st.ok())
    return st;

  Expected<int64_t> n = checkedNumel(h.shape);
  int64_t nbytes;
  if (!n.ok() ||
      __builtin_mul_overflow(*n, int64_t(dtypeSize(h.dtype)), &nbytes))
    return Status::error("shape " + shapeToString(h.shape) +
                         " is too large to address");
  const uint64_t dataStart = headerStart + headerLen;
  const uint64_t present = size - dataStart;
  if (present < uint64_t(nbytes))
    return truncated("shape " + shapeToString(h.shape) + " of " +
                     dtypeName(h.dtype) + " needs " + std::to_string(nbytes) +
                     " data bytes, found " + std::to_string(present));
  if (present > uint64_t(nbytes))
    return Status::error(std::to_string(present - uint64_t(nbytes)) +
                         " unexpected bytes after the data of shape " +
                         shapeToString(h.shape));

  // Fortran order: the data is the C-order array of the reversed shape.
  std::vector<int64_t> stored(h.shape.rbegin(), h.shape.rend());
  Expected<Tensor> t = Tensor::zeros(h.dtype, h.fortran ? stored : h.shape);
  if (!t.ok())
    return t;
  if (nbytes > 0)
    if (Status st = read(dataStart, size_t(nbytes), t->data()); !st.ok())
      return st;
  if (h.dtype == DType::Bool) {
    // numpy reads any non-zero byte as True; normalise so that a tensor's
    // bool bytes are always 0 or 1.
    auto *p = static_cast<unsigned char *>(t->data());
    for (int64_t k = 0; k < nbytes; ++k)
      p[k] = p[k] != 0;
  }
  if (!h.fortran || h.shape.size() < 2)
    return t;
  TensorView v = t->view();
  std::vector<int64_t> s = contiguousStrides(stored);
  v.shape = h.shape;
  v.strides.assign(s.rbegin(), s.rend());
  return makeContiguous(v);
}

/// Opens \p path for reading and checks that it is a regular file of at
/// most \p maxSize bytes. The open is non-blocking, so a FIFO without a
/// writer (or a device) cannot hang it; the flag is cleared again for the
/// regular file. With \p noFollow a symbolic link is refused.
Expected<int> openRegular(const std::string &path, uint64_t &size,
                          bool *missing = nullptr,
                          uint64_t maxSize = UINT64_MAX,
                          bool noFollow = false) {
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  if (noFollow)
    flags |= O_NOFOLLOW;
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    int err = errno;
    if (missing)
      *missing = err == ENOENT || err == ENOTDIR;
    if (err == ELOOP && noFollow)
      return Status::error(path + ": cannot open: is a symbolic link");
    return Status::error(path + ": cannot open: " + errnoText(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::error(path + ": cannot stat: " + errnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char *what = S_ISDIR(st.st_mode)    ? "is a directory"
                       : S_ISFIFO(st.st_mode) ? "is a FIFO"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)
                           ? "is a device"
                           : "is not a regular file";
    return Status::error(path + ": " + what + "; a regular file is needed");
  }
  if (uint64_t(st.st_size) > maxSize) {
    ::close(fd);
    return Status::error(path + ": too large (" + std::to_string(st.st_size) +
                         " bytes, at most " + std::to_string(maxSize) +
                         " allowed)");
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int err = errno;
    ::close(fd);
    return Status::error(path + ": cannot open: " + errnoText(err));
  }
  size = uint64_t(st.st_size);
  return fd;
}

/// pread() until \p len bytes arrived; EOF means the file shrank.
Status preadAll(int fd, uint64_t offset, size_t len, void *dst) {
  auto *p = static_cast<char *>(dst);
  while (len > 0) {
    ssize_t r = ::pread(fd, p, len, off_t(offset));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return Status::error("read error: " + errnoText(errno));
    if (r == 0)
      return Status::error("truncated file: it shrank while being read");
    p += r;
    len -= size_t(r);
    offset += uint64_t(r);
  }
  return Status::success();
}
} // namespace

Expected<Tensor> attnc::runtime::readNpy(const std::string &path) {
  uint64_t size = 0;
  Expected<int> fd = openRegular(path, size);
  if (!fd.ok())
    return fd.status();
  Expected<Tensor> t =
      readFromSource(size, [&](uint64_t off, size_t len, void *dst) {
        return preadAll(*fd, off, len, dst);
      });
  ::close(*fd);
  if (!t.ok())
    return t.status().withContext(path);
  return t;
}

Expected<Tensor> attnc::runtime::parseNpy(std::string_view bytes,
                                          const std::string &name) {
  Expected<Tensor> t =
      readFromSource(bytes.size(), [&](uint64_t off, size_t len, void *dst) {
        // readFromSource only asks for ranges it checked against the size.
        std::memcpy(dst, bytes.data() + off, len);
        return Status::success();
      });
  if (!t.ok())
    return t.status().withContext(name);
  return t;
}

Expected<std::string> attnc::runtime::encodeNpy(const TensorView &t) {
  if (Status st = validate(t, "tensor"); !st.ok())
    return st;
  const char *descr = descrFor(t.dtype);
  if (!descr)
    return Status::error(std::string(dtypeName(t.dtype)) +
                         " has no .npy dtype; convert to float32 first");
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': (";
  for (size_t k = 0; k < t.shape.size(); ++k)
    dict += (k ? ", " : "") + std::to_string(t.shape[k]);
  dict += t.shape.size() == 1 ? ",), }" : "), }";
  // Pad with spaces so that the data starts 64-byte aligned, as numpy does;
  // the header ends in a newline.
  size_t prefix = 10;
  size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  if (total - prefix > 65535) {
    prefix = 12;
    total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  }
  const size_t headerLen = total - prefix;
  std::string out(kMagic);
  out += char(prefix == 10 ? 1 : 2);
  out += char(0);
  for (size_t k = 0; k < prefix - 8; ++k)
    out += char((headerLen >> (8 * k)) & 0xff);
  out += dict;
  out.append(total - out.size() - 1, ' ');
  out += '\n';

  Tensor copy;
  const void *data = t.data;
  if (!t.isContiguous()) {
    Expected<Tensor> c = makeContiguous(t);
    if (!c.ok())
      return c.status();
    copy = std::move(*c);
    data = copy.data();
  }
  const size_t nbytes = size_t(t.numel()) * dtypeSize(t.dtype);
  if (nbytes)
    out.append(static_cast<const char *>(data), nbytes);
  return out;
}

Status attnc::runtime::writeNpy(const std::string &path, const TensorView &t) {
  // Encoding in memory costs one copy of the data but keeps every error
  // (bad view, unsupported dtype, allocation) ahead of any file operation.
  Expected<std::string> bytes = encodeNpy(t);
  if (!bytes.ok())
    return bytes.status().withContext(path);
  return writeFileAtomic(path, *bytes);
}

Expected<std::string> attnc::runtime::readFile(const std::string &path,
                                               bool *missing, uint64_t maxSize,
                                               bool noFollow) {
  if (missing)
    *missing = false;
  uint64_t size = 0;
  Expected<int> fd = openRegular(path, size, missing, maxSize, noFollow);
  if (!fd.ok())
    return fd.status();
  std::string out;
  Status st;
  try {
    out.resize(size);
  } catch (const std::exception &) {
    st = Status::error(path + ": cannot allocate " + std::to_string(size) +
                       " bytes");
  }
  if (st.ok() && size)
    st = preadAll(*fd, 0, size, out.data()).withContext(path);
  ::close(*fd);
  if (!st.ok())
    return st;
  return out;
}
