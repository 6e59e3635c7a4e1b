//===- DType.cpp - Element types and exact float conversions --------------===//
//
// All narrowing conversions go through one routine, roundBinary, over the bit
// patterns of IEEE-style binary formats described by (exponent bits, stored
// mantissa bits). It normalises the source (subnormals included, which
// matters for float -> bfloat16: both share float's exponent range), places
// the leading bit at the target's exponent, and rounds the dropped bits to
// nearest even. A carry out of the mantissa moves into the exponent field by
// plain integer addition, which is also how the largest finite values round
// up to infinity. Widening goes through widenBinary and is exact.
//
// Values are never routed through hardware float conversions: a float ->
// double cast on x86 quiets signalling NaNs, which would break the bit-exact
// round trip of every 16-bit pattern that the tests check.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/DType.h"

#include <cstring>

using namespace attnc::runtime;

namespace {
uint64_t lowMask(int bits) {
  return bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
}

/// The parts of a binary floating-point bit pattern.
struct Parts {
  uint64_t sign; // 0 or 1
  uint64_t exp;  // biased exponent field
  uint64_t frac; // stored mantissa field
};

Parts split(uint64_t x, int expBits, int mantBits) {
  return {(x >> (expBits + mantBits)) & 1, (x >> mantBits) & lowMask(expBits),
          x & lowMask(mantBits)};
}

/// Rounds the value with bit pattern \p x in format (sE, sM) to format
/// (dE, dM), to nearest even. Requires sM > dM.
uint64_t roundBinary(uint64_t x, int sE, int sM, int dE, int dM) {
  Parts p = split(x, sE, sM);
  const uint64_t dMaxExp = lowMask(dE);
  const uint64_t sign = p.sign << (dE + dM);
  const uint64_t inf = sign | (dMaxExp << dM);
  if (p.exp == lowMask(sE)) {
    if (p.frac == 0)
      return inf;
    // NaN: keep the top of the payload; if nothing survives, set the quiet
    // bit so that the result is still a NaN.
    uint64_t payload = p.frac >> (sM - dM);
    return inf | (payload ? payload : uint64_t(1) << (dM - 1));
  }
  if (p.exp == 0 && p.frac == 0)
    return sign;
  // full = the significand with its leading one at bit sM; e = the unbiased
  // exponent of that leading one.
  const int64_t sBias = int64_t(lowMask(sE - 1));
  const int64_t dBias = int64_t(lowMask(dE - 1));
  uint64_t full = p.frac;
  int64_t e;
  if (p.exp == 0) {
    e = 1 - sBias;
    while (!(full >> sM)) {
      full <<= 1;
      --e;
    }
  } else {
    full |= uint64_t(1) << sM;
    e = int64_t(p.exp) - sBias;
  }
  const int64_t biased = e + dBias;
  if (biased >= int64_t(dMaxExp))
    return inf;
  uint64_t mant;
  int64_t shift;
  if (biased >= 1) {
    shift = sM - dM;
    mant = (uint64_t(biased) << dM) | ((full & lowMask(sM)) >> shift);
  } else {
    // Subnormal result: the quantum is fixed at 2^(1 - dBias - dM).
    shift = (sM - dM) + (1 - biased);
    if (shift > sM + 1)
      return sign; // below half the smallest subnormal
    mant = full >> shift;
  }
  const uint64_t rem = full & lowMask(int(shift));
  const uint64_t halfway = uint64_t(1) << (shift - 1);
  if (rem > halfway || (rem == halfway && (mant & 1)))
    ++mant;
  return sign | mant;
}

/// Widens \p x from format (sE, sM) to the larger format (dE, dM), exactly.
uint64_t widenBinary(uint64_t x, int sE, int sM, int dE, int dM) {
  Parts p = split(x, sE, sM);
  const uint64_t sign = p.sign << (dE + dM);
  if (p.exp == lowMask(sE))
    return sign | (lowMask(dE) << dM) | (p.frac << (dM - sM));
  if (p.exp == 0 && p.frac == 0)
    return sign;
  const int64_t sBias = int64_t(lowMask(sE - 1));
  const int64_t dBias = int64_t(lowMask(dE - 1));
  uint64_t frac = p.frac;
  int64_t e;
  if (p.exp == 0) {
    e = 1 - sBias;
    while (!(frac >> sM)) {
      frac <<= 1;
      --e;
    }
    frac &= lowMask(sM);
  } else {
    e = int64_t(p.exp) - sBias;
  }
  return sign | (uint64_t(e + dBias) << dM) | (frac << (dM - sM));
}

uint32_t floatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float floatFromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
uint64_t doubleBits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}
} // namespace

size_t attnc::runtime::dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::Bool:
    return 1;
  }
  return 0;
}

const char *attnc::runtime::dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "float32";
  case DType::F16:
    return "float16";
  case DType::BF16:
    return "bfloat16";
  case DType::F64:
    return "float64";
  case DType::I32:
    return "int32";
  case DType::I64:
    return "int64";
  case DType::Bool:
    return "bool";
  }
  return "invalid";
}

std::optional<DType> attnc::runtime::parseDType(std::string_view name) {
  struct Entry {
    const char *longName, *shortName;
    DType type;
  };
  static const Entry table[] = {
      {"float32", "f32", DType::F32},    {"float16", "f16", DType::F16},
      {"bfloat16", "bf16", DType::BF16}, {"float64", "f64", DType::F64},
      {"int32", "i32", DType::I32},      {"int64", "i64", DType::I64},
      {"bool", "b1", DType::Bool}};
  for (const Entry &e : table)
    if (name == e.longName || name == e.shortName)
      return e.type;
  return std::nullopt;
}

bool attnc::runtime::isFloatDType(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
         t == DType::F64;
}

bool attnc::runtime::isIntDType(DType t) {
  return t == DType::I32 || t == DType::I64;
}

uint16_t attnc::runtime::floatToHalf(float f) {
  return uint16_t(roundBinary(floatBits(f), 8, 23, 5, 10));
}

float attnc::runtime::halfToFloat(uint16_t h) {
  return floatFromBits(uint32_t(widenBinary(h, 5, 10, 8, 23)));
}

uint16_t attnc::runtime::floatToBFloat16(float f) {
  return uint16_t(roundBinary(floatBits(f), 8, 23, 8, 7));
}

float attnc::runtime::bfloat16ToFloat(uint16_t b) {
  // bfloat16 is the top half of a float: widening is a shift.
  return floatFromBits(uint32_t(b) << 16);
}

uint16_t attnc::runtime::doubleToHalf(double d) {
  return uint16_t(roundBinary(doubleBits(d), 11, 52, 5, 10));
}

uint16_t attnc::runtime::doubleToBFloat16(double d) {
  return uint16_t(roundBinary(doubleBits(d), 11, 52, 8, 7));
}

float attnc::runtime::doubleToFloat(double d) {
  return floatFromBits(uint32_t(roundBinary(doubleBits(d), 11, 52, 8, 23)));
}
