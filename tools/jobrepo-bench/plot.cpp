// The line plot of plot.hpp, drawn on an RGB canvas with a built-in bitmap font
// and Bresenham lines, then encoded as a PNG (zlib for deflate and CRC-32).
#include "plot.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace jobrepo_bench {
namespace {

using Rgb = std::uint32_t;
constexpr Rgb white = 0xffffff;
constexpr Rgb ink = 0x000000;         // text, axes, tick marks
constexpr Rgb grid_grey = 0xe0e0e0;   // grid lines
constexpr Rgb frame_grey = 0xa0a0a0;  // the legend's border

// Printable ASCII, 5 pixels wide: 7 rows down to the baseline and 2 of descender
// (g, j, p, q, y, comma), one row a byte, bit 4 the leftmost column.
constexpr int glyph_width = 5;
constexpr int glyph_height = 9;
constexpr int glyph_ascent = 7;
constexpr char first_glyph = ' ';
constexpr char last_glyph = '~';
constexpr std::array<std::array<std::uint8_t, glyph_height>, last_glyph - first_glyph + 1> font = {{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00},  // !
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00},  // #
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00},  // %
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00},  // &
    {0x0c, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00},  // )
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x04, 0x08},  // ,
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00},  // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00},  // /
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00},  // 0
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00},  // 1
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00},  // 2
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00},  // 3
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00},  // 4
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00},  // 5
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00},  // 6
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00},  // 7
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00},  // 8
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00},  // 9
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00},  // :
    {0x00, 0x0c, 0x0c, 0x00, 0x00, 0x0c, 0x0c, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00},  // <
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00},  // >
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00},  // ?
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00, 0x00},  // @
    {0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x00, 0x00},  // A
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00},  // B
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00},  // C
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00},  // D
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00},  // E
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00},  // F
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00},  // G
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00},  // H
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00},  // L
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00},  // N
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00},  // O
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00},  // P
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00},  // Q
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00},  // R
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00},  // S
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00},  // W
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00},  // X
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x00, 0x00},  // Y
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00},  // Z
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00},  // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00},  // backslash
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00},  // ]
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00},  // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00, 0x00},  // b
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00},  // c
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00, 0x00},  // d
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00},  // e
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00},  // f
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // h
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00},  // k
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00},  // l
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // n
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00},  // o
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00},  // r
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00},  // s
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00},  // w
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00},  // x
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e},  // y
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00},  // ~
}};

std::runtime_error failure(const std::string& path, const std::string& reason) {
  return std::runtime_error("write_png: " + path + ": " + reason);
}

struct Pixel {
  int x = 0;
  int y = 0;
};

struct Rect {  // inclusive bounds
  int left = 0;
  int top = 0;
  int right = 0;
  int bottom = 0;
  bool contains(Pixel pixel) const {
    return pixel.x >= left && pixel.x <= right && pixel.y >= top && pixel.y <= bottom;
  }
};

class Canvas {
 public:
  Canvas(int width, int height)
      : width_(width),
        height_(height),
        pixels_(3 * static_cast<std::size_t>(width) * static_cast<std::size_t>(height), 0xff) {}

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<std::uint8_t>& pixels() const { return pixels_; }

  void set(int x, int y, Rgb color) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    const std::size_t at =
        3 * (static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(x));
    pixels_[at] = static_cast<std::uint8_t>(color >> 16);
    pixels_[at + 1] = static_cast<std::uint8_t>(color >> 8);
    pixels_[at + 2] = static_cast<std::uint8_t>(color);
  }

  void fill(const Rect& rect, Rgb color) {
    for (int y = std::max(rect.top, 0); y <= std::min(rect.bottom, height_ - 1); ++y) {
      for (int x = std::max(rect.left, 0); x <= std::min(rect.right, width_ - 1); ++x) set(x, y, color);
    }
  }

  void outline(const Rect& rect, Rgb color) {
    fill({rect.left, rect.top, rect.right, rect.top}, color);
    fill({rect.left, rect.bottom, rect.right, rect.bottom}, color);
    fill({rect.left, rect.top, rect.left, rect.bottom}, color);
    fill({rect.right, rect.top, rect.right, rect.bottom}, color);
  }

 private:
  int width_;
  int height_;
  std::vector<std::uint8_t> pixels_;  // RGB, row after row
};

// ---- Text: each font pixel is a scale x scale block; glyphs are one font pixel apart.

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (static_cast<int>(text.size()) * (glyph_width + 1) - 1) * scale;
}

int text_height(int scale) { return glyph_height * scale; }

