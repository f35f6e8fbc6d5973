// jobrepo-bench's SVG line plot (tools/jobrepo-bench/plot.hpp), read back as XML by a
// small strict parser: what a viewer would draw (polylines, markers, ticks, legend) and
// where it would draw it, the errors, and the same bytes for the same plot.
#include <catch2/catch.hpp>

#include "plot.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <locale>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <sys/resource.h>

using jobrepo::test::TempDir;
using jobrepo_bench::Plot;
using jobrepo_bench::render_svg;
using jobrepo_bench::Series;
using jobrepo_bench::write_svg;

namespace {

// ---- A small XML reader: elements in document order; throws on what XML does not allow.

struct Element {
  std::string name;
  std::map<std::string, std::string> attributes;  // values decoded
  std::string text;                               // character data directly inside, decoded
  std::string group;                              // the class of the innermost <g> around it

  const std::string& operator[](const std::string& key) const {
    const auto found = attributes.find(key);
    if (found == attributes.end()) throw std::runtime_error("<" + name + "> has no " + key);
    return found->second;
  }
  double number(const std::string& key) const { return std::stod((*this)[key]); }
};

std::runtime_error bad(const std::string& what) { return std::runtime_error("not well-formed: " + what); }

std::string decoded(std::string_view raw) {
  static const std::map<std::string, char, std::less<>> entities{
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '<') throw bad("a raw < in " + std::string(raw));
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    const std::size_t end = raw.find(';', i);
    const auto entity = entities.find(raw.substr(i, end == std::string_view::npos ? 1 : end - i + 1));
    if (entity == entities.end()) throw bad("a raw & in " + std::string(raw));
    out += entity->second;
    i = end;
  }
  return out;
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == ':' || c == '_'; }

Element parse_tag(std::string_view tag) {  // name and attributes, without < / >
  Element element;
  std::size_t at = 0;
  while (at < tag.size() && name_char(tag[at])) ++at;
  element.name = tag.substr(0, at);
  if (element.name.empty()) throw bad("a tag without a name: " + std::string(tag));
  while (true) {
    const std::size_t start = tag.find_first_not_of(" \n", at);
    if (start == std::string_view::npos) return element;
    if (start == at) throw bad("no space before an attribute in " + std::string(tag));
    at = start;
    while (at < tag.size() && name_char(tag[at])) ++at;
    const std::string key(tag.substr(start, at - start));
    if (key.empty() || tag.substr(at, 2) != "=\"") throw bad("an attribute is not name=\"value\": " + std::string(tag));
    const std::size_t close = tag.find('"', at + 2);
    if (close == std::string_view::npos) throw bad("an unterminated value in " + std::string(tag));
    if (!element.attributes.emplace(key, decoded(tag.substr(at + 2, close - at - 2))).second) {
      throw bad("attribute " + key + " twice in " + std::string(tag));
    }
    at = close + 1;
  }
}

std::vector<Element> parse_xml(const std::string& xml) {
  std::vector<Element> elements;
  std::vector<std::size_t> open;  // elements not closed yet, innermost last
  std::size_t at = 0;
  if (xml.rfind("<?xml ", 0) == 0) {
    at = xml.find("?>");
    if (at == std::string::npos) throw bad("the XML declaration does not end");
    at += 2;
  }
  while (at < xml.size()) {
    const std::size_t lt = std::min(xml.find('<', at), xml.size());
    const std::string chars = decoded(std::string_view(xml).substr(at, lt - at));
    if (!open.empty()) {
      elements[open.back()].text += chars;
    } else if (chars.find_first_not_of(" \n") != std::string::npos) {
      throw bad("text outside the root: " + chars);
    }
    if (lt == xml.size()) break;
    std::size_t gt = lt + 1;
    for (bool quoted = false; gt < xml.size() && (quoted || xml[gt] != '>'); ++gt) quoted ^= xml[gt] == '"';
    if (gt == xml.size()) throw bad("a tag does not end");
    std::string_view tag = std::string_view(xml).substr(lt + 1, gt - lt - 1);
    at = gt + 1;
    if (tag.starts_with('/')) {
      if (open.empty() || elements[open.back()].name != tag.substr(1)) {
        throw bad("</" + std::string(tag.substr(1)) + "> closes no open element of that name");
      }
      open.pop_back();
      continue;
    }
    if (open.empty() && !elements.empty()) throw bad("a second root <" + std::string(tag) + ">");
    const bool empty = tag.ends_with('/');
    if (empty) tag.remove_suffix(1);
    Element element = parse_tag(tag);
    for (auto i = open.rbegin(); i != open.rend() && element.group.empty(); ++i) {
      if (elements[*i].name == "g") element.group = elements[*i]["class"];
    }
    elements.push_back(std::move(element));
    if (!empty) open.push_back(elements.size() - 1);
  }
  if (!open.empty()) throw bad("<" + elements[open.back()].name + "> is not closed");
  if (elements.empty()) throw bad("no root element");
  return elements;
}

