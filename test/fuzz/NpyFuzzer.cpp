//===- NpyFuzzer.cpp - libFuzzer target for the .npy reader ---------------===//
//
// Feeds arbitrary bytes to runtime::parseNpy, the reader behind every
// `attnc run` tensor file. Any crash, sanitizer report or hang fails. A file
// that parses must be self-consistent: its byte count is its element count
// times the dtype's size, and writing it back with encodeNpy and reading
// that gives the same dtype, shape and bytes (bool data read as 0/1).
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Npy.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

using namespace attnc::runtime;

[[noreturn]] static void finding(const char *what) {
  std::fprintf(stderr, "npy fuzzer: %s\n", what);
  std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char *>(data), size);
  Expected<Tensor> t = parseNpy(bytes, "fuzz.npy");
  if (!t.ok()) {
    if (t.status().message().find("fuzz.npy") == std::string::npos)
      finding("an error that does not name the file");
    return 0;
  }
  // The element count, 0 if any dimension is; a product that overflows
  // could not fit in the file.
  int64_t count = 1;
  for (int64_t d : t->shape())
    if (d < 0)
      finding("a negative dimension");
    else if (d == 0)
      count = 0;
  for (int64_t d : t->shape())
    if (count != 0 && __builtin_mul_overflow(count, d, &count))
      finding("a shape whose element count overflows");
  if (count != t->numel() ||
      t->nbytes() != size_t(t->numel()) * dtypeSize(t->dtype()))
    finding("a tensor whose size disagrees with its shape");
  if (t->nbytes() > size)
    finding("more data than the file holds");
  Expected<std::string> again = encodeNpy(t->view());
  if (!again.ok())
    finding("a parsed tensor that cannot be written back");
  Expected<Tensor> back = parseNpy(*again, "again.npy");
  if (!back.ok())
    finding("writeNpy's bytes do not parse");
  if (back->dtype() != t->dtype() || back->shape() != t->shape() ||
      back->nbytes() != t->nbytes() ||
      (t->nbytes() && std::memcmp(back->data(), t->data(), t->nbytes())))
    finding("a tensor that does not survive encodeNpy and parseNpy");
  return 0;
}
