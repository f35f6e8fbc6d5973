#include <jobrepo/error.hpp>
#include <jobrepo/types.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <utility>

namespace jobrepo {

namespace {

constexpr std::array<std::pair<Status, std::string_view>, 4> status_names{{
    {Status::running, "running"},
    {Status::completed, "completed"},
    {Status::failed, "failed"},
    {Status::interrupted, "interrupted"},
}};

}  // namespace

Timestamp timestamp_from_us(std::int64_t us) noexcept {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  // Whole microseconds, so that a saturated time converts back exactly.
  constexpr auto earliest = duration_cast<microseconds>(Timestamp::duration::min()).count();
  constexpr auto latest = duration_cast<microseconds>(Timestamp::duration::max()).count();
  return Timestamp(duration_cast<Timestamp::duration>(microseconds(std::clamp<std::int64_t>(us, earliest, latest))));
}

std::string_view to_string(Status status) noexcept {
  for (const auto& [value, name] : status_names) {
    if (value == status) return name;
  }
  return "unknown";
}

std::optional<Status> parse_status(std::string_view text) noexcept {
  for (const auto& [value, name] : status_names) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_parameter: return "invalid_parameter";
    case ErrorCode::not_unique: return "not_unique";
    case ErrorCode::record_not_found: return "record_not_found";
    case ErrorCode::invalid_job_run_state: return "invalid_job_run_state";
    case ErrorCode::check_constraint: return "check_constraint";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::busy: return "busy";
    case ErrorCode::schema_mismatch: return "schema_mismatch";
    case ErrorCode::internal: return "internal";
  }
  return "unknown";
}

namespace {

// A run of blanks holding a line break or a tab becomes one space (a
// driver's message continues on indented lines); spaces alone stay as they
// are, so that a quoted value keeps its own ("   " is blank, not " ").
std::string one_line(const std::string& text) {
  const auto blank = [](char c) { return c == '\n' || c == '\r' || c == '\t' || c == ' '; };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!blank(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    const std::size_t start = i;
    bool breaks = false;
    for (; i < text.size() && blank(text[i]); ++i) breaks = breaks || text[i] != ' ';
    if (out.empty() || i == text.size()) continue;  // leading and trailing blanks go
    if (breaks) {
      out.push_back(' ');
    } else {
      out.append(text, start, i - start);
    }
  }
  return out;
}

}  // namespace

Error::Error(ErrorCode code, const std::string& message, std::string native_code)
    : std::runtime_error(one_line(message)), code_(code), native_code_(std::move(native_code)) {}

}  // namespace jobrepo
