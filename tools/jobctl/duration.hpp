// Durations as operators write them: 90s, 5m, 1h30m, 250ms, 2d, -10s, 0;
// and times as jobctl shows and reads them.
#pragma once

#include <jobrepo/types.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace jobctl {

// Units: d, h, m, s, ms, us; components add up ("1h30m"); a leading '-'
// makes it negative; "0" alone is zero. At most jobrepo::max_offset (100
// years) either way, the range of every duration the library takes. Empty
// on anything else, and then *problem (when given) says why, naming the
// text: `"10x" is not a duration (like 90s, 5m, 1h30m, 250ms)` or
// `"36526d" is more than 100 years (36525d)`.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text, std::string* problem = nullptr);

// "1h30m", "5m", "12s", "250ms", "0s" (the largest two units that apply).
std::string format_duration(std::chrono::microseconds duration);

// "in 5m" or "3s ago", relative to now.
std::string relative(jobrepo::Timestamp t, jobrepo::Timestamp now);

// to - from, without overflow for any two Timestamps of the library.
std::chrono::microseconds between(jobrepo::Timestamp from, jobrepo::Timestamp to);

// Local time, "2026-11-27 04:34:30".
std::string local_time(jobrepo::Timestamp t);

// UTC with microseconds, "2026-11-27T04:34:30.123456Z" (the JSON form).
std::string iso_utc(jobrepo::Timestamp t);

// UTC in whole seconds (the fraction cut), "2026-11-27T04:34:30Z".
std::string iso_utc_seconds(jobrepo::Timestamp t);

// An ISO 8601 (RFC 3339) time with its offset: "2026-03-28T12:00:00Z" or
// "2026-03-28T13:00:00+01:00", a fraction of a second allowed (up to 9
// digits), from the first to the last whole second a Timestamp holds
// (1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z, both taken; a fraction after
// the last is refused). Empty on anything else, and then
// *problem (when given) says why, naming the text.
std::optional<jobrepo::Timestamp> parse_iso_time(std::string_view text, std::string* problem = nullptr);

inline constexpr const char* duration_hint = "like 90s, 5m, 1h30m, 250ms";

}  // namespace jobctl