int text_middle(int scale) { return glyph_ascent * scale / 2; }  // from the top to halfway up a capital

void draw_text(Canvas& canvas, Pixel top_left, const std::string& text, int scale, Rgb color) {
  int x = top_left.x;
  for (const char c : text) {
    const char shown = c >= first_glyph && c <= last_glyph ? c : '?';
    const auto& rows = font[static_cast<std::size_t>(shown - first_glyph)];
    for (int row = 0; row < glyph_height; ++row) {
      for (int column = 0; column < glyph_width; ++column) {
        if ((rows[static_cast<std::size_t>(row)] & (0x10 >> column)) == 0) continue;
        const int left = x + column * scale;
        const int top = top_left.y + row * scale;
        canvas.fill({left, top, left + scale - 1, top + scale - 1}, color);
      }
    }
    x += (glyph_width + 1) * scale;
  }
}

// ---- Lines and markers.

template <typename Visit>
void for_each_line_pixel(Pixel from, Pixel to, Visit&& visit) {  // Bresenham, any octant
  const int dx = std::abs(to.x - from.x);
  const int dy = -std::abs(to.y - from.y);
  const int step_x = from.x < to.x ? 1 : -1;
  const int step_y = from.y < to.y ? 1 : -1;
  int error = dx + dy;
  for (Pixel at = from;;) {
    visit(at);
    if (at.x == to.x && at.y == to.y) return;
    const int twice = 2 * error;
    if (twice >= dy) {
      error += dy;
      at.x += step_x;
    }
    if (twice <= dx) {
      error += dx;
      at.y += step_y;
    }
  }
}

// A 2 px line through the vertices; a dash continues across a vertex.
void draw_polyline(Canvas& canvas, const std::vector<Pixel>& vertices, Rgb color, bool dashed, int scale) {
  const int dash = 5 * scale;
  const int period = dash + 3 * scale;
  int walked = 0;
  for (std::size_t i = 1; i < vertices.size(); ++i) {
    for_each_line_pixel(vertices[i - 1], vertices[i], [&](Pixel at) {
      if (!dashed || walked % period < dash) canvas.fill({at.x, at.y, at.x + 1, at.y + 1}, color);
      ++walked;
    });
  }
}

int marker_radius(int scale) { return 1 + scale; }

// A disc for a solid series, a square for a dashed one.
void draw_marker(Canvas& canvas, Pixel center, bool square, int scale, Rgb color) {
  const int radius = marker_radius(scale);
  for (int dy = -radius; dy <= radius; ++dy) {
    for (int dx = -radius; dx <= radius; ++dx) {
      if (square || dx * dx + dy * dy <= radius * radius + radius) canvas.set(center.x + dx, center.y + dy, color);
    }
  }
}

// ---- Axes.

std::string format_number(double value, bool with_suffix) {  // 750, 0.25, 1000; or 1k, 1.5k, 12k, 2.5M
  const double magnitude = std::fabs(value);
  const char* suffix = "";
  if (with_suffix && magnitude >= 1e9) {
    value /= 1e9;
    suffix = "G";
  } else if (with_suffix && magnitude >= 1e6) {
    value /= 1e6;
    suffix = "M";
  } else if (with_suffix && magnitude >= 1e3) {
    value /= 1e3;
    suffix = "k";
  }
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "%.4g%s", value, suffix);
  return text.data();
}

struct Axis {
  double lo = 0;  // the ends of the axis, in plotting space (log2 x with log2_x)
  double hi = 1;
  std::vector<double> ticks;  // in plotting space
  std::vector<std::string> labels;
};

// Labels in one style: thousands get a suffix on an axis that goes beyond 1000.
Axis labelled_axis(double lo, double hi, std::vector<double> ticks, const std::vector<double>& values) {
  double largest = 0;
  for (const double value : values) largest = std::max(largest, std::fabs(value));
  Axis axis{lo, hi, std::move(ticks), {}};
  for (const double value : values) axis.labels.push_back(format_number(value, largest > 1000));
  return axis;
}

