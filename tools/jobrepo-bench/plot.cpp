// The line plot of plot.hpp as SVG. The viewer chooses the sans-serif font, so the
// layout reserves room for text from a generous estimate of its width; the legend sits
// under the plot, where it can cover no data.
#include "plot.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace jobrepo_bench {
namespace {

constexpr double font_size = 14;
constexpr double title_size = 18;
constexpr double margin = 12;
constexpr double gap = 6;
constexpr double tick = 5;
constexpr double line_height = 20;
constexpr double swatch = 28;  // the legend's sample of a line

std::runtime_error failure(const std::string& reason) { return std::runtime_error("render_svg: " + reason); }

// Wider than most sans-serif text (DejaVu Sans digits are 0.64 em), so labels are not cut off.
double text_width(const std::string& text) { return static_cast<double>(text.size()) * 0.65 * font_size; }

// Fixed notation with at most `decimals` decimals, trailing zeros dropped. std::to_chars,
// unlike printf and streams, ignores the locale: the same plot gives the same bytes.
std::string fixed(double value, int decimals) {
  std::array<char, 400> text{};  // 1e300 written out
  const auto end = std::to_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed, decimals);
  std::string out(text.data(), end.ptr);
  if (out.find('.') != std::string::npos) {
    out.erase(out.find_last_not_of('0') + 1);
    if (out.back() == '.') out.pop_back();
  }
  return out == "-0" ? "0" : out;
}

std::string coordinate(double value) { return fixed(value, 2); }

std::string number(double value) {  // 750, 0.25, 12,000, -1,500
  const std::string plain = fixed(value, 6);
  const std::size_t sign = plain[0] == '-' ? 1 : 0;
  const std::size_t end = std::min(plain.find('.'), plain.size());
  std::string out = plain.substr(0, sign);
  for (std::size_t i = sign; i < end; ++i) out += ((end - i) % 3 == 0 && i > sign ? "," : "") + plain.substr(i, 1);
  return out + plain.substr(end);
}

std::string escaped(const std::string& text) {
  static constexpr std::array<const char*, 4> entities{"&amp;", "&lt;", "&gt;", "&quot;"};
  std::string out;
  for (const char c : text) {
    const std::size_t special = std::string_view("&<>\"").find(c);
    if (special != std::string_view::npos) {
      out += entities[special];
    } else {
      out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;  // XML 1.0 has no control characters
    }
  }
  return out;
}

std::string colour(std::uint32_t rgb) {
  std::array<char, 8> text{};
  std::snprintf(text.data(), text.size(), "#%06x", static_cast<unsigned>(rgb & 0xffffff));
  return text.data();
}

// The pattern with each {} replaced by the next argument: numbers as coordinates, text as it is.
struct Arg {  // implicit constructors: fill's arguments are plain values
  std::string text;
  Arg(double value) : text(coordinate(value)) {}
  Arg(std::string value) : text(std::move(value)) {}
  Arg(const char* value) : text(value) {}
};
std::string fill(std::string_view pattern, std::initializer_list<Arg> args) {
  std::string out;
  auto arg = args.begin();
  for (std::size_t at = 0; (at = pattern.find("{}")) != std::string_view::npos; pattern.remove_prefix(at + 2)) {
    out += pattern.substr(0, at);
    out += (arg++)->text;
  }
  return out += pattern;
}

struct Axis {
  double lo = 0;  // the ends of the axis, in plotting space (log2 of x with log2_x)
  double hi = 1;
  std::vector<double> ticks;  // in plotting space
  std::vector<std::string> labels;
};

Axis labelled_axis(double lo, double hi, std::vector<double> ticks, const std::vector<double>& values) {
  Axis axis{lo, hi, std::move(ticks), {}};
  for (const double value : values) axis.labels.push_back(number(value));
  return axis;
}

