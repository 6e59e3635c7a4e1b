//===- Report.cpp - attn-bench results: table, JSON, CSV, plot ------------===//
//
// See Report.h. Skipped baselines appear everywhere with their reason; NaN
// (not measured) prints as "-" in the table, null in JSON and an empty
// field in CSV.
//
//===----------------------------------------------------------------------===//
#include "Report.h"
#include "Plot.h"

#include "attnc/Runtime/Npy.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace attnc::bench {

namespace json = llvm::json;

namespace {

json::Value num(double x) {
  if (std::isnan(x) || std::isinf(x))
    return nullptr;
  return x;
}

std::string fmt(const char *format, double x) {
  if (std::isnan(x))
    return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string pad(std::string s, size_t width, bool leftAlign = false) {
  if (s.size() >= width)
    return s;
  return leftAlign ? s + std::string(width - s.size(), ' ')
                   : std::string(width - s.size(), ' ') + s;
}

json::Object baselineJson(const BaselineOutcome &b) {
  json::Object o;
  if (!b.ran) {
    o["skipped"] = b.note;
  } else {
    o["ms"] = num(b.ms);
    o["gflops"] = num(b.gflops);
    if (!b.note.empty())
      o["note"] = b.note;
  }
  if (!std::isnan(b.relErr))
    o["rel_err_vs_attnc"] = b.relErr;
  for (const auto &[k, v] : b.extra)
    o[k] = v;
  for (const auto &[k, v] : b.numbers)
    o[k] = num(v);
  if (!std::isnan(b.bwdMs)) {
    o["bwd_ms"] = num(b.bwdMs);
    o["bwd_gflops"] = num(b.bwdGflops);
  }
  if (!std::isnan(b.bwdRelErr))
    o["bwd_rel_err_vs_attnc"] = b.bwdRelErr;
  if (!b.bwdNote.empty())
    o["bwd_note"] = b.bwdNote;
  return o;
}

json::Object resultJson(const BenchResult &r) {
  json::Object o;
  o["spec"] = r.spec;
  o["name"] = r.name;
  o["label"] = r.label;
  json::Object defines;
  for (const auto &[k, v] : r.defines)
    defines[k] = v;
  o["defines"] = std::move(defines);
  const Shape &s = r.shape;
  o["shape"] = json::Object{{"B", s.B},   {"HQ", s.HQ}, {"HKV", s.HKV},
                            {"LQ", s.LQ}, {"LK", s.LK}, {"D", s.D},
                            {"DV", s.DV}};
  o["dtype"] = r.dtype;
  o["target"] = r.target;
  o["threads"] = r.threads;
  o["runs"] = r.runs;
  o["warmup"] = r.warmup;
  o["ms"] = num(r.ms);
  o["ms_min"] = num(r.msMin);
  o["gflops"] = num(r.gflops);
  o["flop"] = s.flops();
  o["density"] = num(r.density);
  o["density_basis"] = r.densityBasis;
  o["gflops_kept"] = num(r.gflops * r.density);
  o["compile_ms"] = num(r.compileMs);
  o["cached_compile_ms"] = num(r.cachedCompileMs);
  o["tiles"] = json::Array{r.tileQ, r.tileK};
  if (r.backward) {
    o["bwd_ms"] = num(r.bwdMs);
    o["bwd_ms_min"] = num(r.bwdMsMin);
    o["bwd_gflops"] = num(r.bwdGflops);
    o["bwd_gflops_kept"] = num(r.bwdGflops * r.density);
    o["bwd_flop"] = backwardFlops(s);
    o["bwd_runs"] = r.bwdRuns;
    o["bwd_over_fwd"] = num(r.bwdMs / r.ms);
  }
  json::Object baselines;
  for (const BaselineOutcome &b : r.baselines)
    baselines[b.name] = baselineJson(b);
  o["baselines"] = std::move(baselines);
  return o;
}

std::string csvField(std::string s) {
  if (s.find_first_of(",\"\n") == std::string::npos)
    return s;
  std::string out = "\"";
  for (char c : s)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csvNum(double x) {
  if (std::isnan(x))
    return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

/// attn-bench --backward: one row per result with the backward's time,
/// GFLOP/s (2.5 x the forward's FLOP) and its ratio to the forward, then
/// the baselines' backward times; then the baselines' backward notes.
void printBackwardTable(const BenchReport &report, size_t labelW,
                        llvm::raw_ostream &os) {
  std::vector<std::string> names;
  bool any = false;
  for (const BenchResult &r : report.results) {
    any |= r.backward;
    for (const BaselineOutcome &b : r.baselines)
      if ((!std::isnan(b.bwdMs) || !b.bwdNote.empty()) &&
          std::find(names.begin(), names.end(), b.name) == names.end())
        names.push_back(b.name);
  }
  if (!any)
    return;
  os << pad("backward", labelW, true) << "  " << pad("LQ", 6) << pad("LK", 7)
     << pad("bwd ms", 11) << pad("GFLOP/s", 10) << pad("bwd/fwd", 9);
  for (const std::string &n : names)
    os << "  " << pad(n + " bwd ms", 16) << pad("GFLOP/s", 9);
  os << "\n";
  for (const BenchResult &r : report.results) {
    if (!r.backward)
      continue;
    os << pad(r.label, labelW, true) << "  "
       << pad(std::to_string(r.shape.LQ), 6)
       << pad(std::to_string(r.shape.LK), 7) << pad(fmt("%.2f", r.bwdMs), 11)
       << pad(fmt("%.1f", r.bwdGflops), 10)
       << pad(fmt("%.2f", r.bwdMs / r.ms), 9);
    for (const std::string &n : names) {
      auto it = std::find_if(r.baselines.begin(), r.baselines.end(),
                             [&](const BaselineOutcome &b) { return b.name == n; });
      const double ms = it == r.baselines.end() ? kNaN : it->bwdMs;
      const double gf = it == r.baselines.end() ? kNaN : it->bwdGflops;
      os << "  " << pad(fmt("%.2f", ms), 16) << pad(fmt("%.1f", gf), 9);
    }
    os << "\n";
  }
  for (const std::string &n : names) {
    std::vector<std::string> notes;
    double maxErr = kNaN;
    for (const BenchResult &r : report.results)
      for (const BaselineOutcome &b : r.baselines) {
        if (b.name != n)
          continue;
        if (!std::isnan(b.bwdRelErr))
          maxErr = std::isnan(maxErr) ? b.bwdRelErr : std::max(maxErr, b.bwdRelErr);
        if (!b.bwdNote.empty() &&
            std::find(notes.begin(), notes.end(), b.bwdNote) == notes.end())
          notes.push_back(b.bwdNote);
      }
    if (!std::isnan(maxErr))
      notes.push_back(fmt("max relative error of (dq, dk, dv) vs attnc %.1e",
                          maxErr));
    if (!notes.empty()) {
      os << n << " backward:";
      for (size_t i = 0; i < notes.size(); ++i)
        os << (i ? "; " : " ") << notes[i];
      os << "\n";
    }
  }
}

} // namespace

void printTable(const BenchReport &report, llvm::raw_ostream &os) {
  // Which baselines appear at all, in a fixed order.
  std::vector<std::string> names;
  for (const BenchResult &r : report.results)
    for (const BaselineOutcome &b : r.baselines)
      if (std::find(names.begin(), names.end(), b.name) == names.end())
        names.push_back(b.name);
  size_t labelW = 7;
  for (const BenchResult &r : report.results)
    labelW = std::max(labelW, r.label.size());
  os << pad("variant", labelW, true) << "  " << pad("LQ", 6) << pad("LK", 7)
     << pad("ms", 11) << pad("GFLOP/s", 10) << pad("density", 9)
     << pad("compile", 10) << pad("cached", 9);
  for (const std::string &n : names)
    os << "  " << pad(n + " ms", 11) << pad("GFLOP/s", 9);
  os << "\n";
  for (const BenchResult &r : report.results) {
    os << pad(r.label, labelW, true) << "  " << pad(std::to_string(r.shape.LQ), 6)
       << pad(std::to_string(r.shape.LK), 7) << pad(fmt("%.2f", r.ms), 11)
       << pad(fmt("%.1f", r.gflops), 10)
       << pad(fmt("%.1f%%", 100 * r.density), 9)
       << pad(fmt("%.0f ms", r.compileMs), 10)
       << pad(fmt("%.0f ms", r.cachedCompileMs), 9);
    for (const std::string &n : names) {
      auto it = std::find_if(r.baselines.begin(), r.baselines.end(),
                             [&](const BaselineOutcome &b) { return b.name == n; });
      bool ran = it != r.baselines.end() && it->ran;
      os << "  " << pad(ran ? fmt("%.2f", it->ms) : "-", 11)
         << pad(ran ? fmt("%.1f", it->gflops) : "-", 9);
    }
    os << "\n";
  }
  printBackwardTable(report, labelW, os);
  // The notes, once per baseline and reason: why some were skipped (and
  // where), what each computes, and how far its output is from attnc's.
  for (const std::string &n : names) {
    std::vector<std::string> reasons, facts;
    std::map<std::string, std::vector<std::string>> where;
    double maxErr = kNaN;
    for (const BenchResult &r : report.results)
      for (const BaselineOutcome &b : r.baselines) {
        if (b.name != n)
          continue;
        if (!std::isnan(b.relErr))
          maxErr = std::isnan(maxErr) ? b.relErr : std::max(maxErr, b.relErr);
        std::vector<std::string> mine;
        if (b.ran && !b.note.empty())
          mine.push_back(b.note);
        for (const auto &[k, v] : b.extra)
          mine.push_back(k + " " + v);
        for (const std::string &x : mine)
          if (std::find(facts.begin(), facts.end(), x) == facts.end())
            facts.push_back(x);
        if (b.ran)
          continue;
        if (!where.count(b.note))
          reasons.push_back(b.note);
        std::string at = r.label + " L=" + std::to_string(r.shape.LQ);
        if (r.shape.LQ != r.shape.LK)
          at += "," + std::to_string(r.shape.LK);
        where[b.note].push_back(at);
      }
    if (!std::isnan(maxErr))
      facts.push_back(fmt("max relative error vs attnc %.1e", maxErr));
    if (!facts.empty()) {
      os << n << ":";
      for (size_t i = 0; i < facts.size(); ++i)
        os << (i ? "; " : " ") << facts[i];
      os << "\n";
    }
    for (const std::string &why : reasons) {
      os << n << " skipped (" << why << "): ";
      const std::vector<std::string> &w = where[why];
      for (size_t i = 0; i < w.size() && i < 6; ++i)
        os << (i ? ", " : "") << w[i];
      if (w.size() > 6)
        os << " and " << w.size() - 6 << " more";
      os << "\n";
    }
  }
  for (const BaselineOutcome &b : report.global) {
    if (!b.ran) {
      os << b.name << ": skipped: " << b.note << "\n";
      continue;
    }
    os << b.name << ": " << b.note << ": " << fmt("%.2f", b.ms) << " ms, "
       << fmt("%.1f", b.gflops) << " GFLOP/s";
    for (const auto &[k, v] : b.extra)
      os << ", " << k << " " << v;
    os << "\n";
  }
  if (!report.cpuIsa.empty()) {
    os << "CPU path: " << report.cpuIsa;
    if (!report.genericMicrokernels.empty())
      os << " (microkernels: " << report.genericMicrokernels << ")";
    os << "\n";
  }
  os << "GFLOP/s count 2*B*HQ*LQ*LK*(D+DV) over the full score matrix "
        "(the backward: 2.5 times that); density is the share of (q, kv) "
        "pairs the mask keeps.\n";
}

void printJson(const BenchReport &report, llvm::raw_ostream &os) {
  json::Object top;
  if (report.sweep || report.results.size() != 1) {
    top["mode"] = "sweep";
    top["dtype"] = report.dtype;
    top["threads"] = report.threads;
    if (!report.cpuIsa.empty())
      top["cpu_isa"] = report.cpuIsa;
    if (!report.genericMicrokernels.empty())
      top["generic_microkernels"] = report.genericMicrokernels;
    json::Array results;
    for (const BenchResult &r : report.results)
      results.push_back(resultJson(r));
    top["results"] = std::move(results);
    json::Object globals;
    for (const BaselineOutcome &b : report.global)
      globals[b.name] = baselineJson(b);
    top["baselines"] = std::move(globals);
  } else {
    top = resultJson(report.results[0]);
    top["mode"] = "single";
    if (!report.cpuIsa.empty())
      top["cpu_isa"] = report.cpuIsa;
    if (!report.genericMicrokernels.empty())
      top["generic_microkernels"] = report.genericMicrokernels;
    json::Object *baselines = top.getObject("baselines");
    for (const BaselineOutcome &b : report.global)
      (*baselines)[b.name] = baselineJson(b);
  }
  os << llvm::formatv("{0:2}", json::Value(std::move(top))) << "\n";
}

std::string writeCsv(const BenchReport &report, const std::string &path) {
  std::ostringstream out;
  // The backward's columns only when attn-bench ran it (--backward).
  const bool bwd = std::any_of(report.results.begin(), report.results.end(),
                               [](const BenchResult &r) { return r.backward; });
  out << "series,variant,spec,dtype,threads,B,HQ,HKV,LQ,LK,D,DV,ms,gflops,"
         "density,compile_ms,cached_compile_ms,note"
      << (bwd ? ",bwd_ms,bwd_gflops\n" : "\n");
  auto bwdFields = [&](double ms, double gflops) {
    if (bwd)
      out << "," << csvNum(ms) << "," << csvNum(gflops);
    out << "\n";
  };
  auto row = [&](const std::string &series, const BenchResult *r,
                 const BaselineOutcome *b) {
    const Shape s = r ? r->shape : Shape{};
    out << csvField(series) << "," << csvField(r ? r->label : "") << ","
        << csvField(r ? r->spec : "") << "," << report.dtype << ","
        << report.threads << ",";
    if (r)
      out << s.B << "," << s.HQ << "," << s.HKV << "," << s.LQ << "," << s.LK
          << "," << s.D << "," << s.DV << ",";
    else
      out << ",,,,,,,";
    if (b) {
      out << csvNum(b->ms) << "," << csvNum(b->gflops) << ","
          << csvNum(r ? r->density : kNaN) << ",,," << csvField(b->note);
      bwdFields(b->bwdMs, b->bwdGflops);
    } else {
      out << csvNum(r->ms) << "," << csvNum(r->gflops) << ","
          << csvNum(r->density) << "," << csvNum(r->compileMs) << ","
          << csvNum(r->cachedCompileMs) << ",";
      bwdFields(r->bwdMs, r->bwdGflops);
    }
  };
  for (const BenchResult &r : report.results) {
    row("attnc", &r, nullptr);
    for (const BaselineOutcome &b : r.baselines)
      row(b.name, &r, &b);
  }
  for (const BaselineOutcome &b : report.global)
    row(b.name, nullptr, &b);
  runtime::Status st = runtime::writeFileAtomic(path, out.str());
  return st.ok() ? "" : "--csv " + path + ": " + st.message();
}

std::string writePlot(const BenchReport &report, const std::string &path) {
  PlotSpec plot;
  if (!report.results.empty()) {
    const Shape &s = report.results[0].shape;
    plot.title = "GFLOP/s vs sequence length, B=" + std::to_string(s.B) +
                 " HQ=" + std::to_string(s.HQ) + " HKV=" +
                 std::to_string(s.HKV) + " D=" + std::to_string(s.D) +
                 " DV=" + std::to_string(s.DV) + ", " + report.dtype + ", " +
                 std::to_string(report.threads) + " thread" +
                 (report.threads == 1 ? "" : "s");
  }
  plot.xLabel = "sequence length L = LQ = LK";
  plot.yLabel = "GFLOP/s (2*B*HQ*L*L*(D+DV) / time)";
  // One series per variant (attnc) and per (variant, baseline), in the
  // order they first appear.
  std::vector<std::string> order;
  std::map<std::string, PlotSeries> series;
  auto add = [&](const std::string &key, bool dashed, double x, double y) {
    if (std::isnan(y))
      return;
    if (!series.count(key)) {
      order.push_back(key);
      series[key].label = key;
      series[key].dashed = dashed;
    }
    series[key].points.push_back({x, y});
  };
  for (const BenchResult &r : report.results) {
    plot.xTicks.push_back(double(r.shape.LQ));
    add("attnc " + r.label, false, double(r.shape.LQ), r.gflops);
    for (const BaselineOutcome &b : r.baselines)
      if (b.ran)
        add(b.name + " " + r.label, true, double(r.shape.LQ), b.gflops);
  }
  std::sort(plot.xTicks.begin(), plot.xTicks.end());
  plot.xTicks.erase(std::unique(plot.xTicks.begin(), plot.xTicks.end()),
                    plot.xTicks.end());
  for (const std::string &k : order)
    plot.series.push_back(series[k]);
  for (const BaselineOutcome &b : report.global)
    if (b.ran && !std::isnan(b.gflops)) {
      PlotSeries s;
      s.label = b.name + (b.name == "sgemm" ? " 2048^3" : "");
      s.horizontal = true;
      s.points.push_back({0, b.gflops});
      plot.series.push_back(s);
    }
  std::optional<std::string> png = renderPlotPng(plot);
  if (!png)
    return "--plot " + path + ": cannot encode the PNG";
  runtime::Status st = runtime::writeFileAtomic(path, *png);
  return st.ok() ? "" : "--plot " + path + ": " + st.message();
}

} // namespace attnc::bench