std::vector<Element> find(const std::vector<Element>& elements, const std::string& name, const std::string& group) {
  std::vector<Element> found;
  std::copy_if(elements.begin(), elements.end(), std::back_inserter(found),
               [&](const Element& e) { return e.name == name && e.group == group; });
  return found;
}

std::vector<std::pair<double, double>> vertices(const Element& polyline) {
  std::vector<std::pair<double, double>> out;
  const std::string& text = polyline["points"];
  for (const char* at = text.data(); at < text.data() + text.size();) {
    double x = 0;
    double y = 0;
    const auto comma = std::from_chars(at, text.data() + text.size(), x);
    REQUIRE((comma.ec == std::errc{} && *comma.ptr == ','));
    const auto end = std::from_chars(comma.ptr + 1, text.data() + text.size(), y);
    REQUIRE(end.ec == std::errc{});
    out.emplace_back(x, y);
    at = end.ptr + (*end.ptr == ' ' ? 1 : 0);
  }
  return out;
}

std::vector<std::string> texts(const std::vector<Element>& elements) {
  std::vector<std::string> out;
  for (const Element& e : elements) out.push_back(e.text);
  return out;
}

// ---- Plots.

constexpr std::uint32_t blue = 0x1f77b4;
constexpr std::uint32_t orange = 0xff7f0e;
constexpr std::uint32_t green = 0x2ca02c;
constexpr std::uint32_t red = 0xd62728;

Series series(std::string label, std::uint32_t rgb, bool dashed, std::vector<std::pair<double, double>> points) {
  return Series{std::move(label), rgb, dashed, std::move(points)};
}