// Round ticks over [lo, hi]: the smallest step of 1, 2, 2.5 or 5 times a power of ten
// that needs at most 6 steps. From 0 up, that is 4 to 6 steps.
Axis nice_axis(double lo, double hi) {
  if (lo == hi) {  // one x value on a linear axis
    lo -= std::max(1.0, std::fabs(lo) / 2);
    hi += std::max(1.0, std::fabs(hi) / 2);
  }
  constexpr std::array<double, 4> mantissas{1, 2, 2.5, 5};
  constexpr double slack = 1e-9;  // 0.3 / 0.1 is 2.9999999999999996
  double decade = std::pow(10.0, std::floor(std::log10(hi - lo)) - 2);
  for (int attempt = 0; attempt < 8 && decade > 0; ++attempt, decade *= 10) {
    for (const double mantissa : mantissas) {
      const double step = mantissa * decade;
      const double first = std::floor(lo / step + slack);
      const double last = std::ceil(hi / step - slack);
      if (last - first > 6) continue;
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
  const double margin = ticks.back() > ticks.front() ? (ticks.back() - ticks.front()) / 25 : 1;
  return labelled_axis(ticks.front() - margin, ticks.back() + margin, ticks, xs);
}

struct Frame {  // the plotting area and the data space it shows
  double left = 0, top = 0, right = 0, bottom = 0;
  Axis x, y;
  double map_x(double plotted) const { return left + (plotted - x.lo) / (x.hi - x.lo) * (right - left); }
  double map_y(double plotted) const { return bottom - (plotted - y.lo) / (y.hi - y.lo) * (bottom - top); }
};

std::string text(double x, double y, const std::string& content, const std::string& attributes = "") {
  return fill(R"(<text x="{}" y="{}"{}>{}</text>)", {x, y, attributes, escaped(content)}) + "\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& attributes = "") {
  return fill(R"(<line x1="{}" y1="{}" x2="{}" y2="{}"{}/>)", {x1, y1, x2, y2, attributes}) + "\n";
}

std::string stroke_of(const Series& s) {
  return fill(R"( fill="none" stroke="{}" stroke-width="2"{})",
              {colour(s.rgb), s.dashed ? R"( stroke-dasharray="7 4")" : ""});
}

// A solid series has filled markers, a dashed one hollow markers, so they differ in grey too.
std::string marker(const Series& s, double x, double y) {
  return fill(R"(<circle cx="{}" cy="{}" r="3.5" fill="{}" stroke="{}" stroke-width="1.5"/>)",
              {x, y, s.dashed ? "#ffffff" : colour(s.rgb), colour(s.rgb)}) +
         "\n";
}

// Laid out on a canvas of at least 900x540 units with the requested shape, which the
// viewBox scales to width x height: text keeps its size relative to the plot at any size.
std::string render(const Plot& plot, const std::vector<const Series*>& shown, int width_px, int height_px) {
  const double scale = std::min(width_px / 900.0, height_px / 540.0);
  const double width = width_px / scale;
  const double height = height_px / scale;
  std::vector<double> xs;
  std::vector<double> ys{0};  // the y axis starts at 0 or below
  double widest_entry = 0;
  for (const Series* s : shown) {
    widest_entry = std::max(widest_entry, text_width(s->label));
    for (const auto& [x, y] : s->points) {
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  const auto [min_x, max_x] = std::minmax_element(xs.begin(), xs.end());
  const auto [min_y, max_y] = std::minmax_element(ys.begin(), ys.end());
  Frame f;
  f.x = plot.log2_x ? log2_axis(xs) : nice_axis(*min_x, *max_x);
  f.y = nice_axis(*min_y, *max_y > *min_y ? *max_y : *min_y + 1);  // all zeros: 0 to 1

  double widest_y = 0;
  for (const auto& label : f.y.labels) widest_y = std::max(widest_y, text_width(label));
  f.left = margin + widest_y + gap + tick;
  f.right = std::max(f.left + 1, width - margin - text_width(f.x.labels.back()) / 2);
  const double column = swatch + gap + widest_entry + 3 * gap;  // legend entries in columns under the plot
  const auto columns = static_cast<std::size_t>(std::clamp((f.right - f.left + 3 * gap) / column, 1.0, 1e6));
  const std::size_t rows = (shown.size() + columns - 1) / columns;
  const double y_label_top = margin + (plot.title.empty() ? 0 : title_size + 2 * gap);
  f.top = y_label_top + (plot.y_label.empty() ? 0 : line_height) + font_size / 2;  // half the top tick's label
  f.bottom = height - margin - static_cast<double>(rows) * line_height - gap - line_height - tick -
             (plot.x_label.empty() ? 0 : line_height);
  f.bottom = std::max(f.bottom, f.top + 1);

  std::string out = fill(R"(<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="{}">
<title>{}</title>
<rect width="{}" height="{}" fill="#ffffff"/>
<g class="grid" stroke="#e0e0e0" shape-rendering="crispEdges">
)",
                         {std::to_string(width_px), std::to_string(height_px), width, height, font_size,
                          escaped(plot.title), width, height});
  for (const double t : f.y.ticks) out += line(f.left, f.map_y(t), f.right, f.map_y(t));
  for (const double t : f.x.ticks) out += line(f.map_x(t), f.top, f.map_x(t), f.bottom);
  out += "</g>\n<g class=\"axes\" stroke=\"#000000\" shape-rendering=\"crispEdges\">\n";
  out += line(f.left, f.top, f.left, f.bottom) + line(f.left, f.bottom, f.right, f.bottom);
  for (const double t : f.y.ticks) out += line(f.left - tick, f.map_y(t), f.left, f.map_y(t));
  for (const double t : f.x.ticks) out += line(f.map_x(t), f.bottom, f.map_x(t), f.bottom + tick);
  out += "</g>\n<g class=\"y-ticks\" text-anchor=\"end\">\n";
  for (std::size_t i = 0; i < f.y.ticks.size(); ++i) {
    out += text(f.left - tick - gap / 2, f.map_y(f.y.ticks[i]), f.y.labels[i], R"( dy="0.35em")");
  }
  out += "</g>\n<g class=\"x-ticks\" text-anchor=\"middle\">\n";
  double free_from = -std::numeric_limits<double>::infinity();  // a label that would overlap the previous is left out
  for (std::size_t i = 0; i < f.x.ticks.size(); ++i) {
    const double x = f.map_x(f.x.ticks[i]);
    const double half = text_width(f.x.labels[i]) / 2;
    if (x - half < free_from) continue;
    out += text(x, f.bottom + tick + font_size, f.x.labels[i]);
    free_from = x + half + 2 * gap;
  }
  out += "</g>\n";

  for (const Series* s : shown) {
    auto points = s->points;
    std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string vertices;
    std::string markers;
    for (const auto& [x, value] : points) {
      const double px = f.map_x(plot.log2_x ? std::log2(x) : x);
      vertices += fill(vertices.empty() ? "{},{}" : " {},{}", {px, f.map_y(value)});
      markers += marker(*s, px, f.map_y(value));
    }
    out += "<g class=\"series\">\n" +
           fill(R"(<polyline points="{}"{} stroke-linejoin="round"/>)", {vertices, stroke_of(*s)}) + "\n" + markers +
           "</g>\n";
  }

  if (!plot.title.empty()) {
    out += text(width / 2, margin + title_size, plot.title,
                fill(R"( class="title" text-anchor="middle" font-size="{}")", {title_size}));
  }
  if (!plot.y_label.empty()) out += text(margin, y_label_top + font_size, plot.y_label, R"( class="y-label")");
  double y = f.bottom + tick + line_height;
  if (!plot.x_label.empty()) {
    out += text((f.left + f.right) / 2, y + font_size, plot.x_label, R"( class="x-label" text-anchor="middle")");
    y += line_height;
  }
  const std::size_t used = std::min(columns, shown.size());
  const double legend_left = std::max(margin, (f.left + f.right - static_cast<double>(used) * column + 3 * gap) / 2);
  out += "<g class=\"legend\">\n";
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const double x = legend_left + static_cast<double>(i % columns) * column;
    const double middle = y + gap + (static_cast<double>(i / columns) + 0.5) * line_height;
    out += line(x, middle, x + swatch, middle, stroke_of(*shown[i])) + marker(*shown[i], x + swatch / 2, middle);
    out += text(x + swatch + gap, middle, shown[i]->label, R"( dy="0.35em")");
  }
  return out + "</g>\n</svg>\n";
}

}  // namespace

std::string render_svg(const Plot& plot, int width, int height) {
  constexpr int max_side = 16384;
  constexpr double max_value = 1e300;  // spans and steps stay finite
  if (width < 1 || height < 1 || width > max_side || height > max_side) {
    throw failure("size " + std::to_string(width) + "x" + std::to_string(height) + " is not within 1.." +
                  std::to_string(max_side));
  }
  std::vector<const Series*> shown;  // a series without points is left out, legend included
  for (const Series& series : plot.series) {
    for (const auto& [x, y] : series.points) {
      if (!(std::fabs(x) <= max_value && std::fabs(y) <= max_value)) {  // NaN too
        throw failure("a point of '" + series.label + "' is not a number within +-1e300");
      }
      if (plot.log2_x && x <= 0) {
        throw failure("log2_x needs x > 0, and '" + series.label + "' has x = " + number(x));
      }
    }
    if (!series.points.empty()) shown.push_back(&series);
  }
  if (shown.empty()) throw failure("the plot has no points");
  return render(plot, shown, width, height);
}

void write_svg(const Plot& plot, const std::string& path, int width, int height) {
  const std::string svg = render_svg(plot, width, height);
  const auto failed = [&](int error) {
    return std::runtime_error("write_svg: " + path + ": " + std::generic_category().message(error));
  };
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw failed(errno);
  int error = 0;
  errno = 0;
  if (std::fwrite(svg.data(), 1, svg.size(), file) != svg.size()) error = errno != 0 ? errno : EIO;
  if (std::fclose(file) != 0 && error == 0) error = errno != 0 ? errno : EIO;
  if (error != 0) {
    std::error_code ignored;  // a half-written file goes; /dev/full and the like are no files to remove
    if (std::filesystem::is_regular_file(path, ignored)) std::filesystem::remove(path, ignored);
    throw failed(error);
  }
}

}  // namespace jobrepo_bench
