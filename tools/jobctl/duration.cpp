#include "duration.hpp"

#include <jobrepo/repository.hpp>
#include <jobrepo/text.hpp>

#include <cstdio>
#include <ctime>
#include <iterator>
#include <utility>

namespace jobctl {

using std::chrono::microseconds;

std::optional<microseconds> parse_duration(std::string_view text, std::string* problem) {
  const std::string quoted = jobrepo::quote_text(text);
  const auto refuse = [&](const std::string& why) -> std::optional<microseconds> {
    if (problem != nullptr) *problem = quoted + " " + why;
    return std::nullopt;
  };
  const auto not_a_duration = [&] { return refuse(std::string("is not a duration (") + duration_hint + ")"); };
  if (text == "0") return microseconds(0);
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty()) return not_a_duration();
  // Exact integer arithmetic: every partial sum stays at most `limit`, or the
  // text is too long (whatever the number of digits), never an overflow.
  constexpr std::int64_t limit = jobrepo::max_offset.count();
  std::int64_t total = 0;
  bool too_long = false;
  while (!text.empty()) {
    std::size_t digits = 0;
    std::int64_t value = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
      if (value <= limit) value = value * 10 + (text[digits] - '0');
      ++digits;
    }
    if (digits == 0) return not_a_duration();
    text.remove_prefix(digits);
    std::size_t letters = 0;
    while (letters < text.size() && text[letters] >= 'a' && text[letters] <= 'z') ++letters;
    const auto unit = text.substr(0, letters);
    text.remove_prefix(letters);
    std::int64_t scale = 0;
    if (unit == "d")
      scale = 86400000000LL;
    else if (unit == "h")
      scale = 3600000000LL;
    else if (unit == "m")
      scale = 60000000LL;
    else if (unit == "s")
      scale = 1000000LL;
    else if (unit == "ms")
      scale = 1000LL;
    else if (unit == "us")
      scale = 1;
    else
      return not_a_duration();
    if (too_long || value > (limit - total) / scale) {
      too_long = true;  // the rest must still read as a duration
      continue;
    }
    total += value * scale;
  }
  if (too_long) {
    const auto years = std::chrono::duration_cast<std::chrono::years>(jobrepo::max_offset).count();
    return refuse("is more than " + std::to_string(years) + " years (" +
                  format_duration(std::chrono::duration_cast<std::chrono::hours>(jobrepo::max_offset)) + ")");
  }
  return microseconds(negative ? -total : total);
}

std::string format_duration(microseconds duration) {
  std::int64_t us = duration.count();
  std::string sign;
  if (us < 0) {
    sign = "-";
    us = -us;
  }
  if (us < 1000000) return sign + (us % 1000 == 0 ? std::to_string(us / 1000) + "ms" : std::to_string(us) + "us");
  struct Unit {
    const char* name;
    std::int64_t size;
  };
  static constexpr Unit units[] = {{"d", 86400000000LL}, {"h", 3600000000LL}, {"m", 60000000LL}, {"s", 1000000LL}};
  // The largest unit that applies, then the next one when it is not zero.
  std::string out;
  for (std::size_t i = 0; i < std::size(units); ++i) {
    if (us < units[i].size) continue;
    out = std::to_string(us / units[i].size) + units[i].name;
    const auto rest = us % units[i].size;
    if (i + 1 < std::size(units) && rest >= units[i + 1].size) {
      out += std::to_string(rest / units[i + 1].size) + units[i + 1].name;
    }
    break;
  }
  return sign + out;
}

std::string relative(jobrepo::Timestamp t, jobrepo::Timestamp now) {
  const auto d = between(now, t);
  if (d.count() >= 0 && d < std::chrono::seconds(1)) return "now";
  if (d.count() < 0 && -d < std::chrono::seconds(1)) return "just now";
  const auto rounded = std::chrono::duration_cast<std::chrono::seconds>(d.count() < 0 ? -d : d);
  const std::string text = format_duration(rounded);
  return d.count() > 0 ? "in " + text : text + " ago";
}

microseconds between(jobrepo::Timestamp from, jobrepo::Timestamp to) {
  // In microseconds: a stored time may be as far as a Timestamp reaches
  // (timestamp_from_us saturates), and the difference of two such times
  // overflows the clock's nanoseconds.
  return std::chrono::duration_cast<microseconds>(to.time_since_epoch()) -
         std::chrono::duration_cast<microseconds>(from.time_since_epoch());
}