// Two backends, ours and the ceiling, over 1 to 16 workers; y from 500 to 2,950.
Plot bench_plot() {
  Plot plot;
  plot.title = "claim cycle";
  plot.x_label = "workers";
  plot.y_label = "cycles/s";
  plot.log2_x = true;
  plot.series = {series("sqlite", blue, false, {{1, 900}, {2, 1500}, {4, 2100}, {8, 2300}, {16, 2250}}),
                 series("sqlite ceiling", orange, true, {{1, 1100}, {2, 1900}, {4, 2600}, {8, 2900}, {16, 2950}}),
                 series("postgres", green, false, {{16, 1800}, {1, 500}, {4, 1300}, {2, 800}, {8, 1700}}),
                 series("postgres ceiling", red, true, {{1, 700}, {2, 1200}, {4, 1900}, {8, 2400}, {16, 2600}})};
  return plot;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("the XML reader of these tests rejects what is not well-formed") {
  CHECK(parse_xml("<?xml version=\"1.0\"?>\n<svg a=\"1 &amp; 2\"><g class=\"c\"><text>x &lt; y</text></g></svg>")
            .size() == 3);
  for (const std::string broken :
       {"<svg><g></svg>", "<svg>a & b</svg>", "<svg x=1/>", "<svg/><svg/>", "<svg><text>a</g></svg>",
        "<svg a=\"1\" a=\"2\"/>", "<svg>", "text<svg/>", "<svg a=\"<\"/>", "<svg a=\"1\"b=\"2\"/>"}) {
    INFO(broken);
    CHECK_THROWS_WITH(parse_xml(broken), Catch::Matchers::StartsWith("not well-formed: "));
  }
}

TEST_CASE("render_svg gives a well-formed SVG document of the requested size on white") {
  const auto [width, height] =
      GENERATE(std::pair{900, 540}, std::pair{320, 200}, std::pair{1601, 961}, std::pair{400, 900});
  const std::string svg = render_svg(bench_plot(), width, height);
  CHECK(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 0) == 0);
  const std::vector<Element> doc = parse_xml(svg);
  const Element& root = doc.front();
  CHECK(root.name == "svg");
  CHECK(root["xmlns"] == "http://www.w3.org/2000/svg");
  CHECK(root["width"] == std::to_string(width));
  CHECK(root["height"] == std::to_string(height));
  CHECK(root["font-family"] == "sans-serif");
  // The viewBox has the requested shape: the drawing fills the image, undistorted.
  double view[4] = {-1, -1, 0, 0};
  std::istringstream(root["viewBox"]) >> view[0] >> view[1] >> view[2] >> view[3];
  CHECK(view[0] == 0);
  CHECK(view[1] == 0);
  CHECK(view[2] / view[3] == Approx(static_cast<double>(width) / height).epsilon(0.001));
  const Element& background = doc.at(2);  // after <title>, below everything else
  CHECK(background.name == "rect");
  CHECK(background.number("width") == view[2]);
  CHECK(background.number("height") == view[3]);
  CHECK(background["fill"] == "#ffffff");
}

TEST_CASE("render_svg defaults to 900x540, drawn in as many units") {
  const Element root = parse_xml(render_svg(bench_plot())).front();
  CHECK(root["width"] == "900");
  CHECK(root["height"] == "540");
  CHECK(root["viewBox"] == "0 0 900 540");
}

TEST_CASE("an image of another size is the same drawing, scaled") {
  const std::string full = render_svg(bench_plot());
  std::string half = render_svg(bench_plot(), 450, 270);
  const std::string size = R"(width="450" height="270")";
  REQUIRE(half.find(size) != std::string::npos);
  half.replace(half.find(size), size.size(), R"(width="900" height="540")");
  CHECK(half == full);
}

TEST_CASE("x tick labels that would overlap are left out") {
  Plot plot = bench_plot();
  plot.series = {series("ours", blue, false, {})};
  for (int workers = 1; workers <= 64; ++workers) plot.series[0].points.emplace_back(workers, 100);
  const std::vector<Element> labels = find(parse_xml(render_svg(plot)), "text", "x-ticks");
  REQUIRE(labels.size() >= 6);
  CHECK(labels.size() < 64);
  CHECK(labels.front().text == "1");
  CHECK(labels[1].text == "2");
  for (std::size_t i = 1; i < labels.size(); ++i) {
    INFO(labels[i - 1].text << " and " << labels[i].text);
    CHECK(labels[i].number("x") - labels[i - 1].number("x") > 20);
  }
}

TEST_CASE("each series is one polyline in its colour through its points sorted by x, with a marker on each") {
  const Plot plot = bench_plot();
  const std::vector<Element> doc = parse_xml(render_svg(plot));
  const std::vector<Element> polylines = find(doc, "polyline", "series");
  REQUIRE(polylines.size() == plot.series.size());
  CHECK(find(doc, "circle", "series").size() == 20);
  for (std::size_t i = 0; i < polylines.size(); ++i) {
    INFO("series " << plot.series[i].label);
    const auto drawn = vertices(polylines[i]);
    REQUIRE(drawn.size() == plot.series[i].points.size());
    for (std::size_t v = 1; v < drawn.size(); ++v) CHECK(drawn[v].first > drawn[v - 1].first);
    CHECK(polylines[i]["fill"] == "none");
  }
  CHECK(polylines[0]["stroke"] == "#1f77b4");
  CHECK(polylines[1]["stroke"] == "#ff7f0e");
  CHECK(polylines[2]["stroke"] == "#2ca02c");
  CHECK(polylines[3]["stroke"] == "#d62728");
}

