//===- Frontend.cpp - Parse and check .attn specs ---------------------------===//
//
// parseSpec: the front end's entry point: Parser, imports, then Sema.
// Also what every reader of spec files shares: line-end normalisation, the
// guarded file reader (regular files only, size-capped) and -D splitting.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Parser.h"
#include "attnc/Frontend/Sema.h"
#include "Import.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using llvm::StringRef;

static const StringRef kUtf8Bom = "\xEF\xBB\xBF";

bool attnc::needsNormalization(StringRef text) {
  return text.starts_with(kUtf8Bom) || text.contains('\r');
}

std::string attnc::normalizeSpecText(StringRef text) {
  if (text.starts_with(kUtf8Bom))
    text = text.drop_front(kUtf8Bom.size());
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      out += text[i];
      continue;
    }
    out += '\n'; // CR alone or the CR of CRLF
    if (i + 1 < text.size() && text[i + 1] == '\n')
      ++i;
  }
  return out;
}

unsigned attnc::addSpecBuffer(llvm::SourceMgr &sm, StringRef text,
                              StringRef name, llvm::SMLoc includeLoc) {
  std::unique_ptr<llvm::MemoryBuffer> buffer =
      needsNormalization(text)
          ? llvm::MemoryBuffer::getMemBufferCopy(normalizeSpecText(text), name)
          : llvm::MemoryBuffer::getMemBufferCopy(text, name);
  return sm.AddNewSourceBuffer(std::move(buffer), includeLoc);
}

std::optional<attnc::ast::Module>
attnc::parseSpec(llvm::SourceMgr &sm, unsigned bufferId,
                 const FrontendOptions &options, llvm::raw_ostream &errs) {
  if (bufferId == 0 || bufferId > sm.getNumBuffers()) {
    llvm::WithColor::error(errs) << "invalid spec buffer " << bufferId << "\n";
    return std::nullopt;
  }
  const llvm::MemoryBuffer *buffer = sm.getMemoryBuffer(bufferId);
  if (needsNormalization(buffer->getBuffer()))
    bufferId = addSpecBuffer(sm, buffer->getBuffer(),
                             buffer->getBufferIdentifier());
  std::optional<ast::Module> module = parseModule(sm, bufferId, errs);
  if (!module || !resolveImports(*module, sm, options, errs))
    return std::nullopt;
  if (!checkModule(*module, options, sm, bufferId, errs))
    return std::nullopt;
  return module;
}

//===----------------------------------------------------------------------===//
// Reading spec files
//===----------------------------------------------------------------------===//

static std::string sizeLimitText(uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

static const char *fileKind(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  return "not a regular file";
}

/// Reads `fd` to its end into `out`, failing once it holds more than
/// `maxBytes`. Returns 0, -1 with errno set, or 1 when it is too large.
static int readAllCapped(int fd, uint64_t maxBytes, std::string &out) {
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return 0;
    if (out.size() + static_cast<uint64_t>(n) > maxBytes)
      return 1;
    out.append(chunk, static_cast<size_t>(n));
  }
}

std::unique_ptr<llvm::MemoryBuffer>
attnc::readSpecFile(StringRef path, std::string &error, uint64_t maxBytes,
                    StringRef what) {
  std::string name = path == "-" ? "<stdin>" : path.str();
  auto tooLarge = [&] {
    error = name + ": " + what.str() + " is larger than " +
            sizeLimitText(maxBytes);
    return nullptr;
  };
  auto failErrno = [&](int err) {
    error = "cannot read '" + name + "': " + std::strerror(err);
    return nullptr;
  };
  std::string text;
  if (path == "-") {
    // Stdin may be a pipe or a terminal: read it, but never past the cap.
    int r = readAllCapped(STDIN_FILENO, maxBytes, text);
    if (r < 0)
      return failErrno(errno);
    if (r > 0)
      return tooLarge();
    return llvm::MemoryBuffer::getMemBufferCopy(text, name);
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  std::string cpath = path.str();
  int fd = ::open(cpath.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return failErrno(errno);
  struct stat st;
  int r = ::fstat(fd, &st);
  if (r == 0 && !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "cannot read '" + name + "': it is " + fileKind(st.st_mode) +
            ", not a regular file";
    return nullptr;
  }
  if (r == 0 && static_cast<uint64_t>(st.st_size) > maxBytes) {
    ::close(fd);
    return tooLarge();
  }
  // The file may still grow after fstat: the read is capped as well.
  r = r == 0 ? readAllCapped(fd, maxBytes, text) : -1;
  int err = errno;
  ::close(fd);
  if (r < 0)
    return failErrno(err);
  if (r > 0)
    return tooLarge();
  return llvm::MemoryBuffer::getMemBufferCopy(text, name);
}

//===----------------------------------------------------------------------===//
// -D NAME=VALUE
//===----------------------------------------------------------------------===//

std::string attnc::splitDefine(StringRef arg,
                               std::pair<std::string, std::string> &out) {
  size_t eq = arg.find('=');
  if (eq == StringRef::npos || eq == 0)
    return "expected NAME=VALUE";
  StringRef name = arg.take_front(eq);
  auto isStart = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  auto isChar = [&](char c) { return isStart(c) || (c >= '0' && c <= '9'); };
  if (!isStart(name[0]) || !llvm::all_of(name.drop_front(), isChar))
    return "'" + name.str() + "' is not a param name (letters, digits and '_')";
  out = {name.str(), arg.drop_front(eq + 1).str()};
  return "";
}

std::string attnc::parseDefine(StringRef arg,
                               std::pair<std::string, std::string> &out) {
  std::string why = splitDefine(arg, out);
  return why.empty() ? why : "-D " + arg.str() + ": " + why;
}
