// jobrepo-bench's PNG line plot (tools/jobrepo-bench/plot.hpp), read back the way a
// PNG decoder reads it: signature, chunks and their CRCs, inflated and un-filtered pixels.
#include <catch2/catch.hpp>

#include "plot.hpp"
#include "temp_dir.hpp"

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

using jobrepo::test::TempDir;
using jobrepo_bench::Plot;
using jobrepo_bench::Series;
using jobrepo_bench::write_png;

namespace {

constexpr std::uint32_t red = 0xd62728;
constexpr std::uint32_t blue = 0x1f77b4;
constexpr std::uint32_t green = 0x2ca02c;
constexpr std::uint32_t orange = 0xff7f0e;
constexpr std::uint32_t white = 0xffffff;
constexpr std::uint32_t black = 0x000000;

std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::uint32_t big_endian(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  return std::uint32_t{bytes.at(at)} << 24 | std::uint32_t{bytes.at(at + 1)} << 16 |
         std::uint32_t{bytes.at(at + 2)} << 8 | std::uint32_t{bytes.at(at + 3)};
}

const std::vector<std::uint8_t> signature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

struct Chunk {
  std::string type;
  std::vector<std::uint8_t> data;
  std::uint32_t crc = 0;           // as stored
  std::uint32_t computed_crc = 0;  // zlib's crc32 of type and data
};

std::vector<Chunk> chunks_of(const std::vector<std::uint8_t>& png) {
  REQUIRE(png.size() >= signature.size());
  REQUIRE(std::vector<std::uint8_t>(png.begin(), png.begin() + 8) == signature);
  std::vector<Chunk> chunks;
  for (std::size_t at = signature.size(); at < png.size();) {
    REQUIRE(at + 12 <= png.size());
    const std::size_t length = big_endian(png, at);
    REQUIRE(at + 12 + length <= png.size());
    Chunk chunk;
    chunk.type.assign(png.begin() + static_cast<std::ptrdiff_t>(at + 4),
                      png.begin() + static_cast<std::ptrdiff_t>(at + 8));
    chunk.data.assign(png.begin() + static_cast<std::ptrdiff_t>(at + 8),
                      png.begin() + static_cast<std::ptrdiff_t>(at + 8 + length));
    chunk.crc = big_endian(png, at + 8 + length);
    chunk.computed_crc = static_cast<std::uint32_t>(crc32(0, png.data() + at + 4, static_cast<uInt>(4 + length)));
    chunks.push_back(std::move(chunk));
    at += 12 + length;
  }
  return chunks;
}

struct Image {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::uint8_t> rgb;

  std::uint32_t color_at(std::size_t at) const {
    return std::uint32_t{rgb.at(at)} << 16 | std::uint32_t{rgb.at(at + 1)} << 8 | rgb.at(at + 2);
  }
  std::size_t count(std::uint32_t color) const {
    std::size_t n = 0;
    for (std::size_t at = 0; at + 2 < rgb.size(); at += 3) {
      if (color_at(at) == color) ++n;
    }
    return n;
  }
  // Pixels of a colour in columns [left, right) of rows [top, bottom).
  std::size_t count_in(std::uint32_t color, std::uint32_t left, std::uint32_t top, std::uint32_t right,
                       std::uint32_t bottom) const {
    std::size_t n = 0;
    for (std::uint32_t y = top; y < bottom; ++y) {
      for (std::uint32_t x = left; x < right; ++x) {
        if (color_at(3 * (std::size_t{y} * width + x)) == color) ++n;
      }
    }
    return n;
  }
};

std::uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a);
  const int pb = std::abs(p - b);
  const int pc = std::abs(p - c);
  return static_cast<std::uint8_t>(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// Decodes an 8-bit RGB, non-interlaced PNG, checking its structure on the way.
Image decode(const std::filesystem::path& path) {
  const std::vector<Chunk> chunks = chunks_of(read_bytes(path));
  REQUIRE(chunks.size() >= 3);
  REQUIRE(chunks.front().type == "IHDR");
  REQUIRE(chunks.back().type == "IEND");
  const std::vector<std::uint8_t>& header = chunks.front().data;
  REQUIRE(header.size() == 13);
  REQUIRE(std::vector<std::uint8_t>(header.begin() + 8, header.end()) == std::vector<std::uint8_t>{8, 2, 0, 0, 0});
  Image image{big_endian(header, 0), big_endian(header, 4), {}};

  std::vector<std::uint8_t> deflated;
  for (const Chunk& chunk : chunks) {
    if (chunk.type == "IDAT") deflated.insert(deflated.end(), chunk.data.begin(), chunk.data.end());
  }
  const std::size_t stride = 3 * std::size_t{image.width};
  const std::size_t expected = image.height * (1 + stride);
  std::vector<std::uint8_t> raw(expected + 1);  // room for one byte too many
  uLongf raw_size = raw.size();
  REQUIRE(uncompress(raw.data(), &raw_size, deflated.data(), deflated.size()) == Z_OK);
  REQUIRE(raw_size == expected);

  image.rgb.resize(image.height * stride);
  for (std::size_t row = 0; row < image.height; ++row) {
    const std::uint8_t filter = raw[row * (1 + stride)];
    REQUIRE(filter <= 4);
    const std::uint8_t* in = &raw[row * (1 + stride) + 1];
    std::uint8_t* out = &image.rgb[row * stride];
    const std::uint8_t* up = row == 0 ? nullptr : out - stride;
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= 3 ? out[i - 3] : 0;
      const int b = up != nullptr ? up[i] : 0;
      const int c = i >= 3 && up != nullptr ? up[i - 3] : 0;
      const int predicted = filter == 0   ? 0
                            : filter == 1 ? a
                            : filter == 2 ? b
                            : filter == 3 ? (a + b) / 2
                                          : paeth(a, b, c);
      out[i] = static_cast<std::uint8_t>(in[i] + predicted);
    }
  }
  return image;
}

