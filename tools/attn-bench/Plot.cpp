//===- Plot.cpp - A small line chart as PNG (attn-bench --plot) -----------===//
//
// See Plot.h. The layout: a title on top, the plot area on the left with
// its y ticks (linear from 0) and x ticks (log2, at the given values), the
// legend in a column on the right, so that it never hides a line.
//
//===----------------------------------------------------------------------===//
#include "Plot.h"

#include "attnc/PngWriter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace attnc::bench {
namespace {

/// A 5x8 bitmap font: 7 rows above the baseline, one for descenders.
struct Glyph {
  char c;
  const char *rows[8];
};
const Glyph kFont[] = {
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", ".....", "....."}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....."}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....."}},
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", "....."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", "....."}},
    {'D', {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", "....."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####", "....."}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#....", "....."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", "....."}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", "....."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", "....."}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####", "....."}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", "....."}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "....."}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#....", "....."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", "....."}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", "....."}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####.", "....."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", "....."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", "....."}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", "....."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", "....."}},
    {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....."}},
    {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", "....."}},
    {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....."}},
    {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", "....."}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....."}},
    {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....."}},
    {'g', {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
    {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."}},
    {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....."}},
    {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}},
    {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#", "....."}},
    {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."}},
    {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....."}},
    {'p', {".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#"}},
    {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....."}},
    {'s', {".....", ".....", ".####", "#....", ".###.", "....#", "####.", "....."}},
    {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....."}},
    {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....."}},
    {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."}},
    {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....."}},
    {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."}},
    {'y', {".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
    {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "....."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#...", "....."}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", ".....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", ".....", "....."}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", ".....", "....."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....."}},
    {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.", "....."}},
    {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.", "....."}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", "....."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", "....."}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....."}},
    {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", ".....", "....."}},
    {'^', {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", ".....", "....."}},
    {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", "....."}},
    {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", "....."}},
    {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#..", "....."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..", "....."}},
    {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.", "....."}},
    {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", ".....", "....."}},
    {'"', {".#.#.", ".#.#.", ".....", ".....", ".....", ".....", ".....", "....."}},
    {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."}},
};
// Unknown characters draw as a box.
const Glyph kBox = {'?', {"#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####", "....."}};

const Glyph &glyphFor(char c) {
  static const std::map<char, const Glyph *> index = [] {
    std::map<char, const Glyph *> m;
    for (const Glyph &g : kFont)
      m[g.c] = &g;
    return m;
  }();
  auto it = index.find(c);
  return it == index.end() ? kBox : *it->second;
}

constexpr int kScale = 2;                  // font pixels per bitmap pixel
constexpr int kAdvance = 6 * kScale;       // per character
constexpr int kLineHeight = 9 * kScale;    // cell height with descenders
constexpr uint32_t kPalette[] = {
    0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2,
    0x17becf, 0xbcbd22, 0x7f7f7f, 0x000080, 0x800000, 0x008000, 0xff00ff,
    0x00a0a0, 0x505050, 0xa0a000, 0x4040ff, 0xff4040, 0x40a040};

struct Canvas {
  RgbImage img;
  Canvas(int w, int h) : img(w, h) { std::fill(img.pixels.begin(), img.pixels.end(), 255); }
  void px(int x, int y, uint32_t rgb) {
    if (x >= 0 && y >= 0 && x < img.width && y < img.height)
      img.set(x, y, rgb);
  }
  void rect(int x0, int y0, int x1, int y1, uint32_t rgb) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x)
        px(x, y, rgb);
  }
  /// Text with its top-left corner at (x, y); rotated: reads bottom to top
  /// with (x, y) its bottom-left corner.
  void text(int x, int y, const std::string &s, uint32_t rgb = 0,
            bool rotated = false) {
    for (size_t i = 0; i < s.size(); ++i) {
      const Glyph &g = glyphFor(s[i]);
      for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 5; ++c) {
          if (g.rows[r][c] != '#')
            continue;
          int gx = int(i) * kAdvance + c * kScale, gy = r * kScale;
          for (int dy = 0; dy < kScale; ++dy)
            for (int dx = 0; dx < kScale; ++dx) {
              if (rotated)
                px(x + gy + dy, y - gx - dx, rgb);
              else
                px(x + gx + dx, y + gy + dy, rgb);
            }
        }
    }
  }
  /// A 2-pixel line; dashed lines alternate 10 pixels on, 6 off.
  void line(double x0, double y0, double x1, double y1, uint32_t rgb,
            bool dashed, double &dashPos) {
    double len = std::hypot(x1 - x0, y1 - y0);
    int steps = std::max(1, int(std::ceil(len * 2)));
    for (int i = 0; i <= steps; ++i) {
      double t = double(i) / steps;
      double pos = dashPos + t * len;
      if (dashed && std::fmod(pos, 16.0) >= 10.0)
        continue;
      int x = int(std::lround(x0 + t * (x1 - x0)));
      int y = int(std::lround(y0 + t * (y1 - y0)));
      rect(x - 1, y - 1, x, y, rgb);
    }
    dashPos += len;
  }
};

std::string formatTick(double v, double step) {
  char buf[32];
  int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step)));
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// A round step (1, 2 or 5 times a power of ten) near range / 6.
double niceStep(double range) {
  double raw = range / 6;
  double p = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw)
      return m * p;
  return 10 * p;
}

} // namespace

std::optional<std::string> renderPlotPng(const PlotSpec &plot) {
  Canvas cv(plot.width, plot.height);
  // Legend column width from the longest label.
  size_t longest = 0;
  for (const PlotSeries &s : plot.series)
    longest = std::max(longest, s.label.size());
  const int legendW = std::min(plot.width / 2, int(longest) * kAdvance + 60);
  const int left = 90, top = 60, bottom = plot.height - 70;
  const int right = plot.width - legendW - 30;

  // Data ranges.
  std::vector<double> ticks = plot.xTicks;
  double yMax = 0;
  for (const PlotSeries &s : plot.series)
    for (auto [x, y] : s.points) {
      if (!s.horizontal && plot.xTicks.empty())
        ticks.push_back(x);
      yMax = std::max(yMax, y);
    }
  std::sort(ticks.begin(), ticks.end());
  ticks.erase(std::unique(ticks.begin(), ticks.end()), ticks.end());
  ticks.erase(std::remove_if(ticks.begin(), ticks.end(),
                             [](double x) { return !(x > 0); }),
              ticks.end());
  if (ticks.empty())
    ticks.push_back(1);
  if (!(yMax > 0))
    yMax = 1;
  const double step = niceStep(yMax * 1.05);
  const double yTop = std::ceil(yMax * 1.05 / step) * step;
  const double lx0 = std::log2(ticks.front()), lx1 = std::log2(ticks.back());
  auto X = [&](double x) {
    double t = lx1 > lx0 ? (std::log2(x) - lx0) / (lx1 - lx0) : 0.5;
    return left + 30 + t * (right - left - 60);
  };
  auto Y = [&](double y) { return bottom - y / yTop * (bottom - top); };

  // Title, grid, axes, ticks.
  cv.text(left, 20, plot.title);
  for (double y = 0; y <= yTop + step / 2; y += step) {
    int py = int(std::lround(Y(y)));
    for (int x = left; x <= right; x += 4)
      cv.px(x, py, 0xd0d0d0);
    std::string label = formatTick(y, step);
    cv.text(left - 8 - int(label.size()) * kAdvance, py - 7, label);
  }
  for (double t : ticks) {
    int px = int(std::lround(X(t)));
    for (int y = top; y <= bottom; y += 4)
      cv.px(px, y, 0xe0e0e0);
    cv.rect(px, bottom, px + 1, bottom + 6, 0);
    std::string label = formatTick(t, 1);
    cv.text(px - int(label.size()) * kAdvance / 2, bottom + 12, label);
  }
  cv.rect(left, top, left + 1, bottom, 0);
  cv.rect(left, bottom, right, bottom + 1, 0);
  cv.text((left + right) / 2 - int(plot.xLabel.size()) * kAdvance / 2,
          bottom + 12 + kLineHeight + 6, plot.xLabel);
  cv.text(18, (top + bottom) / 2 + int(plot.yLabel.size()) * kAdvance / 2,
          plot.yLabel, 0, /*rotated=*/true);

  // Series and legend.
  int ly = top;
  const int lx = right + 30;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries &s = plot.series[i];
    const uint32_t colour = kPalette[i % (sizeof kPalette / sizeof *kPalette)];
    double dash = 0;
    if (s.horizontal && !s.points.empty()) {
      double py = Y(s.points[0].second);
      cv.line(left + 2, py, right, py, colour, true, dash);
    } else {
      std::vector<std::pair<double, double>> pts = s.points;
      std::sort(pts.begin(), pts.end());
      for (size_t j = 0; j < pts.size(); ++j) {
        double px = X(pts[j].first), py = Y(pts[j].second);
        if (j > 0)
          cv.line(X(pts[j - 1].first), Y(pts[j - 1].second), px, py, colour,
                  s.dashed, dash);
        cv.rect(int(px) - 3, int(py) - 3, int(px) + 3, int(py) + 3, colour);
      }
    }
    double legendDash = 0;
    cv.line(lx, ly + 8, lx + 36, ly + 8, colour, s.dashed || s.horizontal,
            legendDash);
    if (!s.horizontal)
      cv.rect(lx + 15, ly + 5, lx + 21, ly + 11, colour);
    cv.text(lx + 46, ly + 1, s.label);
    ly += kLineHeight + 4;
  }
  return encodePng(cv.img);
}

} // namespace attnc::bench
