// CronSchedule: the syntax, its errors, time zones, the daylight-saving
// rules at exact instants, and a cross-check of next_after() against a
// brute-force walk of every minute (every second for 6 fields) that applies
// the rules from their definition, for random expressions in six zones.
#include <jobrepo/cron.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include "error_of.hpp"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using jobrepo::CronSchedule;
using jobrepo::ErrorCode;
using jobrepo::Timestamp;
using jobrepo::test::code_of;

namespace {

// "2026-03-29T01:00:00Z" or with an offset, fractions allowed.
Timestamp at(const std::string& text) {
  Timestamp t;
  INFO(text);
  REQUIRE(cctz::parse("%Y-%m-%dT%H:%M:%E*S%Ez", text, cctz::utc_time_zone(), &t));
  return t;
}

std::string iso(Timestamp t) { return cctz::format("%Y-%m-%dT%H:%M:%E*SZ", t, cctz::utc_time_zone()); }

// The next `count` fire times after `from`, in UTC; "none" ends a list that
// ends early.
std::vector<std::string> fires(const std::string& expression, const std::string& zone, const std::string& from,
                               int count) {
  const CronSchedule schedule(expression, zone);
  std::vector<std::string> out;
  Timestamp t = at(from);
  for (int i = 0; i < count; ++i) {
    const auto next = schedule.next_after(t);
    if (!next) {
      out.emplace_back("none");
      break;
    }
    out.push_back(iso(*next));
    t = *next;
  }
  return out;
}

using Lines = std::vector<std::string>;

// The message of the invalid_parameter that the schedule throws.
std::string refusal(const std::string& expression, const std::string& zone = "UTC") {
  std::string message;
  CHECK(code_of([&] { const CronSchedule refused(expression, zone); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message.find('\n') == std::string::npos);
  return message;
}

}  // namespace

TEST_CASE("cron: 5 and 6 fields - *, lists, ranges and steps") {
  CHECK(fires("* * * * *", "UTC", "2026-03-28T12:00:00.5Z", 2) ==
        Lines{"2026-03-28T12:01:00Z", "2026-03-28T12:02:00Z"});
  CHECK(fires("*/15 * * * *", "UTC", "2026-03-28T12:00:00Z", 4) ==
        Lines{"2026-03-28T12:15:00Z", "2026-03-28T12:30:00Z", "2026-03-28T12:45:00Z", "2026-03-28T13:00:00Z"});
  CHECK(fires("1-10/3 * * * *", "UTC", "2026-03-28T12:00:00Z", 5) ==
        Lines{"2026-03-28T12:01:00Z", "2026-03-28T12:04:00Z", "2026-03-28T12:07:00Z", "2026-03-28T12:10:00Z",
              "2026-03-28T13:01:00Z"});
  CHECK(fires("5,50-51,10 * * * *", "UTC", "2026-03-28T12:00:00Z", 5) ==
        Lines{"2026-03-28T12:05:00Z", "2026-03-28T12:10:00Z", "2026-03-28T12:50:00Z", "2026-03-28T12:51:00Z",
              "2026-03-28T13:05:00Z"});
  CHECK(fires("0 9-17/4 * * *", "UTC", "2026-03-28T12:00:00Z", 3) ==
        Lines{"2026-03-28T13:00:00Z", "2026-03-28T17:00:00Z", "2026-03-29T09:00:00Z"});
  CHECK(fires("0 0 1,15 */5 *", "UTC", "2026-03-28T12:00:00Z", 3) ==
        Lines{"2026-06-01T00:00:00Z", "2026-06-15T00:00:00Z", "2026-11-01T00:00:00Z"});
  // A step larger than the field's range leaves its start.
  CHECK(fires("*/60 */24 * * *", "UTC", "2026-03-28T12:00:00Z", 2) ==
        Lines{"2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"});
  // Six fields: seconds first.
  CHECK(fires("*/20 * * * * *", "UTC", "2026-03-28T12:00:00Z", 3) ==
        Lines{"2026-03-28T12:00:20Z", "2026-03-28T12:00:40Z", "2026-03-28T12:01:00Z"});
  CHECK(fires("30 0 12 * * *", "UTC", "2026-03-28T12:00:00Z", 2) ==
        Lines{"2026-03-28T12:00:30Z", "2026-03-29T12:00:30Z"});
  CHECK(fires("59 59 23 31 12 *", "UTC", "2026-03-28T12:00:00Z", 1) == Lines{"2026-12-31T23:59:59Z"});
  // Blanks: any run of spaces and tabs between fields, and around them.
  CHECK(fires(" \t0  12\t* *  * ", "UTC", "2026-03-28T12:00:00Z", 1) == Lines{"2026-03-29T12:00:00Z"});
}

TEST_CASE("cron: next_after is strictly after, in whole seconds, whatever the fraction of its argument") {
  const CronSchedule every_second("* * * * * *");
  CHECK(iso(*every_second.next_after(at("2026-03-28T12:00:00Z"))) == "2026-03-28T12:00:01Z");
  CHECK(iso(*every_second.next_after(at("2026-03-28T12:00:00.999999999Z"))) == "2026-03-28T12:00:01Z");
  CHECK(iso(*every_second.next_after(at("2026-03-28T11:59:59.000000001Z"))) == "2026-03-28T12:00:00Z");
  const CronSchedule daily("0 0 * * *");
  const auto midnight = at("2026-03-28T00:00:00Z");
  CHECK(*daily.next_after(midnight - std::chrono::nanoseconds(1)) == midnight);
  CHECK(iso(*daily.next_after(midnight)) == "2026-03-29T00:00:00Z");
  // Before 1970 too.
  CHECK(fires("0 0 1 1 *", "UTC", "1969-12-31T23:59:59.5Z", 1) == Lines{"1970-01-01T00:00:00Z"});
  CHECK(fires("0 0 1 1 *", "UTC", "1677-09-22T00:00:00Z", 1) == Lines{"1678-01-01T00:00:00Z"});
}

TEST_CASE("cron: month and day names in any case, in ranges and lists - 0 and 7 are Sunday") {
  // 2026-01-01 is a Thursday.
  const std::string thursday = "2026-01-01T00:00:00Z";
  CHECK(fires("0 0 * * MON-FRI", "UTC", thursday, 3) ==
        Lines{"2026-01-02T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"});
  CHECK(fires("0 0 * * mon-fri", "UTC", thursday, 3) == fires("0 0 * * 1-5", "UTC", thursday, 3));
  CHECK(fires("0 0 1 JAN,jul *", "UTC", thursday, 3) ==
        Lines{"2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"});
  CHECK(fires("0 0 1 Mar-May *", "UTC", thursday, 4) ==
        Lines{"2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z", "2027-03-01T00:00:00Z"});
  CHECK(fires("0 0 1 2-3,nov *", "UTC", thursday, 3) ==
        Lines{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-11-01T00:00:00Z"});
  const Lines sundays = {"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"};
  for (const auto* sunday : {"0", "7", "SUN", "sUn", "0,7", "7-7", "SUN-SAT/7", "*/7"}) {
    INFO(sunday);
    CHECK(fires(std::string("0 0 * * ") + sunday, "UTC", thursday, 2) == sundays);
  }
  // SUN ends a range as 7: MON-SUN is every day, SAT-SUN the weekend.
  CHECK(fires("0 0 * * MON-SUN", "UTC", thursday, 3) ==
        Lines{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"});
  CHECK(fires("0 0 * * SAT-SUN", "UTC", thursday, 3) ==
        Lines{"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-10T00:00:00Z"});
  CHECK(fires("0 0 * * 5-7", "UTC", thursday, 3) ==
        Lines{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"});
  // */2 over 0-7: Sunday, Tuesday, Thursday, Saturday.
  CHECK(fires("0 0 * * */2", "UTC", thursday, 3) ==
        Lines{"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z"});
}

TEST_CASE("cron: the macros") {
  const std::string from = "2026-01-01T12:00:00Z";  // a Thursday
  const std::map<std::string, std::string> first = {
      {"@yearly", "2027-01-01T00:00:00Z"}, {"@annually", "2027-01-01T00:00:00Z"}, {"@monthly", "2026-02-01T00:00:00Z"},
      {"@weekly", "2026-01-04T00:00:00Z"}, {"@daily", "2026-01-02T00:00:00Z"},    {"@midnight", "2026-01-02T00:00:00Z"},
      {"@hourly", "2026-01-01T13:00:00Z"}};
  for (const auto& [macro, expected] : first) {
    INFO(macro);
    CHECK(fires(macro, "UTC", from, 1) == Lines{expected});
    CHECK(fires(" " + macro + "\t", "UTC", from, 1) == Lines{expected});
  }
  CHECK(fires("@daily", "Europe/Berlin", from, 1) == Lines{"2026-01-01T23:00:00Z"});
  CHECK(fires("@weekly", "UTC", from, 3) == fires("0 0 * * 0", "UTC", from, 3));
  CHECK(CronSchedule("@daily").expression() == "@daily");
}

TEST_CASE("cron: day-of-month OR day-of-week when both are restricted (Vixie cron), else AND") {
  const std::string from = "2026-02-01T00:00:00Z";  // a Sunday; Friday 2026-02-13, Friday 2026-03-13
  // The 13th or any Friday.
  CHECK(fires("0 0 13 * FRI", "UTC", from, 4) ==
        Lines{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z"});
  CHECK(fires("0 0 1,15 * MON", "UTC", from, 4) ==
        Lines{"2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z", "2026-02-15T00:00:00Z", "2026-02-16T00:00:00Z"});
  // One field restricted: that one alone.
  CHECK(fires("0 0 13 * *", "UTC", from, 2) == Lines{"2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z"});
  CHECK(fires("0 0 * * FRI", "UTC", from, 2) == Lines{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z"});
  // A field that starts with * counts as unrestricted even with a step: AND.
  // Odd days that are Fridays:
  CHECK(fires("0 0 */2 * FRI", "UTC", from, 3) ==
        Lines{"2026-02-13T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-13T00:00:00Z"});
  // The 13th when it is a Sunday, Tuesday, Thursday or Saturday:
  CHECK(fires("0 0 13 * */2", "UTC", from, 2) == Lines{"2026-06-13T00:00:00Z", "2026-08-13T00:00:00Z"});
}

TEST_CASE("cron: leap days, the 31st, years ahead, and the end of what a Timestamp holds") {
  CHECK(fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2) == Lines{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"});
  // 2100 is no leap year.
  CHECK(fires("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1) == Lines{"2104-02-29T00:00:00Z"});
  CHECK(fires("0 0 31 * *", "UTC", "2026-03-31T00:00:00Z", 4) ==
        Lines{"2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"});
  CHECK(fires("0 0 30 * *", "UTC", "2026-01-30T00:00:00Z", 2) == Lines{"2026-03-30T00:00:00Z", "2026-04-30T00:00:00Z"});
  // AND with a weekday: Feb 29 on a Sunday, 28 years apart, 40 across 2100;
  // Feb 1 on a Monday, up to 11 years apart.
  CHECK(fires("0 0 29 2 */7", "UTC", "2026-01-01T00:00:00Z", 4) ==
        Lines{"2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z", "2128-02-29T00:00:00Z"});
  CHECK(fires("0 0 */31 2 1", "UTC", "2027-01-01T00:00:00Z", 2) ==
        Lines{"2027-02-01T00:00:00Z", "2038-02-01T00:00:00Z"});
  // A Timestamp ends at 2262-04-11T23:47:16.854775807Z.
  CHECK(fires("0 0 29 2 *", "UTC", "2256-03-01T00:00:00Z", 2) == Lines{"2260-02-29T00:00:00Z", "none"});
  CHECK(fires("0 23 11 4 *", "UTC", "2262-01-01T00:00:00Z", 2) == Lines{"2262-04-11T23:00:00Z", "none"});
  CHECK(fires("16 47 23 11 4 *", "UTC", "2262-01-01T00:00:00Z", 1) == Lines{"2262-04-11T23:47:16Z"});
  CHECK(fires("17 47 23 11 4 *", "UTC", "2262-01-01T00:00:00Z", 1) == Lines{"none"});
  CHECK(fires("* * * * * *", "Pacific/Chatham", "2262-04-11T23:47:15Z", 2) == Lines{"2262-04-11T23:47:16Z", "none"});
  CHECK(!CronSchedule("* * * * * *").next_after(Timestamp::max()));
  CHECK(iso(*CronSchedule("0 0 1 1 *").next_after(Timestamp::min())) == "1678-01-01T00:00:00Z");
}

TEST_CASE(
    "cron: DST in Europe/Berlin: the spring gap fires once at its end, the repeated hour at its first for fixed "
    "hours and at both for a wildcard hour") {
  const std::string z = "Europe/Berlin";  // 2026-03-29 01:00Z: 02:00 CET -> 03:00 CEST; 2026-10-25 01:00Z back
  CHECK(fires("30 2 * * *", z, "2026-03-28T12:00:00Z", 2) == Lines{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"});
  CHECK(CronSchedule("30 2 * * *", z).format_local(at("2026-03-29T01:00:00Z")) == "2026-03-29 03:00:00 CEST (+02:00)");
  // Every match inside the gap, and 03:00 right after it, fire once.
  CHECK(fires("*/15 2 * * *", z, "2026-03-28T12:00:00Z", 3) ==
        Lines{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:15:00Z"});
  CHECK(fires("0 2,3 * * *", z, "2026-03-28T12:00:00Z", 3) ==
        Lines{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T01:00:00Z"});
  CHECK(fires("*/20 * 2 * * *", z, "2026-03-28T12:00:00Z", 2) == Lines{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"});
  CHECK(fires("0 * * * *", z, "2026-03-28T23:30:00Z", 3) ==
        Lines{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"});
  // Just before and at the end of the gap.
  CHECK(fires("30 2 * * *", z, "2026-03-29T00:59:59.5Z", 1) == Lines{"2026-03-29T01:00:00Z"});
  CHECK(fires("30 2 * * *", z, "2026-03-29T01:00:00Z", 1) == Lines{"2026-03-30T00:30:00Z"});

  // Fall back: 02:00-02:59 happens in CEST (00:00Z-00:59Z), then in CET.
  CHECK(fires("30 2 * * *", z, "2026-10-24T12:00:00Z", 2) == Lines{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"});
  CHECK(fires("*/15 2 * * *", z, "2026-10-24T12:00:00Z", 5) == Lines{"2026-10-25T00:00:00Z", "2026-10-25T00:15:00Z",
                                                                     "2026-10-25T00:30:00Z", "2026-10-25T00:45:00Z",
                                                                     "2026-10-26T01:00:00Z"});
  // An hourly schedule (hour field a wildcard) fires in both occurrences
  // of the repeated hour, as Vixie cron does: 02:00 CEST, 02:00 CET, 03:00 CET.
  CHECK(fires("0 * * * *", z, "2026-10-24T23:30:00Z", 3) ==
        Lines{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"});
  // Every 5 minutes: no 65-minute gap, every 5 minutes through both.
  CHECK(fires("*/5 * * * *", z, "2026-10-25T00:50:00Z", 4) ==
        Lines{"2026-10-25T00:55:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:05:00Z", "2026-10-25T01:10:00Z"});
  CHECK(fires("*/30 */2 * * *", z, "2026-10-24T23:59:00Z", 4) ==
        Lines{"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"});
  // From inside the second occurrence, a wildcard hour's next match is there.
  CHECK(fires("*/15 * * * *", z, "2026-10-25T01:10:00Z", 2) == Lines{"2026-10-25T01:15:00Z", "2026-10-25T01:30:00Z"});
  CHECK(CronSchedule("0 * * * *", z).format_local(at("2026-10-25T01:00:00Z")) == "2026-10-25 02:00:00 CET (+01:00)");
  // From inside the second occurrence: its matches are past.
  CHECK(fires("*/15 2 * * *", z, "2026-10-25T01:10:00Z", 1) == Lines{"2026-10-26T01:00:00Z"});
  CHECK(fires("0 3 * * *", z, "2026-10-25T01:10:00Z", 1) == Lines{"2026-10-25T02:00:00Z"});
  CHECK(fires("* * * * * *", z, "2026-10-25T00:59:58Z", 2) == Lines{"2026-10-25T00:59:59Z", "2026-10-25T01:00:00Z"});
  CHECK(fires("* * 2 * * *", z, "2026-10-25T00:59:58Z", 2) == Lines{"2026-10-25T00:59:59Z", "2026-10-26T01:00:00Z"});
  CHECK(CronSchedule("0 3 * * *", z).format_local(at("2026-10-25T02:00:00Z")) == "2026-10-25 03:00:00 CET (+01:00)");
}

TEST_CASE("cron: clock_change_note names a fixed-hour fire time that a clock change skips or repeats") {
  const std::string z = "Europe/Berlin";
  const auto year = [](const char* from) { return std::pair(at(from), at(from) + std::chrono::hours(24 * 366)); };
  const auto [from, to] = year("2026-01-01T00:00:00Z");
  CHECK(CronSchedule("30 2 * * *", z).clock_change_note(from, to) ==
        std::optional<std::string>("2026-03-29 02:30:00 does not exist in Europe/Berlin (the clock goes forward): it "
                                   "fires once at 2026-03-29 03:00:00 CEST (+02:00)"));
  const auto [summer, next_summer] = year("2026-06-01T00:00:00Z");
  CHECK(CronSchedule("15 2 * * *", z).clock_change_note(summer, next_summer) ==
        std::optional<std::string>("2026-10-25 02:15:00 happens twice in Europe/Berlin (the clock goes back): it fires "
                                   "at the first, 2026-10-25 02:15:00 CEST (+02:00)"));
  // Hours the changes do not touch, UTC, and schedules through the day: none.
  CHECK(!CronSchedule("30 4 * * *", z).clock_change_note(from, to));
  CHECK(!CronSchedule("30 2 * * *", "UTC").clock_change_note(from, to));
  CHECK(!CronSchedule("*/5 * * * *", z).clock_change_note(from, to));
  CHECK(!CronSchedule("0 */2 * * *", z).clock_change_note(from, to));
  // Only days the changes fall on: 02:30 on the 1st of a month is never moved in 2026.
  CHECK(!CronSchedule("30 2 1 * *", z).clock_change_note(from, to));
  CHECK(CronSchedule("30 1 * * *", "America/New_York")
            .clock_change_note(summer, next_summer)
            .value_or("")
            .find("happens twice in America/New_York") == 0 + 20);
}

TEST_CASE("cron: DST in America/New_York") {
  const std::string z =
      "America/New_York";  // 2026-03-08 07:00Z: 02:00 EST -> 03:00 EDT; 2026-11-01 06:00Z: 02:00 EDT -> 01:00 EST
  CHECK(fires("30 2 * * *", z, "2026-03-07T12:00:00Z", 2) == Lines{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"});
  CHECK(fires("30 1 * * *", z, "2026-10-31T12:00:00Z", 2) == Lines{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"});
  CHECK(fires("@daily", z, "2026-03-07T12:00:00Z", 2) == Lines{"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"});
  // 01:00-01:59 twice (EDT, then EST): a wildcard hour fires in both.
  CHECK(fires("0,30 * * * *", z, "2026-11-01T05:15:00Z", 4) ==
        Lines{"2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"});
  CHECK(fires("0,30 1 * * *", z, "2026-11-01T05:15:00Z", 2) == Lines{"2026-11-01T05:30:00Z", "2026-11-02T06:00:00Z"});
}

TEST_CASE("cron: DST in Australia/Lord_Howe, a 30-minute shift") {
  const std::string z = "Australia/Lord_Howe";
  // 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 2026-10-03T15:30Z.
  CHECK(fires("15 2 * * *", z, "2026-10-02T00:00:00Z", 3) ==
        Lines{"2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"});
  CHECK(fires("*/10 2 * * *", z, "2026-10-03T15:00:00Z", 4) ==
        Lines{"2026-10-03T15:30:00Z", "2026-10-03T15:40:00Z", "2026-10-03T15:50:00Z", "2026-10-04T15:00:00Z"});
  CHECK(CronSchedule("15 2 * * *", z).format_local(at("2026-10-03T15:30:00Z")) == "2026-10-04 02:30:00 +11 (+11:00)");
  // 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at 2026-04-04T15:00Z: 01:30-01:59 twice.
  CHECK(fires("45 1 * * *", z, "2026-04-03T00:00:00Z", 3) ==
        Lines{"2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"});
  CHECK(fires("*/10 1-2 * * *", z, "2026-04-04T14:35:00Z", 4) ==
        Lines{"2026-04-04T14:40:00Z", "2026-04-04T14:50:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:40:00Z"});
}

TEST_CASE("cron: every syntax error is invalid_parameter naming the field and the text") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"61 * * * *", R"(cron expression "61 * * * *": minute field "61": 61 is not between 0 and 59)"},
      {"0 24 * * *", R"(cron expression "0 24 * * *": hour field "24": 24 is not between 0 and 23)"},
      {"0 0 0 * *", R"(cron expression "0 0 0 * *": day-of-month field "0": 0 is not between 1 and 31)"},
      {"0 0 * 13 *", R"(cron expression "0 0 * 13 *": month field "13": 13 is not between 1 and 12)"},
      {"0 0 * * 8", R"(cron expression "0 0 * * 8": day-of-week field "8": 8 is not between 0 and 7)"},
      {"60 0 0 * * *", R"(cron expression "60 0 0 * * *": second field "60": 60 is not between 0 and 59)"},
      {"99999999999999999999999 * * * *",
       R"(cron expression "99999999999999999999999 * * * *": minute field "99999999999999999999999": )"
       R"(99999999999999999999... is not between 0 and 59)"},
      {"10-5 * * * *", R"(cron expression "10-5 * * * *": minute field "10-5": the range runs backwards (10 > 5))"},
      {"0 0 * * FRI-MON",
       R"(cron expression "0 0 * * FRI-MON": day-of-week field "FRI-MON": the range runs backwards (5 > 1))"},
      {"1,10-5 * * * *",
       R"(cron expression "1,10-5 * * * *": minute field "1,10-5": "10-5": the range runs backwards (10 > 5))"},
      {"1,,2 * * * *", R"(cron expression "1,,2 * * * *": minute field "1,,2": an empty list item)"},
      {",1 * * * *", R"(cron expression ",1 * * * *": minute field ",1": an empty list item)"},
      {"1, * * * *", R"(cron expression "1, * * * *": minute field "1,": an empty list item)"},
      {"*/0 * * * *", R"(cron expression "*/0 * * * *": minute field "*/0": the step is 0; it must be at least 1)"},
      {"5/15 * * * *",
       R"(cron expression "5/15 * * * *": minute field "5/15": a step follows * or a range, like */15 or 5-59/15)"},
      {"0 0 * * MON/2",
       R"(cron expression "0 0 * * MON/2": day-of-week field "MON/2": a step follows * or a range, like */2 or 1-7/2)"},
      {"*/x * * * *", R"(cron expression "*/x * * * *": minute field "*/x": the step "x" is not a number)"},
      {"*/ * * * *", R"(cron expression "*/ * * * *": minute field "*/": the step "" is not a number)"},
      {"1-5/2/3 * * * *",
       R"(cron expression "1-5/2/3 * * * *": minute field "1-5/2/3": the step "2/3" is not a number)"},
      {"-5 * * * *", R"(cron expression "-5 * * * *": minute field "-5": a value is missing)"},
      {"1- * * * *", R"(cron expression "1- * * * *": minute field "1-": a value is missing)"},
      {"1-2-3 * * * *", R"(cron expression "1-2-3 * * * *": minute field "1-2-3": "2-3" is not a number)"},
      {"5x * * * *", R"(cron expression "5x * * * *": minute field "5x": "5x" is not a number)"},
      {"** * * * *", R"(cron expression "** * * * *": minute field "**": "**" is not a number)"},
      {"MON * * * *", R"(cron expression "MON * * * *": minute field "MON": "MON" is not a number)"},
      {"0 0 * FOO *", R"(cron expression "0 0 * FOO *": month field "FOO": "FOO" is not a month (1-12 or JAN-DEC))"},
      {"0 0 * JANUARY *",
       R"(cron expression "0 0 * JANUARY *": month field "JANUARY": "JANUARY" is not a month (1-12 or JAN-DEC))"},
      {"0 0 * * MON-FRIx",
       R"(cron expression "0 0 * * MON-FRIx": day-of-week field "MON-FRIx": "FRIx" is not a day of the week (0-7 or SUN-SAT))"},
      {"0 0 * * JAN",
       R"(cron expression "0 0 * * JAN": day-of-week field "JAN": "JAN" is not a day of the week (0-7 or SUN-SAT))"},
      {"0 0 * MON *", R"(cron expression "0 0 * MON *": month field "MON": "MON" is not a month (1-12 or JAN-DEC))"},
      {"0 0 * * 1 x",
       R"(cron expression "0 0 * * 1 x": day-of-week field "x": "x" is not a day of the week (0-7 or SUN-SAT))"},
      {"0 0 *",
       R"(cron expression "0 0 *": 3 fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (second first))"},
      {"1 2 3 4 5 6 7",
       R"(cron expression "1 2 3 4 5 6 7": 7 fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (second first))"},
      {"", R"(cron expression "": empty)"},
      {" \t ", R"(cron expression " \t ": empty)"},
      {"0 0 * * *\n",
       R"(cron expression "0 0 * * *\n": day-of-week field "*\n": "*\n" is not a day of the week (0-7 or SUN-SAT))"},
      {"@reboot",
       R"(cron expression "@reboot": unknown macro; the macros are @yearly @annually @monthly @weekly @daily @midnight @hourly)"},
      {"@daily 5",
       R"(cron expression "@daily 5": unknown macro; the macros are @yearly @annually @monthly @weekly @daily @midnight @hourly)"},
      {"@DAILY",
       R"(cron expression "@DAILY": unknown macro; the macros are @yearly @annually @monthly @weekly @daily @midnight @hourly)"},
      {"0 0 30 2 *", R"(cron expression "0 0 30 2 *": never fires (no month has such a day))"},
      {"0 0 31 4,6,9,11 *", R"(cron expression "0 0 31 4,6,9,11 *": never fires (no month has such a day))"},
      {"0 0 30-31 FEB */2", R"(cron expression "0 0 30-31 FEB */2": never fires (no month has such a day))"},
  };
  for (const auto& [expression, message] : cases) {
    INFO(expression);
    CHECK(refusal(expression) == message);
  }
  // Fields that never fire on their own but do with the other day field.
  CHECK(fires("0 0 30 2 MON", "UTC", "2026-01-01T00:00:00Z", 1) == Lines{"2026-02-02T00:00:00Z"});
  // Text that is not UTF-8 is shown escaped, on one line.
  CHECK(
      refusal("0 0 * * \xff") ==
      R"(cron expression "0 0 * * \xff": day-of-week field "\xff": "\xff" is not a day of the week (0-7 or SUN-SAT))");
}

TEST_CASE("cron: time zones are IANA names from the tz database, UTC by default, never the machine's local zone") {
  const CronSchedule utc("0 12 * * *");
  CHECK(utc.time_zone() == "UTC");
  CHECK(utc.to_string() == "cron 0 12 * * * in UTC");
  CHECK(CronSchedule("0 3 * * *", "Europe/Berlin").to_string() == "cron 0 3 * * * in Europe/Berlin");
  CHECK(fires("0 12 * * *", "UTC", "2026-07-01T00:00:00Z", 1) == Lines{"2026-07-01T12:00:00Z"});
  CHECK(fires("0 12 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z", 1) == Lines{"2026-07-01T06:30:00Z"});
  CHECK(fires("0 12 * * *", "Pacific/Chatham", "2026-07-01T00:00:00Z", 1) == Lines{"2026-07-01T23:15:00Z"});
  CHECK(fires("0 12 * * *", "Etc/UTC", "2026-07-01T00:00:00Z", 1) == Lines{"2026-07-01T12:00:00Z"});
  // The default is UTC whatever TZ says.
  const char* old = std::getenv("TZ");
  const std::string saved = old ? old : "";
  ::setenv("TZ", "Europe/Berlin", 1);
  CHECK(iso(*CronSchedule("0 12 * * *").next_after(at("2026-07-01T00:00:00Z"))) == "2026-07-01T12:00:00Z");
  if (old) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  for (const std::string zone : {"Mars/Olympus", "", "utc", "europe/berlin", "/etc/localtime", "../zoneinfo/UTC",
                                 "Europe/../UTC", "Europe", "file:UTC", "right/UTC", "Europe//Berlin", "UTC\n"}) {
    INFO(zone);
    CHECK(refusal("0 0 * * *", zone) == "cron time zone " + jobrepo::quote_text(zone) + ": not in the tz database");
  }
  CHECK(refusal("0 0 * * *", "Mars/Olympus") == R"(cron time zone "Mars/Olympus": not in the tz database)");
  CHECK(refusal("0 0 * * *", "localtime") ==
        R"(cron time zone "localtime": the machine's local zone is never used; name one, like Europe/Berlin)");
  // The expression is checked first.
  CHECK(refusal("0 0 * *", "Mars/Olympus").find("cron expression") == 0);
}

TEST_CASE("cron: a CronSchedule is an immutable value, cheap to copy and safe to share between threads") {
  const CronSchedule original("*/7 * * * * *", "Europe/Berlin");
  CronSchedule copy = original;
  copy = CronSchedule("@daily");
  CHECK(original.expression() == "*/7 * * * * *");
  CHECK(copy.expression() == "@daily");
  const auto walk = [start = at("2026-10-25T00:00:00Z")](const CronSchedule& schedule) {
    std::vector<Timestamp> out;
    for (auto t = schedule.next_after(start); t && out.size() < 2000; t = schedule.next_after(*t)) out.push_back(*t);
    return out;
  };
  const auto expected = walk(original);
  REQUIRE(expected.size() == 2000);
  std::vector<std::vector<Timestamp>> seen(4);
  std::vector<std::thread> threads;
  for (auto& mine : seen) {
    threads.emplace_back([&, copy_of = original, out = &mine] { *out = walk(copy_of); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& mine : seen) CHECK(mine == expected);
}

TEST_CASE("cron: Misfire spells its two words and parses them back") {
  for (const auto misfire : {jobrepo::Misfire::run_once, jobrepo::Misfire::skip}) {
    CHECK(jobrepo::parse_misfire(jobrepo::to_string(misfire)) == misfire);
  }
  CHECK(!jobrepo::parse_misfire("Skip"));
}

// --- the cross-check against a brute-force walk ---------------------------------

namespace {

using Mask = std::uint64_t;
using Seconds = cctz::time_point<cctz::seconds>;

enum FieldIndex { f_second, f_minute, f_hour, f_day_of_month, f_month, f_day_of_week };
constexpr std::array<std::pair<int, int>, 6> ranges = {{{0, 59}, {0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}};
constexpr std::array<const char*, 12> month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> day_names = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// What a generated expression means, known from how it was generated (not
// from the parser): the values of each field (day of week 0-6, Sunday 0)
// and whether the day fields are joined by OR.
struct Meaning {
  std::array<Mask, 6> masks{};
  bool either_day = false;

  bool matches(int second, int minute, int hour, int day, int month, int weekday) const {
    const auto has = [](Mask mask, int v) { return ((mask >> v) & 1U) != 0; };
    if (!has(masks[f_second], second) || !has(masks[f_minute], minute) || !has(masks[f_hour], hour) ||
        !has(masks[f_month], month)) {
      return false;
    }
    const bool by_month = has(masks[f_day_of_month], day);
    const bool by_week = has(masks[f_day_of_week], weekday);
    return either_day ? by_month || by_week : by_month && by_week;
  }
  bool matches(const cctz::civil_second& c) const {
    const int weekday = (static_cast<int>(cctz::get_weekday(cctz::civil_day(c))) + 1) % 7;
    return matches(c.second(), c.minute(), c.hour(), c.day(), c.month(), weekday);
  }
  // Some date has a matching day: checked over 28 years, in which every
  // date falls on every weekday (2001-2099 has no century without a leap day).
  bool has_a_day() const {
    for (auto d = cctz::civil_day(2028, 1, 1); d.year() < 2056; ++d) {
      if (Meaning{{~Mask{0}, ~Mask{0}, ~Mask{0}, masks[f_day_of_month], masks[f_month], masks[f_day_of_week]},
                  either_day}
              .matches(cctz::civil_second(d))) {
        return true;
      }
    }
    return either_day;
  }
};

struct Generated {
  std::string text;
  Meaning meaning;
};

// Random expressions from the syntax: each field a list of 1-3 items among
// *, */S, A, A-B, A-B/S, with names in any case for months and days; hours
// and minutes lean to where clocks change (01:00-03:59), days to 28-31.
class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}

  int uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng_); }
  bool chance(int percent) { return uniform(1, 100) <= percent; }

  Generated expression(bool with_seconds) {
    Generated g;
    g.meaning.masks[f_second] = 1;
    std::vector<std::string> words;
    for (int f = with_seconds ? f_second : f_minute; f <= f_day_of_week; ++f) {
      auto [text, mask] = field(f);
      words.push_back(text);
      g.meaning.masks[static_cast<std::size_t>(f)] = mask;
    }
    g.meaning.either_day = words[words.size() - 3].front() != '*' && words.back().front() != '*';
    for (const auto& w : words) g.text += (g.text.empty() ? "" : chance(10) ? "  " : " ") + w;
    return g;
  }

 private:
  int value(int f) {
    const auto [low, high] = ranges[static_cast<std::size_t>(f)];
    if (f == f_hour && chance(60)) return uniform(0, 3);
    if (f == f_minute && chance(30)) return uniform(0, 3) * 15;
    if (f == f_day_of_month && chance(20)) return uniform(28, 31);
    return uniform(low, high);
  }

  std::string cased(std::string name) {
    const int how = uniform(0, 2);
    for (std::size_t i = 0; i < name.size(); ++i) {
      if (how == 1 || (how == 2 && i > 0)) name[i] = static_cast<char>(name[i] - 'A' + 'a');
    }
    return name;
  }

  // SUN is 0, or 7 at the end of a range.
  std::string render(int f, int v, bool range_end) {
    if (f == f_month && chance(30)) return cased(month_names[static_cast<std::size_t>(v - 1)]);
    if (f == f_day_of_week && chance(40)) {
      if (v == 7 && range_end) return cased("SUN");
      if (v < 7 && !(v == 0 && range_end)) return cased(day_names[static_cast<std::size_t>(v)]);
    }
    return std::to_string(v);
  }

  std::pair<std::string, Mask> item(int f, bool first) {
    const auto [low, high] = ranges[static_cast<std::size_t>(f)];
    int a = low, b = high, step = 1;
    std::string text;
    switch (uniform(first ? 0 : 2, 6)) {
      case 0: text = "*"; break;
      case 1:
        step = chance(70) ? uniform(1, 6) : uniform(1, high - low + 2);
        text = "*/" + std::to_string(step);
        break;
      case 2:
      case 3: a = b = value(f), text = render(f, a, false); break;
      default:
        a = value(f), b = value(f);
        if (a > b) std::swap(a, b);
        text = render(f, a, false) + "-" + render(f, b, true);
        if (chance(50)) step = uniform(1, 12), text += "/" + std::to_string(step);
    }
    return values(f, a, step, text, b);
  }

  // `text` and its values: a, a + step, ... up to b (the field's end).
  static std::pair<std::string, Mask> values(int f, int a, int step, std::string text, int b = -1) {
    if (b < 0) b = ranges[static_cast<std::size_t>(f)].second;
    Mask mask = 0;
    for (int v = a; v <= b; v += step) mask |= Mask{1} << (f == f_day_of_week && v == 7 ? 0 : v);
    return {std::move(text), mask};
  }

  std::pair<std::string, Mask> field(int f) {
    // Days that match often enough to meet the few days the clocks change.
    if (f >= f_day_of_month && chance(40)) return values(f, ranges[static_cast<std::size_t>(f)].first, 1, "*");
    std::string text;
    Mask mask = 0;
    const int items = chance(70) ? 1 : uniform(2, 3);
    for (int i = 0; i < items; ++i) {
      auto [t, m] = item(f, i == 0);
      text += (i ? "," : "") + t;
      mask |= m;
    }
    return {text, mask};
  }

  std::mt19937_64 rng_;
};

// The local time of every `step` seconds of [start, end) in a zone, and what
// the daylight-saving rules say of it, found from the zone's instant ->
// local time mapping only: a local time is a first occurrence when it is
// later than every local time before it; when the local time jumps forward
// by more than `step`, the local times on the grid in between are a gap
// that belongs to that instant.
struct Walk {
  struct Instant {
    std::uint8_t second, minute, hour, day, month, weekday;
    bool first;
    std::int32_t gap;  // index in gaps, or -1
  };
  std::int64_t start = 0;
  std::int64_t end = 0;
  int step = 60;
  std::vector<Instant> instants;
  std::vector<std::vector<cctz::civil_second>> gaps;
  std::vector<std::int64_t> transitions;  // instants where the local time jumps
};

Walk walk(const cctz::time_zone& zone, std::int64_t start, std::int64_t end, int step) {
  Walk w;
  w.start = start, w.end = end, w.step = step;
  w.instants.reserve(static_cast<std::size_t>((end - start) / step));
  const std::int64_t warmup = step == 60 ? 2 * 86400 : 3 * 3600;  // to know what was seen before
  cctz::civil_second previous = zone.lookup(Seconds(cctz::seconds(start - warmup - step))).cs;
  cctz::civil_second latest = previous;
  for (std::int64_t t = start - warmup; t < end; t += step) {
    const auto local = zone.lookup(Seconds(cctz::seconds(t))).cs;
    std::int32_t gap = -1;
    if (t >= start && local - previous != step) w.transitions.push_back(t);
    if (t >= start && local - previous > step) {
      gap = static_cast<std::int32_t>(w.gaps.size());
      w.gaps.emplace_back();
      for (auto c = previous + step; c < local; c += step) w.gaps.back().push_back(c);
    }
    const bool first = local > latest;
    latest = std::max(latest, local);
    previous = local;
    if (t < start) continue;
    const int weekday = (static_cast<int>(cctz::get_weekday(cctz::civil_day(local))) + 1) % 7;
    w.instants.push_back({static_cast<std::uint8_t>(local.second()), static_cast<std::uint8_t>(local.minute()),
                          static_cast<std::uint8_t>(local.hour()), static_cast<std::uint8_t>(local.day()),
                          static_cast<std::uint8_t>(local.month()), static_cast<std::uint8_t>(weekday), first, gap});
  }
  return w;
}

// What the brute force saw, over all expressions: so that the cross-check
// is known to have exercised both rules.
struct Tally {
  std::size_t fires = 0;
  std::size_t fired_for_a_gap = 0;    // a fire only because a local time inside a gap matched
  std::size_t repeats_not_fired = 0;  // a matching local time at its second occurrence, fixed hours
  std::size_t repeats_fired = 0;      // the same, hour field a wildcard or a step
};

// Whether an expression's hour field is a wildcard or a step ("*", "*/2",
// "1-23/2"): then a repeated civil time fires at both occurrences.
bool repeats_hours(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  const std::string& hour = words.at(words.size() - 4);
  return hour.front() == '*' || hour.find('/') != std::string::npos;
}

// The brute-force fire times (Unix seconds) of `meaning` over the walk;
// `repeats`: its hour field is a wildcard or a step.
std::vector<std::int64_t> brute_fires(const Walk& w, const Meaning& meaning, Tally& tally, bool repeats = false) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < w.instants.size(); ++i) {
    const auto& in = w.instants[i];
    const bool match = meaning.matches(in.second, in.minute, in.hour, in.day, in.month, in.weekday);
    bool fire = match && (in.first || repeats);
    if (match && !in.first) ++(repeats ? tally.repeats_fired : tally.repeats_not_fired);
    if (!fire && in.gap >= 0) {
      const auto& gap = w.gaps[static_cast<std::size_t>(in.gap)];
      fire = std::any_of(gap.begin(), gap.end(), [&](const cctz::civil_second& c) { return meaning.matches(c); });
      if (fire) ++tally.fired_for_a_gap;
    }
    if (fire) out.push_back(w.start + static_cast<std::int64_t>(i) * w.step);
  }
  tally.fires += out.size();
  return out;
}

Timestamp from_unix(std::int64_t seconds) { return Timestamp(std::chrono::seconds(seconds)); }

std::string unix_iso(std::int64_t seconds) { return iso(from_unix(seconds)); }

// next_after over (after, end), at most `cap` fire times, in Unix seconds;
// each must be whole seconds.
std::vector<std::int64_t> iterate(const CronSchedule& schedule, Timestamp after, std::int64_t end, std::size_t cap) {
  std::vector<std::int64_t> out;
  for (auto t = schedule.next_after(after); t && out.size() < cap; t = schedule.next_after(*t)) {
    const auto since = t->time_since_epoch();
    REQUIRE(since % std::chrono::seconds(1) == std::chrono::seconds(0));
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    if (seconds >= end) break;
    out.push_back(seconds);
  }
  return out;
}

// The brute-force fire times in (after, end), at most `cap`.
std::vector<std::int64_t> slice(const std::vector<std::int64_t>& all, std::int64_t after, std::int64_t end,
                                std::size_t cap) {
  std::vector<std::int64_t> out;
  for (auto it = std::upper_bound(all.begin(), all.end(), after); it != all.end() && *it < end && out.size() < cap;
       ++it) {
    out.push_back(*it);
  }
  return out;
}

// Empty when equal, else where the two lists first differ.
std::string difference(const std::vector<std::int64_t>& brute, const std::vector<std::int64_t>& actual) {
  for (std::size_t i = 0; i < std::max(brute.size(), actual.size()); ++i) {
    const auto b = i < brute.size() ? unix_iso(brute[i]) : "(end)";
    const auto a = i < actual.size() ? unix_iso(actual[i]) : "(end)";
    if (a != b) return "fire #" + std::to_string(i) + ": brute force " + b + ", next_after " + a;
  }
  return {};
}

constexpr std::array<const char*, 6> zones = {
    "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"};

cctz::time_zone zone_named(const std::string& name) {
  cctz::time_zone zone;
  REQUIRE(cctz::load_time_zone(name, &zone));
  return zone;
}

// A random expression of the generator that fires; one that does not must
// be refused as never firing.
std::pair<Generated, CronSchedule> firing_expression(Generator& generator, bool with_seconds, const std::string& zone) {
  for (;;) {
    auto g = generator.expression(with_seconds);
    INFO(g.text);
    if (g.meaning.has_a_day()) return {g, CronSchedule(g.text, zone)};
    CHECK(refusal(g.text, zone).find("never fires") != std::string::npos);
  }
}

constexpr std::uint64_t seed = 20260329;

}  // namespace

TEST_CASE("cron: next_after agrees with a brute-force walk of every minute of 2026, 500 random expressions",
          "[brute]") {
  const std::int64_t year_start = 1767225600;  // 2026-01-01T00:00:00Z
  const std::int64_t year_end = 1798761600;    // 2027-01-01T00:00:00Z
  std::map<std::string, Walk> walks;
  for (const std::string zone : zones) walks[zone] = walk(zone_named(zone), year_start, year_end, 60);
  // Each zone's changes in 2026, as the walk saw them.
  for (const std::string zone : {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"}) {
    INFO(zone);
    CHECK(walks[zone].transitions.size() == 2);
    CHECK(walks[zone].gaps.size() == 1);
  }
  CHECK(walks["UTC"].transitions.empty());
  CHECK(walks["Asia/Kolkata"].transitions.empty());

  Generator generator(seed);
  Tally tally;
  for (int n = 0; n < 500; ++n) {
    const std::string zone = zones[static_cast<std::size_t>(generator.uniform(0, static_cast<int>(zones.size()) - 1))];
    const auto [g, schedule] = firing_expression(generator, false, zone);
    INFO("expression " << n << ": \"" << g.text << "\" in " << zone << " (seed " << seed << ")");
    const Walk& w = walks[zone];
    const auto brute = brute_fires(w, g.meaning, tally, repeats_hours(g.text));
    // The year from its start, the first 2000 fire times.
    CHECK(difference(slice(brute, w.start - 1, w.end, 2000),
                     iterate(schedule, from_unix(w.start) - std::chrono::nanoseconds(1), w.end, 2000)) == "");
    // A day either side of each change of the clock, every fire time.
    for (const auto transition : w.transitions) {
      const auto from = transition - 26 * 3600, to = transition + 26 * 3600;
      CHECK(difference(slice(brute, from, to, 10000), iterate(schedule, from_unix(from), to, 10000)) == "");
    }
    // Random starting points, with fractions of a second.
    for (int i = 0; i < 20; ++i) {
      const std::int64_t second = w.start + generator.uniform(0, static_cast<int>(w.end - w.start - 1));
      const auto after = from_unix(second) + std::chrono::nanoseconds(generator.uniform(0, 999999999));
      const auto expected = std::upper_bound(brute.begin(), brute.end(), second);
      const auto next = schedule.next_after(after);
      INFO("after " << iso(after));
      REQUIRE(next);
      if (expected != brute.end()) {
        CHECK(iso(*next) == unix_iso(*expected));
      } else {
        CHECK(*next >= from_unix(w.end));
      }
    }
  }
  // Both rules were exercised, many times.
  CHECK(tally.fired_for_a_gap >= 20);
  CHECK(tally.repeats_not_fired >= 20);
  CHECK(tally.repeats_fired >= 20);
}

TEST_CASE(
    "cron: next_after agrees with a brute-force walk of every second around each change of the clock, 200 "
    "random 6-field expressions",
    "[brute]") {
  const std::int64_t year_start = 1767225600;  // 2026-01-01T00:00:00Z
  const std::int64_t year_end = 1798761600;    // 2027-01-01T00:00:00Z
  Generator generator(seed + 6);
  // Per zone: 2 hours either side of each change in 2026, and a random 4 hours.
  std::map<std::string, std::vector<Walk>> walks;
  for (const std::string zone : zones) {
    const auto tz = zone_named(zone);
    const auto changes = walk(tz, year_start, year_end, 60).transitions;
    for (const auto t : changes) walks[zone].push_back(walk(tz, t - 7200, t + 7200, 1));
    const std::int64_t random_start = year_start + 60 * generator.uniform(0, 525000);
    walks[zone].push_back(walk(tz, random_start, random_start + 4 * 3600, 1));
  }
  Tally tally;
  for (int n = 0; n < 200; ++n) {
    const std::string zone = zones[static_cast<std::size_t>(generator.uniform(0, static_cast<int>(zones.size()) - 1))];
    const auto [g, schedule] = firing_expression(generator, true, zone);
    INFO("expression " << n << ": \"" << g.text << "\" in " << zone << " (seed " << seed + 6 << ")");
    for (const auto& w : walks[zone]) {
      const auto brute = brute_fires(w, g.meaning, tally, repeats_hours(g.text));
      CHECK(difference(brute, iterate(schedule, from_unix(w.start) - std::chrono::nanoseconds(1), w.end, 20000)) == "");
    }
  }
  CHECK(tally.fired_for_a_gap >= 10);
  CHECK(tally.repeats_not_fired >= 10);
  CHECK(tally.repeats_fired >= 10);
}