// Round ticks over [lo, hi] (lo < hi): the smallest step of 1, 2, 2.5 or 5 times a
// power of ten that needs at most max_steps steps. From 0 up, that is 4 to 6 steps.
Axis nice_axis(double lo, double hi, int max_steps) {
  constexpr std::array<double, 4> mantissas{1, 2, 2.5, 5};
  constexpr double slack = 1e-9;  // 0.3 / 0.1 is 2.9999999999999996
  double decade = std::pow(10.0, std::floor(std::log10(hi - lo)) - 2);
  for (int attempt = 0; attempt < 8 && decade > 0; ++attempt, decade *= 10) {
    for (const double mantissa : mantissas) {
      const double step = mantissa * decade;
      const double first = std::floor(lo / step + slack);
      const double last = std::ceil(hi / step - slack);
      if (last - first > max_steps) continue;
      std::vector<double> ticks;
      for (int i = 0; i <= static_cast<int>(last - first); ++i) ticks.push_back((first + i) * step);
      return labelled_axis(first * step, last * step, ticks, ticks);
    }
  }
  return labelled_axis(lo, hi, {lo, hi}, {lo, hi});  // a span too small for round numbers
}

// Ticks at the data's x values, evenly spaced powers of two, with a margin at either end.
Axis log2_axis(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  std::vector<double> ticks;
  for (const double x : xs) ticks.push_back(std::log2(x));
  const double lo = ticks.front();
  const double hi = ticks.back();
  const double margin = hi > lo ? (hi - lo) / 25 : 1;
  return labelled_axis(lo - margin, hi + margin, ticks, xs);
}

Axis linear_axis(double lo, double hi) {
  if (lo == hi) {
    const double margin = std::max(1.0, std::fabs(lo) / 2);
    lo -= margin;
    hi += margin;
  }
  return nice_axis(lo, hi, 6);
}

// The plotting area in pixels and the data space it shows.
struct Frame {
  Rect area;
  Axis x;
  Axis y;
  bool log2_x = false;

  int pixel_x(double plotted) const {
    return area.left + static_cast<int>(std::lround((plotted - x.lo) / (x.hi - x.lo) * (area.right - area.left)));
  }
  int pixel_y(double plotted) const {
    return area.bottom - static_cast<int>(std::lround((plotted - y.lo) / (y.hi - y.lo) * (area.bottom - area.top)));
  }
  Pixel map(const std::pair<double, double>& point) const {
    return {pixel_x(log2_x ? std::log2(point.first) : point.first), pixel_y(point.second)};
  }
};

// Sizes in pixels for a drawing scale (Metrics{2} at 900x540).
struct Metrics {
  int scale;
  int margin = 6 * scale;
  int gap = 3 * scale;
  int tick = 3 * scale;
};

Rect plotting_area(const Plot& plot, const Axis& x, const Axis& y, const Metrics& m, int width, int height,
                   int title_scale) {
  int top = m.margin;
  if (!plot.title.empty()) top += text_height(title_scale) + 2 * m.gap;
  if (!plot.y_label.empty()) top += text_height(m.scale) + m.gap;
  top += text_middle(m.scale);  // the top tick's label is centred on it

  int bottom = height - 1 - m.margin;
  if (!plot.x_label.empty()) bottom -= text_height(m.scale) + m.gap;
  bottom -= text_height(m.scale) + m.gap + m.tick;

  int widest = 0;
  for (const auto& label : y.labels) widest = std::max(widest, text_width(label, m.scale));
  const int left = m.margin + widest + m.gap + m.tick;
  const int right = width - 1 - m.margin - text_width(x.labels.back(), m.scale) / 2;

  return {left, top, std::max(right, left + 1), std::max(bottom, top + 1)};
}

void draw_axes(Canvas& canvas, const Frame& frame, const Metrics& m) {
  const Rect& area = frame.area;
  for (const double tick : frame.y.ticks) {
    canvas.fill({area.left + 1, frame.pixel_y(tick), area.right, frame.pixel_y(tick)}, grid_grey);
  }
  for (const double tick : frame.x.ticks) {
    canvas.fill({frame.pixel_x(tick), area.top, frame.pixel_x(tick), area.bottom - 1}, grid_grey);
  }
  canvas.fill({area.left, area.top, area.left, area.bottom}, ink);
  canvas.fill({area.left, area.bottom, area.right, area.bottom}, ink);

  for (std::size_t i = 0; i < frame.y.ticks.size(); ++i) {
    const int y = frame.pixel_y(frame.y.ticks[i]);
    canvas.fill({area.left - m.tick, y, area.left - 1, y}, ink);
    const std::string& label = frame.y.labels[i];
    draw_text(canvas, {area.left - m.tick - m.gap - text_width(label, m.scale), y - text_middle(m.scale)}, label,
              m.scale, ink);
  }
  int free_from = std::numeric_limits<int>::min();  // x labels that would overlap the previous one are left out
  for (std::size_t i = 0; i < frame.x.ticks.size(); ++i) {
    const int x = frame.pixel_x(frame.x.ticks[i]);
    canvas.fill({x, area.bottom + 1, x, area.bottom + m.tick}, ink);
    const std::string& label = frame.x.labels[i];
    const int left = x - text_width(label, m.scale) / 2;
    if (left < free_from) continue;
    draw_text(canvas, {left, area.bottom + m.tick + m.gap}, label, m.scale, ink);
    free_from = left + text_width(label, m.scale) + 2 * m.gap;
  }
}

