//===- Plot.h - A small line chart as PNG (attn-bench --plot) ---*- C++ -*-===//
//
// Draws y against x for several series into an RGB image: axes, tick
// labels, a title, a legend and one colour per series (dashed for the
// baselines), with a tiny built-in 5x7 bitmap font. No dependency beyond
// the PNG encoder of tools/attnc.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_PLOT_H
#define ATTNC_TOOLS_ATTNBENCH_PLOT_H

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnc::bench {

struct PlotSeries {
  std::string label;
  std::vector<std::pair<double, double>> points; // (x, y), y finite
  bool dashed = false;
  /// A horizontal reference line at y = points[0].second over the x range.
  bool horizontal = false;
};

struct PlotSpec {
  std::string title, xLabel, yLabel;
  /// x ticks at exactly these values, placed on a log2 axis (sequence
  /// lengths); empty: the distinct x of the series.
  std::vector<double> xTicks;
  std::vector<PlotSeries> series;
  int width = 1200, height = 720;
};

/// The PNG bytes, or std::nullopt if encoding fails.
std::optional<std::string> renderPlotPng(const PlotSpec &plot);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_PLOT_H
