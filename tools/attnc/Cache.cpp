//===- Cache.cpp - attnc cache stats|clear: the kernel cache on disk ------===//
//
// `attnc cache stats` prints the kernel cache's directory, its entries and
// their size, the size limit (ATTNC_CACHE_MAX) and the hit and miss counts
// of disk lookups; `attnc cache clear` removes the entries, the stale
// temporaries and the counters, and says what it removed (the HMAC key
// stays: see KernelCache::clear). Both fail with `attnc: error:` when the
// directory is refused (not ours, writable by others, a bad key file) or
// none is configured.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"

#include "attnc/Runtime/KernelCache.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace attnc;
using runtime::KernelCache;

namespace {
/// "1.5 MiB (1572864 bytes)".
std::string showSize(uint64_t bytes) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::string out;
  llvm::raw_string_ostream os(out);
  if (u == 0)
    os << bytes << " bytes";
  else
    os << llvm::format("%.1f ", v) << units[u] << " (" << bytes << " bytes)";
  return out;
}

void printUsage(llvm::raw_ostream &os) {
  os << "usage: attnc cache stats|clear\n\n"
        "  stats   print the kernel cache's directory, entries, size, size "
        "limit,\n"
        "          hits and misses\n"
        "  clear   remove every entry, the stale temporaries and the "
        "statistics\n\n"
        "The directory is ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc, else\n"
        "$HOME/.cache/attnc; ATTNC_CACHE_MAX (bytes, K/M/G suffix) bounds it, "
        "default 1G.\n";
}

int fail(const std::string &message) { return reportError(message); }
} // namespace

int attnc::runCache(const std::vector<std::string> &args) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    printUsage(llvm::outs());
    return 0;
  }
  if (args.size() != 1 || (args[0] != "stats" && args[0] != "clear")) {
    fail(args.empty() ? "'attnc cache' expects stats or clear"
                      : "'attnc cache' expects stats or clear, not '" +
                            args[0] + "'" + (args.size() > 1 ? " ..." : ""));
    printUsage(llvm::errs()); // after the error, as `attnc` alone does
    return 1;
  }
  KernelCache cache;
  if (cache.directory().empty())
    return fail("no kernel cache directory: set ATTNC_CACHE_DIR, "
                "XDG_CACHE_HOME or HOME");
  if (args[0] == "stats") {
    runtime::Expected<runtime::CacheStats> s = cache.stats();
    if (!s.ok())
      return fail(s.status().message());
    llvm::outs() << "cache directory  " << cache.directory() << "\n"
                 << "entries          " << s->entries << "\n"
                 << "total size       " << showSize(s->bytes) << "\n"
                 << "size limit       " << showSize(s->limit) << "\n"
                 << "hits             " << s->hits << "\n"
                 << "misses           " << s->misses << "\n";
    return 0;
  }
  runtime::Expected<runtime::CacheCleared> c = cache.clear();
  if (!c.ok())
    return fail(c.status().message());
  llvm::outs() << "removed " << c->entries
               << (c->entries == 1 ? " entry (" : " entries (")
               << showSize(c->bytes) << "), " << c->temporaries
               << (c->temporaries == 1 ? " stale temporary" : " stale temporaries")
               << (c->stats ? " and the statistics" : "") << " from "
               << cache.directory() << "\n";
  return 0;
}