// ---- Legend: swatches and labels in the corner of the plotting area with the least data under it.

void draw_swatch(Canvas& canvas, Pixel left, int length, const Series& series, int scale) {
  const Rgb color = series.rgb & white;
  draw_polyline(canvas, {left, {left.x + length - 1, left.y}}, color, series.dashed, scale);
  draw_marker(canvas, {left.x + length / 2, left.y}, series.dashed, scale, color);
}

void draw_legend(Canvas& canvas, const Frame& frame, const std::vector<const Series*>& shown,
                 const std::vector<std::vector<Pixel>>& lines, const Metrics& m) {
  const int swatch = 12 * m.scale;
  const int row = text_height(m.scale) + m.gap;
  int widest = 0;
  for (const Series* series : shown) widest = std::max(widest, text_width(series->label, m.scale));
  const int width = m.gap + swatch + m.gap + widest + m.gap;
  const int height = m.gap + static_cast<int>(shown.size()) * row;

  const Rect& area = frame.area;
  const int inset = 2 * m.gap;
  const std::array<Pixel, 4> corners{{{area.left + inset, area.top + inset},
                                      {area.right - inset - width, area.top + inset},
                                      {area.right - inset - width, area.bottom - inset - height},
                                      {area.left + inset, area.bottom - inset - height}}};
  Pixel best = corners[0];
  long fewest = std::numeric_limits<long>::max();
  for (const Pixel corner : corners) {
    const int reach = marker_radius(m.scale) + 1;
    const Rect box{corner.x - reach, corner.y - reach, corner.x + width + reach, corner.y + height + reach};
    long covered = 0;
    const auto count = [&](Pixel at) { covered += box.contains(at) ? 1 : 0; };
    for (const auto& line : lines) {
      for (std::size_t i = 1; i < line.size(); ++i) for_each_line_pixel(line[i - 1], line[i], count);
      if (line.size() == 1) count(line.front());
    }
    if (covered < fewest) {
      fewest = covered;
      best = corner;
    }
  }

  const Rect box{best.x, best.y, best.x + width, best.y + height};
  canvas.fill(box, white);
  canvas.outline(box, frame_grey);
  int y = best.y + m.gap;
  for (const Series* series : shown) {
    draw_swatch(canvas, {best.x + m.gap, y + text_middle(m.scale)}, swatch, *series, m.scale);
    draw_text(canvas, {best.x + m.gap + swatch + m.gap, y}, series->label, m.scale, ink);
    y += row;
  }
}

// ---- The plot.

Canvas render(const Plot& plot, const std::vector<const Series*>& shown, int width, int height) {
  std::vector<double> xs;
  double min_x = std::numeric_limits<double>::infinity();
  double max_x = -min_x;
  double min_y = 0;
  double max_y = 0;
  for (const Series* series : shown) {
    for (const auto& [x, y] : series->points) {
      xs.push_back(x);
      min_x = std::min(min_x, x);
      max_x = std::max(max_x, x);
      min_y = std::min(min_y, y);
      max_y = std::max(max_y, y);
    }
  }
  const Metrics m{std::max(1, std::min(width / 450, height / 270))};
  int title_scale = m.scale + 1;
  while (title_scale > 1 && text_width(plot.title, title_scale) > width - 2 * m.margin) --title_scale;

  Frame frame;
  frame.log2_x = plot.log2_x;
  frame.x = plot.log2_x ? log2_axis(xs) : linear_axis(min_x, max_x);
  frame.y = nice_axis(min_y, max_y > min_y ? max_y : min_y + 1, 6);
  frame.area = plotting_area(plot, frame.x, frame.y, m, width, height, title_scale);

  Canvas canvas(width, height);
  draw_axes(canvas, frame, m);

  std::vector<std::vector<Pixel>> lines;
  for (const Series* series : shown) {
    auto points = series->points;
    std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Pixel> line;
    for (const auto& point : points) line.push_back(frame.map(point));
    const Rgb color = series->rgb & white;
    draw_polyline(canvas, line, color, series->dashed, m.scale);
    for (const Pixel vertex : line) draw_marker(canvas, vertex, series->dashed, m.scale, color);
    lines.push_back(std::move(line));
  }
  draw_legend(canvas, frame, shown, lines, m);

  int y = m.margin;
  if (!plot.title.empty()) {
    draw_text(canvas, {(width - text_width(plot.title, title_scale)) / 2, y}, plot.title, title_scale, ink);
    y += text_height(title_scale) + 2 * m.gap;
  }
  draw_text(canvas, {m.margin, y}, plot.y_label, m.scale, ink);
  const int x_label_center = (frame.area.left + frame.area.right) / 2;
  draw_text(canvas, {x_label_center - text_width(plot.x_label, m.scale) / 2, height - m.margin - text_height(m.scale)},
            plot.x_label, m.scale, ink);
  return canvas;
}

