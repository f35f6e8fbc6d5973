// The rule for a run's arguments (text.hpp: payload_problem): strict JSON
// text of at most max_payload_bytes. A validator, not a parser: it builds
// nothing, reads each byte once, and recurses at most max_payload_depth
// levels deep. Core has no JSON library (only jobctl has one), and a run's
// arguments need no more than this check: handlers parse them their way.
#include <jobrepo/text.hpp>

#include "utf8.hpp"

#include <charconv>
#include <string>
#include <system_error>

namespace jobrepo {

namespace {

// Where the text stops being JSON, and why.
struct NotJson {
  std::size_t at;
  std::string why;
};

class Validator {
 public:
  explicit Validator(std::string_view text) : text_(text) {}

  // Returns when the whole text is one JSON value; throws NotJson.
  void check() {
    skip_space();
    value();
    skip_space();
    if (at_ < text_.size()) fail("expected the end of the text (one JSON value only)");
  }

 private:
  [[noreturn]] void fail(std::string why) const { throw NotJson{at_, std::move(why)}; }
  bool at_end() const { return at_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[at_]; }
  bool is_digit() const { return !at_end() && text_[at_] >= '0' && text_[at_] <= '9'; }

  void skip_space() {
    while (!at_end() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) ++at_;
  }

  void expect(char c, const char* why) {
    if (peek() != c || at_end()) fail(why);
    ++at_;
  }

  void value() {
    switch (peek()) {
      case '{': return container('}');
      case '[': return container(']');
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: break;
    }
    if (peek() == '-' || is_digit()) return number();
    fail("expected a value (an object, array, string, number, true, false or null)");
  }

  void literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word)
      fail("expected a value (an object, array, string, number, true, false or null)");
    at_ += word.size();
  }

  // An object ('}') or an array (']'), from its opening bracket.
  void container(char close) {
    const bool object = close == '}';
    if (++depth_ > max_payload_depth) {
      fail("arrays and objects are nested deeper than " + std::to_string(max_payload_depth));
    }
    ++at_;
    skip_space();
    if (peek() == close && !at_end()) {
      ++at_;
      --depth_;
      return;
    }
    for (;;) {
      if (object) {
        if (peek() != '"' || at_end()) fail("expected a string (a key of the object)");
        string();
        skip_space();
        expect(':', "expected ':' after the key");
        skip_space();
      }
      value();
      skip_space();
      if (peek() == close && !at_end()) break;
      expect(',', object ? "expected ',' or '}'" : "expected ',' or ']'");
      skip_space();
    }
    ++at_;
    --depth_;
  }

  // The four hexadecimal digits of a \u escape at at_, read.
  unsigned hex4() {
    unsigned code = 0;
    for (int i = 0; i < 4; ++i, ++at_) {
      const char c = peek();
      unsigned digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("expected four hexadecimal digits after \\u");
      }
      code = code * 16 + digit;
    }
    return code;
  }

  // The escape at at_ (just after its backslash).
  void escape() {
    const char c = peek();
    if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
      ++at_;
      return;
    }
    if (c != 'u' || at_end()) fail(R"(expected an escape: \" \\ \/ \b \f \n \r \t or \u and four hexadecimal digits)");
    ++at_;
    const unsigned code = hex4();
    if (code >= 0xDC00 && code <= 0xDFFF) fail("an escaped low surrogate without a high one before it");
    if (code < 0xD800 || code > 0xDBFF) return;
    if (text_.substr(at_, 2) != "\\u") fail("an escaped high surrogate without a low one after it");
    at_ += 2;
    const unsigned low = hex4();
    if (low < 0xDC00 || low > 0xDFFF) fail("an escaped high surrogate without a low one after it");
  }

  void string() {
    ++at_;  // the opening quote
    for (;;) {
      if (at_end()) fail("the string does not end (no closing '\"')");
      const auto c = utf8::byte_at(text_, at_);
      if (c == '"') break;
      if (c < 0x20) fail("a control character in a string (write it as an escape, like \\n or \\u0001)");
      if (c == '\\') {
        ++at_;
        escape();
        continue;
      }
      const auto length = utf8::sequence_length(text_, at_);
      if (length == 0) fail("not valid UTF-8");
      at_ += length;
    }
    ++at_;
  }

  void number() {
    const std::size_t start = at_;
    if (peek() == '-') ++at_;
    if (!is_digit()) fail("expected a digit");
    if (peek() == '0') {
      ++at_;
      if (is_digit()) fail("a number does not start with 0 followed by more digits");
    }
    while (is_digit()) ++at_;
    if (peek() == '.' && !at_end()) {
      ++at_;
      if (!is_digit()) fail("expected a digit after the decimal point");
      while (is_digit()) ++at_;
    }
    if ((peek() == 'e' || peek() == 'E') && !at_end()) {
      ++at_;
      if (peek() == '+' || peek() == '-') ++at_;
      if (!is_digit()) fail("expected a digit in the exponent");
      while (is_digit()) ++at_;
    }
    // A number beyond a double's range reads as another value (infinity,
    // 0) or fails in many parsers (RFC 8259, section 6).
    double value = 0;
    const char* first = text_.data() + start;
    const char* last = text_.data() + at_;
    if (std::from_chars(first, last, value).ec == std::errc::result_out_of_range) {
      at_ = start;
      fail("the number is beyond what a double holds (about 1e-308 to 1e308, or 0)");
    }
  }

  std::string_view text_;
  std::size_t at_ = 0;
  std::size_t depth_ = 0;
};

}  // namespace

std::optional<TextProblem> payload_problem(std::string_view payload) {
  if (payload.empty()) {
    return TextProblem{ErrorCode::invalid_parameter, "is empty (leave it out for a run without arguments)"};
  }
  if (payload.size() > max_payload_bytes) {
    return TextProblem{ErrorCode::invalid_parameter, "has " + std::to_string(payload.size()) + " bytes, more than " +
                                                         std::to_string(max_payload_bytes)};
  }
  try {
    Validator(payload).check();
  } catch (const NotJson& e) {
    // Where it went wrong, never the whole payload: quote_text shows at
    // most 60 code points from there.
    const std::string where =
        e.at >= payload.size() ? "at the end"
                               : "at byte " + std::to_string(e.at + 1) + " (" + quote_text(payload.substr(e.at)) + ")";
    return TextProblem{ErrorCode::invalid_parameter, "is not valid JSON: " + where + ": " + e.why};
  }
  return std::nullopt;
}

}  // namespace jobrepo
