//===- Sha256.cpp - SHA-256 and HMAC-SHA256 -------------------------------===//
//
// A direct transcription of FIPS 180-4 section 6.2 (SHA-256) and RFC 2104
// (HMAC, block size 64 bytes). Messages are processed in 64-byte blocks;
// the padding appends 0x80, zeros and the message length in bits as a
// big-endian 64-bit number.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Sha256.h"

#include <cstring>

using namespace attnc::runtime;

namespace {
constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
} // namespace

Sha256::Sha256()
    : state{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f,
            0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::compress(const uint8_t *block) {
  uint32_t w[64];
  for (int t = 0; t < 16; ++t)
    w[t] = uint32_t(block[4 * t]) << 24 | uint32_t(block[4 * t + 1]) << 16 |
           uint32_t(block[4 * t + 2]) << 8 | uint32_t(block[4 * t + 3]);
  for (int t = 16; t < 64; ++t) {
    uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3],
           e = state[4], f = state[5], g = state[6], h = state[7];
  for (int t = 0; t < 64; ++t) {
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +
                  ((e & f) ^ (~e & g)) + kRound[t] + w[t];
    uint32_t t2 =
        (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

void Sha256::update(const void *data, size_t len) {
  const auto *p = static_cast<const uint8_t *>(data);
  totalBytes += len;
  if (buffered > 0) {
    size_t take = len < 64 - buffered ? len : 64 - buffered;
    std::memcpy(buffer + buffered, p, take);
    buffered += take;
    p += take;
    len -= take;
    if (buffered < 64)
      return;
    compress(buffer);
    buffered = 0;
  }
  for (; len >= 64; p += 64, len -= 64)
    compress(p);
  if (len > 0)
    std::memcpy(buffer, p, len);
  buffered = len;
}

Sha256Digest Sha256::finish() {
  const uint64_t bits = totalBytes * 8;
  uint8_t pad[72] = {0x80};
  size_t padLen = buffered < 56 ? 56 - buffered : 120 - buffered;
  for (int i = 0; i < 8; ++i)
    pad[padLen + i] = uint8_t(bits >> (56 - 8 * i));
  update(pad, padLen + 8);
  Sha256Digest out;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j)
      out[4 * i + j] = uint8_t(state[i] >> (24 - 8 * j));
  return out;
}

Sha256Digest attnc::runtime::sha256(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

HmacSha256::HmacSha256(std::string_view key) {
  // RFC 2104: keys longer than the block are hashed first, shorter ones
  // padded with zeros.
  uint8_t k[64] = {};
  if (key.size() > 64) {
    Sha256Digest d = sha256(key);
    std::memcpy(k, d.data(), d.size());
  } else if (!key.empty()) {
    std::memcpy(k, key.data(), key.size());
  }
  uint8_t innerPad[64];
  for (int i = 0; i < 64; ++i) {
    innerPad[i] = k[i] ^ 0x36;
    outerPad[i] = k[i] ^ 0x5c;
  }
  inner.update(innerPad, sizeof innerPad);
}

Sha256Digest HmacSha256::finish() {
  Sha256Digest innerDigest = inner.finish();
  Sha256 outer;
  outer.update(outerPad, sizeof outerPad);
  outer.update(innerDigest.data(), innerDigest.size());
  return outer.finish();
}

Sha256Digest attnc::runtime::hmacSha256(std::string_view key,
                                        std::string_view message) {
  HmacSha256 h(key);
  h.update(message);
  return h.finish();
}

std::string attnc::runtime::toHex(const Sha256Digest &d) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

bool attnc::runtime::digestsEqual(const uint8_t *a, const uint8_t *b,
                                  size_t len) {
  uint8_t diff = 0;
  for (size_t i = 0; i < len; ++i)
    diff |= uint8_t(a[i] ^ b[i]);
  return diff == 0;
}