std::string local_time(jobrepo::Timestamp t) {
  const std::time_t seconds = jobrepo::Clock::to_time_t(t);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

namespace {

// "2026-11-27T04:34:30" of `t` in UTC, and the microseconds after it.
std::pair<std::string, std::int64_t> utc_seconds(jobrepo::Timestamp t) {
  const auto us = std::chrono::duration_cast<microseconds>(t.time_since_epoch()).count();
  std::int64_t seconds = us / 1000000;
  std::int64_t fraction = us % 1000000;
  if (fraction < 0) {
    fraction += 1000000;
    --seconds;
  }
  const std::time_t whole = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&whole, &utc);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return {text, fraction};
}

}  // namespace

std::string iso_utc(jobrepo::Timestamp t) {
  const auto [text, fraction] = utc_seconds(t);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%06lldZ", text.c_str(), static_cast<long long>(fraction));
  return out;
}

std::string iso_utc_seconds(jobrepo::Timestamp t) { return utc_seconds(t).first + "Z"; }

std::optional<jobrepo::Timestamp> parse_iso_time(std::string_view text, std::string* problem) {
  using namespace std::chrono;
  const auto refuse = [&](const std::string& why) -> std::optional<jobrepo::Timestamp> {
    if (problem != nullptr) *problem = jobrepo::quote_text(text) + " " + why;
    return std::nullopt;
  };
  const auto not_a_time = [&] {
    return refuse("is not a time with an offset, like 2026-03-28T12:00:00Z or 2026-03-28T13:00:00+01:00");
  };
  // The number of `count` digits at `at`, or -1.
  const auto number = [&](std::size_t at, std::size_t count) {
    int value = 0;
    for (std::size_t i = at; i < at + count; ++i) {
      if (i >= text.size() || text[i] < '0' || text[i] > '9') return -1;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  const auto is = [&](std::size_t at, std::string_view one_of) {
    return at < text.size() && one_of.find(text[at]) != std::string_view::npos;
  };
  // YYYY-MM-DDTHH:MM:SS
  const int y = number(0, 4), mo = number(5, 2), d = number(8, 2), h = number(11, 2), mi = number(14, 2),
            s = number(17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || !is(4, "-") || !is(7, "-") || !is(10, "Tt") ||
      !is(13, ":") || !is(16, ":")) {
    return not_a_time();
  }
  std::size_t at = 19;
  std::int64_t nanos = 0;
  if (is(at, ".")) {
    std::size_t digits = 0;
    for (++at; is(at, "0123456789"); ++at, ++digits) {
      if (digits < 9) nanos = nanos * 10 + (text[at] - '0');
    }
    if (digits == 0 || digits > 9) return not_a_time();
    for (; digits < 9; ++digits) nanos *= 10;
  }
  int offset_minutes = 0;
  if (is(at, "Zz")) {
    ++at;
  } else if (is(at, "+-")) {
    const int oh = number(at + 1, 2), om = number(at + 4, 2);
    if (oh < 0 || om < 0 || !is(at + 3, ":") || oh > 23 || om > 59) return not_a_time();
    offset_minutes = (text[at] == '-' ? -1 : 1) * (oh * 60 + om);
    at += 6;
  } else {
    return not_a_time();
  }
  if (at != text.size()) return not_a_time();
  const year_month_day date{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!date.ok() || h > 23 || mi > 59 || s > 59) return refuse("is not a valid date and time");
  const std::int64_t seconds_since_epoch =
      sys_days(date).time_since_epoch().count() * 86400LL + h * 3600 + mi * 60 + s - offset_minutes * 60LL;
  // From the first to the last whole second a Timestamp holds, both taken,
  // as the message names them: a fraction after the last is refused.
  const auto earliest = ceil<seconds>(jobrepo::Timestamp::min()).time_since_epoch().count();
  const auto latest = floor<seconds>(jobrepo::Timestamp::max()).time_since_epoch().count();
  if (seconds_since_epoch < earliest || seconds_since_epoch > latest || (seconds_since_epoch == latest && nanos > 0)) {
    return refuse("is outside what jobrepo handles (" +
                  iso_utc_seconds(time_point_cast<jobrepo::Timestamp::duration>(sys_seconds(seconds(earliest)))) +
                  " to " + iso_utc_seconds(jobrepo::Timestamp::max()) + ")");
  }
  return jobrepo::Timestamp(seconds(seconds_since_epoch)) + nanoseconds(nanos);
}

}  // namespace jobctl
