#include <jobrepo/text.hpp>

#include "utf8.hpp"

#include <cstdio>
#include <vector>

namespace jobrepo {

namespace {

using utf8::byte_at;
using utf8::sequence_length;

bool url_safe(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::size_t limit_of(TextKind kind) {
  switch (kind) {
    case TextKind::description: return max_description_length;
    case TextKind::server_id: return max_server_id_length;
    case TextKind::job_name:
    case TextKind::plugin_id:
    case TextKind::run_id: break;
  }
  return max_name_length;
}

}  // namespace

std::optional<TextProblem> encoding_problem(std::string_view value) {
  for (std::size_t i = 0; i < value.size();) {
    if (value[i] == '\0') return TextProblem{ErrorCode::invalid_parameter, quote_text(value) + " contains a NUL byte"};
    const auto length = sequence_length(value, i);
    if (length == 0) return TextProblem{ErrorCode::invalid_parameter, quote_text(value) + " is not valid UTF-8"};
    i += length;
  }
  return std::nullopt;
}

std::optional<TextProblem> text_problem(TextKind kind, std::string_view value) {
  if (value.empty()) return TextProblem{ErrorCode::invalid_parameter, "is missing"};
  if (auto problem = encoding_problem(value)) return problem;
  if (kind == TextKind::run_id) {
    for (const char c : value) {
      if (!url_safe(c)) {
        return TextProblem{ErrorCode::invalid_parameter,
                           quote_text(value) + " has characters other than A-Z a-z 0-9 - _"};
      }
    }
    return std::nullopt;
  }
  const auto length = trimmed_length(value);
  if (length == 0) return TextProblem{ErrorCode::check_constraint, quote_text(value) + " is blank"};
  if (const auto limit = limit_of(kind); length > limit) {
    return TextProblem{ErrorCode::check_constraint, quote_text(value) + " has " + std::to_string(length) +
                                                        " characters, more than " + std::to_string(limit)};
  }
  return std::nullopt;
}

std::size_t trimmed_length(std::string_view text) {
  const auto first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return 0;
  const auto last = text.find_last_not_of(' ');
  std::size_t characters = 0;
  for (std::size_t i = first; i <= last; ++i) {
    if ((byte_at(text, i) & 0xC0U) != 0x80U) ++characters;
  }
  return characters;
}

namespace {

// Appends the code point of `text` at `i` (or its byte, when that starts no
// valid UTF-8 sequence) by printable()'s rule, a double quote escaped too
// when `quotes`; returns the bytes it took.
std::size_t append_visible(std::string& out, std::string_view text, std::size_t i, bool quotes) {
  const auto hex = [&out](unsigned char c) {
    char digits[5];
    std::snprintf(digits, sizeof digits, "\\x%02x", static_cast<unsigned>(c));
    out.append(digits);
  };
  const auto length = sequence_length(text, i);
  const unsigned char c = byte_at(text, i);
  if (length == 0) {
    hex(c);
    return 1;
  }
  if (length == 2 && c == 0xC2 && byte_at(text, i + 1) < 0xA0) {  // U+0080-U+009F, the C1 controls
    hex(c);
    hex(byte_at(text, i + 1));
    return 2;
  }
  if (length > 1) {
    out.append(text.substr(i, length));
    return length;
  }
  switch (c) {
    case '\\': out.append("\\\\"); break;
    case '\n': out.append("\\n"); break;
    case '\r': out.append("\\r"); break;
    case '\t': out.append("\\t"); break;
    case '"':
      if (quotes) out.push_back('\\');
      out.push_back('"');
      break;
    default:
      if (c < 0x20 || c == 0x7F) {
        hex(c);
      } else {
        out.push_back(static_cast<char>(c));
      }
  }
  return 1;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) i += append_visible(out, text, i, false);
  return out;
}

std::string quote_text(std::string_view text) {
  constexpr std::size_t shown = 60;  // code points
  std::string out = "\"";
  std::size_t characters = 0;
  std::size_t i = 0;
  while (i < text.size() && characters < shown) {
    i += append_visible(out, text, i, true);
    ++characters;
  }
  if (i < text.size()) out.append("...");
  out.push_back('"');
  return out;
}

std::string shown_text(std::string_view text) {
  std::string quoted = quote_text(text);
  const bool as_is = !text.empty() && quoted.size() == text.size() + 2 && quoted.compare(1, text.size(), text) == 0;
  return as_is ? std::string(text) : quoted;
}

std::string message_text(std::string_view text) {
  // Cleaned, with the byte offset where each code point starts.
  std::string out;
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < text.size();) {
    const auto length = sequence_length(text, i);
    const unsigned char c = byte_at(text, i);
    starts.push_back(out.size());
    if (c == '\n' || c == '\r') {
      out.push_back(' ');
    } else if (length == 0 || (c < 0x20 && c != '\t') || c == 0x7F) {
      out.append("\xEF\xBF\xBD");  // U+FFFD
    } else {
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    i += 1;
  }
  std::size_t first = 0;
  while (first < starts.size() && out[starts[first]] == ' ') ++first;
  std::size_t last = starts.size();
  while (last > first && out[starts[last - 1]] == ' ') --last;
  const auto end_of = [&](std::size_t k) { return k < starts.size() ? starts[k] : out.size(); };
  if (last - first <= max_message_length) return out.substr(end_of(first), end_of(last) - end_of(first));
  const std::size_t keep = first + max_message_length - 3;
  return out.substr(starts[first], starts[keep] - starts[first]) + "...";
}

}  // namespace jobrepo