// ---- PNG.

void append_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {  // big-endian
  for (const int shift : {24, 16, 8, 0}) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

void append_chunk(std::vector<std::uint8_t>& png, std::string_view type, const std::vector<std::uint8_t>& data) {
  append_u32(png, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = png.size();
  png.insert(png.end(), type.begin(), type.end());
  png.insert(png.end(), data.begin(), data.end());
  const uLong crc = crc32(crc32(0, nullptr, 0), png.data() + start, static_cast<uInt>(png.size() - start));
  append_u32(png, static_cast<std::uint32_t>(crc));
}

std::vector<std::uint8_t> encode_png(const Canvas& canvas, const std::string& path) {
  std::vector<std::uint8_t> header;
  append_u32(header, static_cast<std::uint32_t>(canvas.width()));
  append_u32(header, static_cast<std::uint32_t>(canvas.height()));
  header.insert(header.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, adaptive filtering, no interlace

  // Every row has filter 2 "Up" (the first row's row above is zeros): a plot repeats rows.
  const std::size_t stride = 3 * static_cast<std::size_t>(canvas.width());
  const std::vector<std::uint8_t>& pixels = canvas.pixels();
  std::vector<std::uint8_t> filtered;
  filtered.reserve(pixels.size() + static_cast<std::size_t>(canvas.height()));
  for (std::size_t row = 0; row < static_cast<std::size_t>(canvas.height()); ++row) {
    filtered.push_back(2);
    for (std::size_t i = row * stride; i < (row + 1) * stride; ++i) {
      filtered.push_back(static_cast<std::uint8_t>(pixels[i] - (row == 0 ? 0 : pixels[i - stride])));
    }
  }
  uLongf compressed_size = compressBound(static_cast<uLong>(filtered.size()));
  std::vector<std::uint8_t> compressed(compressed_size);
  if (compress2(compressed.data(), &compressed_size, filtered.data(), static_cast<uLong>(filtered.size()),
                Z_BEST_COMPRESSION) != Z_OK) {
    throw failure(path, "zlib compress2 failed");
  }
  compressed.resize(compressed_size);

  std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  append_chunk(png, "IHDR", header);
  append_chunk(png, "IDAT", compressed);
  append_chunk(png, "IEND", {});
  return png;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw failure(path, std::generic_category().message(errno));
  int error = 0;
  errno = 0;
  if (std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size()) error = errno != 0 ? errno : EIO;
  if (std::fclose(file) != 0 && error == 0) error = errno != 0 ? errno : EIO;
  if (error != 0) {
    std::remove(path.c_str());
    throw failure(path, std::generic_category().message(error));
  }
}

}  // namespace

void write_png(const Plot& plot, const std::string& path, int width, int height) {
  constexpr int max_side = 16384;
  constexpr double max_value = 1e300;  // spans and steps stay finite
  if (width < 1 || height < 1 || width > max_side || height > max_side) {
    throw failure(path, "size " + std::to_string(width) + "x" + std::to_string(height) + " is not within 1.." +
                            std::to_string(max_side));
  }
  std::vector<const Series*> shown;  // a series without points is left out, legend included
  for (const Series& series : plot.series) {
    for (const auto& [x, y] : series.points) {
      if (!(std::fabs(x) <= max_value && std::fabs(y) <= max_value)) {  // NaN too
        throw failure(path, "a point of '" + series.label + "' is not a number within +-1e300");
      }
      if (plot.log2_x && x <= 0) {
        throw failure(path, "log2_x needs x > 0, and '" + series.label + "' has x = " + format_number(x, false));
      }
    }
    if (!series.points.empty()) shown.push_back(&series);
  }
  if (shown.empty()) throw failure(path, "the plot has no points");
  write_file(path, encode_png(render(plot, shown, width, height), path));
}

}  // namespace jobrepo_bench