Series series(std::string label, std::uint32_t rgb, bool dashed, std::vector<std::pair<double, double>> points) {
  return Series{std::move(label), rgb, dashed, std::move(points)};
}

// Two backends, ours and the ceiling, over 1 to 16 workers.
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

Image draw(const Plot& plot, int width = 900, int height = 540) {
  const TempDir dir("jobrepo-plot-test");
  const auto path = dir.path / "plot.png";
  write_png(plot, path.string(), width, height);
  return decode(path);
}

}  // namespace

TEST_CASE("write_png writes a PNG signature and an IHDR of the requested size") {
  const auto [width, height] = GENERATE(std::pair{900, 540}, std::pair{320, 200}, std::pair{1601, 961});
  const TempDir dir("jobrepo-plot-test");
  const auto path = dir.path / "plot.png";
  write_png(bench_plot(), path.string(), width, height);

  const std::vector<std::uint8_t> png = read_bytes(path);
  REQUIRE(png.size() > 8 + 25);
  CHECK(std::vector<std::uint8_t>(png.begin(), png.begin() + 8) == signature);
  CHECK(big_endian(png, 8) == 13);
  CHECK(std::string(png.begin() + 12, png.begin() + 16) == "IHDR");
  CHECK(big_endian(png, 16) == static_cast<std::uint32_t>(width));
  CHECK(big_endian(png, 20) == static_cast<std::uint32_t>(height));
  CHECK(png[24] == 8);  // bit depth
  CHECK(png[25] == 2);  // colour type: RGB
}

TEST_CASE("write_png defaults to 900x540") {
  const TempDir dir("jobrepo-plot-test");
  const auto path = dir.path / "plot.png";
  write_png(bench_plot(), path.string());
  const Image image = decode(path);
  CHECK(image.width == 900);
  CHECK(image.height == 540);
}

TEST_CASE("every chunk's CRC is right and the chunks are IHDR then IDAT then IEND") {
  const TempDir dir("jobrepo-plot-test");
  const auto path = dir.path / "plot.png";
  write_png(bench_plot(), path.string());
  const std::vector<Chunk> chunks = chunks_of(read_bytes(path));
  REQUIRE(chunks.size() >= 3);
  CHECK(chunks.front().type == "IHDR");
  CHECK(chunks.back().type == "IEND");
  CHECK(chunks.back().data.empty());
  for (std::size_t i = 1; i + 1 < chunks.size(); ++i) CHECK(chunks[i].type == "IDAT");
  for (const Chunk& chunk : chunks) {
    INFO("chunk " << chunk.type);
    CHECK(chunk.crc == chunk.computed_crc);
  }
}

