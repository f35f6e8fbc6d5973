// A run's output as jobctl serve reads it (tools/jobctl/output.cpp), in any
// bytes and any chunks: lines are bounded and nothing is lost or invented;
// progress lines parse only as "progress C/T".
#include "output.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte says how to cut the rest into chunks, as reads would.
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t kept = 0, lines = 0;
  jobctl::LineSplitter splitter([&](std::string_view line) {
    ++lines;
    if (line.find('\n') != std::string_view::npos) std::abort();
    const auto marker = line.rfind(" [... ");
    const bool cut = line.size() > jobctl::max_line_bytes;
    if (cut && (marker != jobctl::max_line_bytes || line.substr(line.size() - 11) != " bytes cut]")) std::abort();
    kept += cut ? jobctl::max_line_bytes : line.size();
    if (const auto progress = jobctl::parse_progress(line)) {
      if (progress->completed < 0 || progress->total < 0) std::abort();
      if (line.rfind("progress ", 0) != 0) std::abort();
    }
  });
  for (std::size_t at = 0; at < text.size(); at += chunk) splitter.feed(text.substr(at, chunk));
  splitter.finish();
  // Every byte is a line's byte, a newline, or cut (long lines only).
  std::size_t newlines = 0;
  for (const char c : text) newlines += c == '\n' ? 1 : 0;
  if (kept + newlines > text.size()) std::abort();
  if (text.size() < jobctl::max_line_bytes && kept + newlines != text.size()) std::abort();
  if (lines < newlines) std::abort();
  return 0;
}