TEST_CASE("a series without points is left out, legend included, and one with a single point is a marker") {
  Plot plot = bench_plot();
  plot.series[2].points.clear();
  plot.series[3].points = {{4, 1000}};
  const std::vector<Element> doc = parse_xml(render_svg(plot));
  const std::vector<Element> polylines = find(doc, "polyline", "series");
  REQUIRE(polylines.size() == 3);
  CHECK(vertices(polylines[2]).size() == 1);
  CHECK(find(doc, "circle", "series").size() == 11);
  CHECK(texts(find(doc, "text", "legend")) == std::vector<std::string>{"sqlite", "sqlite ceiling", "postgres ceiling"});
}

TEST_CASE("dashed series and their legend lines carry stroke-dasharray, solid ones none") {
  const Plot plot = bench_plot();
  const std::vector<Element> doc = parse_xml(render_svg(plot));
  const std::vector<Element> polylines = find(doc, "polyline", "series");
  const std::vector<Element> swatches = find(doc, "line", "legend");
  REQUIRE(polylines.size() == 4);
  REQUIRE(swatches.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("series " << plot.series[i].label);
    CHECK(polylines[i].attributes.contains("stroke-dasharray") == plot.series[i].dashed);
    CHECK(swatches[i].attributes.contains("stroke-dasharray") == plot.series[i].dashed);
    CHECK(swatches[i]["stroke"] == polylines[i]["stroke"]);
  }
  // Markers: filled on a solid line, hollow (white inside) on a dashed one.
  for (const Element& circle : find(doc, "circle", "series")) {
    const bool solid = circle["stroke"] == "#1f77b4" || circle["stroke"] == "#2ca02c";
    CHECK(circle["fill"] == (solid ? circle["stroke"] : "#ffffff"));
  }
}

TEST_CASE("the title, the axis labels and the legend's labels are shown, escaped for XML") {
  Plot plot = bench_plot();
  plot.title = "ours & \"theirs\"";
  plot.x_label = "workers <n>";
  plot.series[0].label = "a<b & \"c\"";
  const std::string svg = render_svg(plot);
  CHECK(svg.find("a&lt;b &amp; &quot;c&quot;") != std::string::npos);
  CHECK(svg.find("workers &lt;n&gt;") != std::string::npos);
  const std::vector<Element> doc = parse_xml(svg);
  CHECK(texts(find(doc, "text", "legend")) ==
        std::vector<std::string>{"a<b & \"c\"", "sqlite ceiling", "postgres", "postgres ceiling"});
  std::vector<std::string> shown;
  for (const Element& e : doc) {
    if (e.name == "text" && e.group.empty()) shown.push_back(e.text);
  }
  CHECK(shown == std::vector<std::string>{"ours & \"theirs\"", "cycles/s", "workers <n>"});

  plot.title.clear();
  plot.x_label.clear();
  plot.y_label.clear();
  const std::vector<Element> bare = parse_xml(render_svg(plot));
  CHECK(std::none_of(bare.begin(), bare.end(), [](const Element& e) { return e.name == "text" && e.group.empty(); }));
}

TEST_CASE("y ticks: round values with thousands separators over the data, points placed by them") {
  const std::vector<Element> doc = parse_xml(render_svg(bench_plot()));
  const std::vector<Element> labels = find(doc, "text", "y-ticks");
  CHECK(texts(labels) == std::vector<std::string>{"0", "500", "1,000", "1,500", "2,000", "2,500", "3,000"});
  // 0 at the bottom, 3,000 at the top: every point's height is y over 3,000 of the way.
  const double zero = labels.front().number("y");
  const double top = labels.back().number("y");
  REQUIRE(top < zero);
  const Plot plot = bench_plot();
  const std::vector<Element> polylines = find(doc, "polyline", "series");
  for (std::size_t i = 0; i < polylines.size(); ++i) {
    auto points = plot.series[i].points;
    std::sort(points.begin(), points.end());
    const auto drawn = vertices(polylines[i]);
    REQUIRE(drawn.size() == points.size());
    for (std::size_t v = 0; v < drawn.size(); ++v) {
      CHECK(drawn[v].second == Approx(zero + (top - zero) * points[v].second / 3000).margin(0.01));
    }
  }

  Plot big = bench_plot();
  big.series[0].points.emplace_back(32, 12000);
  const std::vector<std::string> big_labels = texts(find(parse_xml(render_svg(big)), "text", "y-ticks"));
  CHECK(big_labels == std::vector<std::string>{"0", "2,000", "4,000", "6,000", "8,000", "10,000", "12,000"});
}

