// A small line-plot writer for jobrepo-bench: series of (x, y) points drawn
// on axes with a legend, as standalone SVG text (any browser shows it, a diff
// of it is readable, and it needs no image library).
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
// The plot as an SVG 1.1 document of width x height user units, the same bytes for the
// same input. A series without points is left out, legend included.
// Throws std::runtime_error("render_svg: <reason>") when the size is not within 1..16384,
// a point is not a number within +-1e300, the plot has no points, or log2_x meets an x <= 0.
std::string render_svg(const Plot& plot, int width = 900, int height = 540);
// render_svg's text written to `path`; its errors, and
// std::runtime_error("write_svg: <path>: <reason>") when the file cannot be written.
void write_svg(const Plot& plot, const std::string& path, int width = 900, int height = 540);
}  // namespace jobrepo_bench
