//===- PngWriter.cpp - Encode an RGB image as PNG with libpng -------------===//
//
// Encodes to memory, so that the caller writes the file atomically.
//
//===----------------------------------------------------------------------===//
#include "attnc/PngWriter.h"

#include <csetjmp>
#include <png.h>

using namespace attnc;

static void appendToString(png_structp png, png_bytep data, png_size_t n) {
  auto *out = static_cast<std::string *>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char *>(data), n);
}

std::optional<std::string> attnc::encodePng(const RgbImage &image) {
  std::string out;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png)
    return std::nullopt;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return std::nullopt;
  }
  // libpng reports errors by longjmp; nothing with a destructor lives
  // between here and the end of the function except `out`, which was
  // constructed before setjmp.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return std::nullopt;
  }
  png_set_write_fn(png, &out, appendToString, nullptr);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(
                           &image.pixels[size_t(y) * image.width * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}
