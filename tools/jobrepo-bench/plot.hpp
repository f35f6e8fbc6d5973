// A small line-plot writer for jobrepo-bench: series of (x, y) points drawn
// on axes with a legend, written as a PNG (zlib for the deflate stream only).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
namespace jobrepo_bench {
struct Series {
  std::string label;                              // shown in the legend
  std::uint32_t rgb = 0x1f77b4;                   // 0xRRGGBB
  bool dashed = false;                            // e.g. the ceiling
  std::vector<std::pair<double, double>> points;  // (x, y), any order; drawn sorted by x
};
struct Plot {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log2_x = false;  // workers 1,2,4,8,16 evenly spaced
  std::vector<Series> series;
};
// Renders the plot to an RGB PNG of width x height pixels at `path`.
// Throws std::runtime_error("write_png: <path>: <reason>") when the file cannot be written
// or the plot has no points / a non-positive x with log2_x.
void write_png(const Plot& plot, const std::string& path, int width = 900, int height = 540);
}  // namespace jobrepo_bench