TEST_CASE("a linear x axis: round ticks over the data, 0 and below included") {
  Plot plot = bench_plot();
  plot.log2_x = false;
  plot.series = {series("ours", blue, false, {{-4, 0.5}, {0, 1.25}, {10, 0.75}})};
  const std::vector<Element> doc = parse_xml(render_svg(plot));
  CHECK(texts(find(doc, "text", "x-ticks")) == std::vector<std::string>{"-5", "-2.5", "0", "2.5", "5", "7.5", "10"});
  CHECK(texts(find(doc, "text", "y-ticks")) == std::vector<std::string>{"0", "0.25", "0.5", "0.75", "1", "1.25"});
}

TEST_CASE("a log2 x axis places 1, 2, 4, 8 and 16 workers at equal spacing, and a linear one does not") {
  const auto tick_xs = [](const Plot& plot) {
    const std::vector<Element> doc = parse_xml(render_svg(plot));
    std::map<std::string, double> at;
    for (const Element& label : find(doc, "text", "x-ticks")) at[label.text] = label.number("x");
    std::vector<double> xs;
    for (const auto& [x, y] : vertices(find(doc, "polyline", "series").front())) xs.push_back(x);
    return std::pair{at, xs};
  };
  const auto [ticks, xs] = tick_xs(bench_plot());
  REQUIRE(ticks.size() == 5);
  const double step = ticks.at("2") - ticks.at("1");
  CHECK(step > 100);
  CHECK(ticks.at("4") - ticks.at("2") == Approx(step).margin(0.02));
  CHECK(ticks.at("8") - ticks.at("4") == Approx(step).margin(0.02));
  CHECK(ticks.at("16") - ticks.at("8") == Approx(step).margin(0.02));
  CHECK(xs == std::vector<double>{ticks.at("1"), ticks.at("2"), ticks.at("4"), ticks.at("8"), ticks.at("16")});

  Plot linear = bench_plot();
  linear.log2_x = false;
  const auto linear_xs = tick_xs(linear).second;
  CHECK(linear_xs[4] - linear_xs[3] > 4 * (linear_xs[1] - linear_xs[0]));
}

TEST_CASE("every point lies within the axes") {
  const auto [width, height] = GENERATE(std::pair{900, 540}, std::pair{320, 200}, std::pair{400, 900});
  const std::vector<Element> doc = parse_xml(render_svg(bench_plot(), width, height));
  const std::vector<Element> axes = find(doc, "line", "axes");
  REQUIRE(axes.size() >= 2);
  const Element& y_axis = axes[0];  // from the top down the left side
  const Element& x_axis = axes[1];  // from the left along the bottom
  REQUIRE(y_axis.number("x1") == y_axis.number("x2"));
  REQUIRE(x_axis.number("y1") == x_axis.number("y2"));
  for (const Element& polyline : find(doc, "polyline", "series")) {
    for (const auto& [x, y] : vertices(polyline)) {
      CHECK(x > y_axis.number("x1"));
      CHECK(x < x_axis.number("x2"));
      CHECK(y >= y_axis.number("y1"));
      CHECK(y < x_axis.number("y1"));
    }
  }
}

TEST_CASE("the same plot gives the same bytes, whatever the points' order and the global locale") {
  const std::string once = render_svg(bench_plot());
  CHECK(render_svg(bench_plot()) == once);

  Plot sorted = bench_plot();
  std::sort(sorted.series[2].points.begin(), sorted.series[2].points.end());
  CHECK(render_svg(sorted) == once);

  struct CommaDecimal : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
  };
  const std::locale previous = std::locale::global(std::locale(std::locale::classic(), new CommaDecimal));
  const std::string localised = render_svg(bench_plot());
  std::locale::global(previous);
  CHECK(localised == once);
}

