//===- DType.h - Element types and exact float conversions ------*- C++ -*-===//
//
// The element types that kernels read and write, their sizes and names, and
// the conversions between float32 and the 16-bit float formats. Conversions
// are bit manipulation, not compiler intrinsics, so that every compiler and
// target rounds identically: IEEE round to nearest, ties to even, with
// overflow to infinity, gradual underflow to subnormals, and NaN kept NaN
// (sign and as much payload as fits; a payload that would vanish becomes
// the quiet bit, so no NaN ever turns into infinity).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_DTYPE_H
#define ATTNC_RUNTIME_DTYPE_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace attnc::runtime {

/// An element type. Bool is one byte holding 0 or 1.
enum class DType { F32, F16, BF16, F64, I32, I64, Bool };

/// The size of one element in bytes.
size_t dtypeSize(DType t);
/// The numpy-style name: "float32", "float16", "bfloat16", "float64",
/// "int32", "int64", "bool".
const char *dtypeName(DType t);
/// Parses a name from dtypeName or a short form ("f32", "f16", "bf16",
/// "f64", "i32", "i64"); nullopt if unknown.
std::optional<DType> parseDType(std::string_view name);
/// True for F32, F16, BF16 and F64.
bool isFloatDType(DType t);
/// True for I32 and I64.
bool isIntDType(DType t);

/// Rounds a float to the nearest IEEE binary16 bit pattern.
uint16_t floatToHalf(float f);
/// Widens an IEEE binary16 bit pattern to float (exact).
float halfToFloat(uint16_t h);
/// Rounds a float to the nearest bfloat16 bit pattern.
uint16_t floatToBFloat16(float f);
/// Widens a bfloat16 bit pattern to float (exact).
float bfloat16ToFloat(uint16_t b);

/// Rounds a double to the nearest binary16 bit pattern, in one rounding
/// (going through float would round twice and can be off by one ulp).
uint16_t doubleToHalf(double d);
/// Rounds a double to the nearest bfloat16 bit pattern, in one rounding.
uint16_t doubleToBFloat16(double d);
/// Rounds a double to the nearest float; out-of-range values become
/// +-FLT_MAX or +-inf as IEEE says, without the undefined behaviour of a
/// C++ cast.
float doubleToFloat(double d);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_DTYPE_H
