//===- Sha256.h - SHA-256 and HMAC-SHA256 -----------------------*- C++ -*-===//
//
// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written out here because
// the runtime links no crypto library (and no LLVM). The kernel cache
// authenticates its entries with HMAC-SHA256 under a per-user secret key
// (KernelCache.h); nothing else in attnc needs a cryptographic hash.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_SHA256_H
#define ATTNC_RUNTIME_SHA256_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnc::runtime {

/// A SHA-256 digest.
using Sha256Digest = std::array<uint8_t, 32>;

/// Incremental SHA-256: update() any number of times, then finish() once.
class Sha256 {
public:
  Sha256();
  void update(const void *data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// The digest of everything passed to update(); the object is spent.
  Sha256Digest finish();

private:
  void compress(const uint8_t *block);
  uint32_t state[8];
  uint8_t buffer[64];
  size_t buffered = 0;
  uint64_t totalBytes = 0;
};

/// SHA-256 of \p data.
Sha256Digest sha256(std::string_view data);

/// Incremental HMAC-SHA256 under a key of any length.
class HmacSha256 {
public:
  explicit HmacSha256(std::string_view key);
  void update(const void *data, size_t len) { inner.update(data, len); }
  void update(std::string_view s) { inner.update(s); }
  /// The MAC of everything passed to update(); the object is spent.
  Sha256Digest finish();

private:
  Sha256 inner;
  uint8_t outerPad[64];
};

/// HMAC-SHA256 of \p message under \p key.
Sha256Digest hmacSha256(std::string_view key, std::string_view message);

/// Lowercase hex of a digest (64 digits).
std::string toHex(const Sha256Digest &d);

/// Equality that takes the same time wherever the digests differ.
bool digestsEqual(const uint8_t *a, const uint8_t *b, size_t len);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_SHA256_H