TEST_CASE("render_svg throws on a plot it cannot draw") {
  Plot plot = bench_plot();
  CHECK_THROWS_WITH(render_svg(plot, 0, 540), "render_svg: size 0x540 is not within 1..16384");
  CHECK_THROWS_WITH(render_svg(plot, 900, 16385), "render_svg: size 900x16385 is not within 1..16384");

  CHECK_THROWS_WITH(render_svg(Plot{}), "render_svg: the plot has no points");
  Plot empty_series;
  empty_series.series = {series("ours", blue, false, {}), series("ceiling", red, true, {})};
  CHECK_THROWS_WITH(render_svg(empty_series), "render_svg: the plot has no points");

  plot.series[1].points.emplace_back(0, 1000);
  CHECK_THROWS_WITH(render_svg(plot), "render_svg: log2_x needs x > 0, and 'sqlite ceiling' has x = 0");
  plot.series[1].points.back().first = -2;
  CHECK_THROWS_WITH(render_svg(plot), "render_svg: log2_x needs x > 0, and 'sqlite ceiling' has x = -2");
  plot.log2_x = false;
  CHECK_NOTHROW(render_svg(plot));

  for (const double wild : {std::nan(""), 1e301, -std::numeric_limits<double>::infinity()}) {
    Plot bad_point = bench_plot();
    bad_point.series[2].points.emplace_back(4, wild);
    CHECK_THROWS_WITH(render_svg(bad_point), "render_svg: a point of 'postgres' is not a number within +-1e300");
  }
  CHECK_THROWS_AS(render_svg(Plot{}), std::runtime_error);
}

TEST_CASE("write_svg writes render_svg's text, or throws naming the path and writes nothing") {
  const TempDir dir("jobrepo-plot-test");
  const std::string path = (dir.path / "plot.svg").string();
  write_svg(bench_plot(), path, 640, 360);
  CHECK(read_file(path) == render_svg(bench_plot(), 640, 360));

  const std::string fresh = (dir.path / "fresh.svg").string();
  CHECK_THROWS_WITH(write_svg(Plot{}, fresh), "render_svg: the plot has no points");
  CHECK_FALSE(std::filesystem::exists(fresh));

  const std::string missing = (dir.path / "no-such-dir" / "plot.svg").string();
  CHECK_THROWS_WITH(write_svg(bench_plot(), missing),
                    "write_svg: " + missing + ": " + std::generic_category().message(ENOENT));
  CHECK_THROWS_WITH(write_svg(bench_plot(), dir.path.string()),
                    "write_svg: " + dir.path.string() + ": " + std::generic_category().message(EISDIR));
  CHECK_THROWS_AS(write_svg(bench_plot(), missing), std::runtime_error);
}

TEST_CASE("write_svg reports a failed write and removes what it wrote") {
  // A file size limit of 100 bytes makes the write fail with EFBIG (instead of SIGXFSZ) part way.
  struct SmallFiles {
    rlimit saved{};
    void (*handler)(int) = SIG_DFL;
    SmallFiles() {
      REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
      handler = std::signal(SIGXFSZ, SIG_IGN);
      const rlimit small{100, saved.rlim_max};
      REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    }
    SmallFiles(const SmallFiles&) = delete;
    SmallFiles& operator=(const SmallFiles&) = delete;
    ~SmallFiles() {
      setrlimit(RLIMIT_FSIZE, &saved);
      std::signal(SIGXFSZ, handler);
    }
  };
  const TempDir dir("jobrepo-plot-test");
  const std::string path = (dir.path / "plot.svg").string();
  {
    const SmallFiles limit;
    CHECK_THROWS_WITH(write_svg(bench_plot(), path),
                      "write_svg: " + path + ": " + std::generic_category().message(EFBIG));
  }
  CHECK_FALSE(std::filesystem::exists(path));
}