TEST_CASE("IDAT inflates to height rows of a filter byte and 3 bytes a pixel") {
  // decode() requires exactly height * (1 + 3 * width) bytes and a known filter on each row.
  const Image image = draw(bench_plot(), 640, 360);
  CHECK(image.width == 640);
  CHECK(image.height == 360);
  CHECK(image.rgb.size() == 640u * 360u * 3u);
}

TEST_CASE("every series is drawn in its colour on a mostly white background") {
  const Image image = draw(bench_plot());
  for (const std::uint32_t color : {blue, orange, green, red}) {
    INFO("colour " << std::hex << color);
    CHECK(image.count(color) > 100);
  }
  CHECK(image.count(white) > image.width * image.height * 7 / 10);
  CHECK(image.count(black) > 0);  // axes and text
}

TEST_CASE("a series with more points draws more of its colour") {
  Plot few = bench_plot();
  few.series[2].points = {{1, 500}, {16, 1800}};
  Plot more = bench_plot();
  more.series[2].points = {{1, 500}, {2, 1800}, {4, 500}, {8, 1800}, {16, 1800}};
  const std::size_t drawn_few = draw(few).count(green);
  const std::size_t drawn_more = draw(more).count(green);
  CHECK(drawn_few > 0);
  CHECK(drawn_more > drawn_few);
}

TEST_CASE("a series without points draws nothing and one with points does") {
  Plot plot = bench_plot();
  plot.series[2].points.clear();
  CHECK(draw(plot).count(green) == 0);
  CHECK(draw(plot).count(blue) > 0);

  plot.series[2].points = {{4, 1000}};
  CHECK(draw(plot).count(green) > 0);
}

TEST_CASE("a dashed series draws fewer pixels than the same series solid") {
  Plot solid = bench_plot();
  solid.series[3].dashed = false;
  Plot dashed = bench_plot();
  dashed.series[3].dashed = true;
  CHECK(draw(dashed).count(red) < draw(solid).count(red));
}

TEST_CASE("a title is drawn at the top centre") {
  Plot plot = bench_plot();
  plot.title = "TITLE";
  const auto top_centre = [](const Image& image) { return image.count_in(black, 300, 0, 600, 25); };
  CHECK(top_centre(draw(plot)) > 0);
  plot.title.clear();
  CHECK(top_centre(draw(plot)) == 0);
}

TEST_CASE("a linear x axis takes x values of 0 and below") {
  Plot plot = bench_plot();
  plot.log2_x = false;
  plot.series[0].points = {{-4, 100}, {0, 200}, {10, 300}};
  CHECK(draw(plot).count(blue) > 0);
}

TEST_CASE("an unwritable path throws std::runtime_error naming the path") {
  const TempDir dir("jobrepo-plot-test");
  const std::string missing = (dir.path / "no-such-dir" / "plot.png").string();
  const std::string directory = dir.path.string();
  for (const std::string& path : {missing, directory}) {
    INFO("path " << path);
    try {
      write_png(bench_plot(), path);
      FAIL("write_png did not throw");
    } catch (const std::runtime_error& error) {
      const std::string message = error.what();
      CHECK(message.rfind("write_png: " + path + ": ", 0) == 0);
      CHECK(message.size() > ("write_png: " + path + ": ").size());
    }
  }
  CHECK_FALSE(std::filesystem::exists(missing));
}

TEST_CASE("a plot without points throws and writes no file") {
  const TempDir dir("jobrepo-plot-test");
  const std::string path = (dir.path / "plot.png").string();
  Plot no_series;
  Plot empty_series;
  empty_series.series = {series("ours", blue, false, {}), series("ceiling", red, true, {})};
  for (const Plot& plot : {no_series, empty_series}) {
    CHECK_THROWS_WITH(write_png(plot, path), Catch::Matchers::StartsWith("write_png: " + path + ": "));
    CHECK_THROWS_AS(write_png(plot, path), std::runtime_error);
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("log2_x throws on an x of 0 or below") {
  const TempDir dir("jobrepo-plot-test");
  const std::string path = (dir.path / "plot.png").string();
  const double bad_x = GENERATE(0.0, -2.0);
  Plot plot = bench_plot();
  plot.series[1].points.emplace_back(bad_x, 1000);
  CHECK_THROWS_WITH(write_png(plot, path), Catch::Matchers::StartsWith("write_png: " + path + ": "));
  CHECK_THROWS_AS(write_png(plot, path), std::runtime_error);
  CHECK_FALSE(std::filesystem::exists(path));
}
