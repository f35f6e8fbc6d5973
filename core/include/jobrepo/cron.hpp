// jobrepo: CronSchedule, a calendar schedule: a cron expression in a time
// zone, and the instants at which it fires.
//
// Syntax (docs/scheduler.md, "Calendar schedules"): 5 fields (minute hour
// day-of-month month day-of-week) or 6 (a leading seconds field); `*`,
// lists, ranges, steps (`*/15`, `1-10/3`; a step follows `*` or a range),
// month and day names (`JAN`, `MON-FRI`, any case; SUN ending a range is 7,
// so `MON-SUN` is every day), day-of-week 0-7 (0 and 7 are Sunday), and the
// macros @yearly @annually @monthly @weekly @daily @midnight @hourly. When
// both day-of-month and day-of-week are restricted (neither starts with `*`,
// as `*/2` does), a day matches when either matches (Vixie cron).
//
// Time zones are IANA names read from the system's tz database; the default
// is UTC, never the machine's local zone ("localtime" and paths are
// refused). Daylight-saving rules: a matching local time that does not exist
// (spring forward) fires once, at the first instant after the gap (all
// matches inside one gap collapse into that one fire); a matching local time
// that occurs twice (fall back) fires once, at its first occurrence, when the
// hour field names fixed hours, and at both occurrences when it is a
// wildcard or a step ("*", "*/2", "1-23/2"), as Vixie cron's wildcard jobs.
//
// A CronSchedule is an immutable value: cheap to copy, safe to share between
// threads.
#pragma once

#include <jobrepo/types.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace jobrepo {

// What a job with a calendar schedule does about fire times that passed
// while no server could run it.
enum class Misfire {
  run_once,  // runs once as soon as possible, then at the next future fire time
  skip,      // waits for the next future fire time
};
std::string_view to_string(Misfire misfire) noexcept;
// The Misfire spelled as to_string() spells it, or empty.
std::optional<Misfire> parse_misfire(std::string_view text) noexcept;

class CronSchedule {
 public:
  // Parses `expression` in the IANA time zone `time_zone`. Throws
  // invalid_parameter with a one-line message naming the field and the
  // offending text (or the zone), also for an expression that never fires
  // (e.g. "0 0 30 2 *"). The zone is read once, here.
  explicit CronSchedule(std::string_view expression, std::string_view time_zone = "UTC");

  // The first fire time strictly after `after`, in whole seconds; empty when
  // there is none before the end of what a Timestamp holds (2262-04-11).
  // No I/O; the search skips field by field, never second by second.
  std::optional<Timestamp> next_after(Timestamp after) const;

  // For a schedule of fixed hours (its hour field neither a wildcard nor a
  // step), the first of its matching local times in [from, to) that a change
  // of its zone's clock skips or repeats, as one line for people:
  // `2026-03-29 02:30:00 does not exist in Europe/Berlin (the clock goes
  // forward): it fires once at 2026-03-29 03:00:00 CEST (+02:00)`, or
  // `... happens twice in ... (the clock goes back): it fires at the first,
  // ...`. Empty when none, and for schedules through the day.
  std::optional<std::string> clock_change_note(Timestamp from, Timestamp to) const;

  const std::string& expression() const noexcept;  // as given
  const std::string& time_zone() const noexcept;   // as given

  // "cron 0 3 * * * in Europe/Berlin": how jobctl shows it.
  std::string to_string() const;

  // `t` in the schedule's time zone, to the second, with the zone's
  // abbreviation and offset then: "2026-03-29 03:00:00 CEST (+02:00)".
  std::string format_local(Timestamp t) const;

 private:
  struct Parsed;
  std::shared_ptr<const Parsed> parsed_;
};

}  // namespace jobrepo
