#include "output.hpp"

namespace jobctl {

LineSplitter::LineSplitter(std::function<void(std::string_view)> on_line) : on_line_(std::move(on_line)) {}

void LineSplitter::feed(std::string_view data) {
  while (!data.empty()) {
    const auto newline = data.find('\n');
    const auto part = data.substr(0, newline);
    const auto room = max_line_bytes - line_.size();
    line_.append(part.substr(0, room));
    cut_ += part.size() > room ? part.size() - room : 0;
    if (newline == std::string_view::npos) return;
    emit();
    data.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish() {
  if (!line_.empty() || cut_ > 0) emit();
}

void LineSplitter::emit() {
  if (cut_ > 0) line_ += " [... " + std::to_string(cut_) + " bytes cut]";
  on_line_(line_);
  line_.clear();
  cut_ = 0;
}

namespace {

// A decimal count of 1-18 digits at the front of `text`, consumed.
std::optional<std::int64_t> count(std::string_view& text) {
  std::size_t digits = 0;
  std::int64_t value = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    if (++digits > 18) return std::nullopt;
    value = value * 10 + (text[digits - 1] - '0');
  }
  if (digits == 0) return std::nullopt;
  text.remove_prefix(digits);
  return value;
}

}  // namespace

std::optional<Progress> parse_progress(std::string_view line) {
  constexpr std::string_view prefix = "progress ";
  if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
  line.remove_prefix(prefix.size());
  const auto completed = count(line);
  if (!completed || line.empty() || line.front() != '/') return std::nullopt;
  line.remove_prefix(1);
  const auto total = count(line);
  if (!total || !line.empty()) return std::nullopt;
  return Progress{*completed, *total};
}

}  // namespace jobctl
