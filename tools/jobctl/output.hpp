// A run's output as jobctl serve reads it: the command's stdout cut into
// lines (bounded, whatever the command prints), and the progress lines
// among them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace jobctl {

// Lines of a command's output longer than this are cut (and say so).
inline constexpr std::size_t max_line_bytes = 64 * 1024;

// Splits a byte stream into lines for `on_line` (without the newline),
// keeping at most max_line_bytes of a line in memory: a longer line is cut
// there and ends with " [... N bytes cut]". Not thread-safe.
class LineSplitter {
 public:
  explicit LineSplitter(std::function<void(std::string_view)> on_line);
  void feed(std::string_view data);
  // The last line, when the output did not end with a newline.
  void finish();

 private:
  void emit();
  std::function<void(std::string_view)> on_line_;
  std::string line_;
  std::size_t cut_ = 0;
};

struct Progress {
  std::int64_t completed = 0;
  std::int64_t total = 0;
};

// "progress C/T" exactly (C and T decimal, at most 18 digits), or empty.
std::optional<Progress> parse_progress(std::string_view line);

}  // namespace jobctl
