//===- PngWriter.h - Encode an RGB image as PNG -----------------*- C++ -*-===//
#ifndef ATTNC_TOOLS_PNGWRITER_H
#define ATTNC_TOOLS_PNGWRITER_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnc {
/// An 8-bit RGB image, row-major.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels; // width * height * 3
  RgbImage(int w, int h) : width(w), height(h), pixels(size_t(w) * h * 3) {}
  void set(int x, int y, uint32_t rgb) {
    uint8_t *p = &pixels[(size_t(y) * width + x) * 3];
    p[0] = rgb >> 16, p[1] = (rgb >> 8) & 0xff, p[2] = rgb & 0xff;
  }
};
/// The PNG file bytes, or std::nullopt if libpng fails.
std::optional<std::string> encodePng(const RgbImage &image);
} // namespace attnc

#endif // ATTNC_TOOLS_PNGWRITER_H
