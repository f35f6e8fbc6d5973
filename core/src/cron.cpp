// CronSchedule: an expression parsed into one bit mask per field, and
// next_after() on cctz: the next matching civil time found field by field,
// then mapped to an instant by the zone's rules.
#include <jobrepo/cron.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <span>
#include <utility>
#include <vector>

namespace jobrepo {

namespace {

using Mask = std::uint64_t;  // bit v set: the value v matches
using Seconds = cctz::time_point<cctz::seconds>;

constexpr std::array<std::string_view, 12> month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> day_names = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// One field of an expression: its name in messages, its range and names.
struct Field {
  std::string_view name;
  int low;
  int high;
  std::span<const std::string_view> names;  // the names of low, low + 1, ...; empty: numbers only
  std::string_view named;                   // what a name names, "month (1-12 or JAN-DEC)"
};

enum FieldIndex : std::size_t { second, minute, hour, day_of_month, month, day_of_week, field_count };

constexpr std::array<Field, field_count> fields = {{
    {"second", 0, 59, {}, {}},
    {"minute", 0, 59, {}, {}},
    {"hour", 0, 23, {}, {}},
    {"day-of-month", 1, 31, {}, {}},
    {"month", 1, 12, month_names, "month (1-12 or JAN-DEC)"},
    {"day-of-week", 0, 7, day_names, "day of the week (0-7 or SUN-SAT)"},
}};

constexpr std::array<std::pair<std::string_view, std::string_view>, 7> macros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

// A civil match is never more than one Gregorian cycle away: the calendar,
// weekdays included, repeats every 400 years. (Not 8: "0 0 29 2 */7", Feb 29
// on a Sunday, the day fields joined by AND, waits up to 40 years.)
constexpr cctz::year_t search_years = 400;

// Why a field is refused: the phrase that follows the field in the message,
// after the item of the list it is about when that is not the whole field.
struct FieldProblem {
  std::string_view item;
  std::string what;
};

bool is_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Digits as a number, saturating far above every field's range.
int number_of(std::string_view digits) {
  int value = 0;
  for (const char c : digits) value = std::min(value * 10 + (c - '0'), 1000000);
  return value;
}

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

// One value of a field: a number or (month, day of week) a name. SUN ends a
// range as 7, so that MON-SUN and SAT-SUN read as written.
int value_of(std::string_view token, std::string_view item, const Field& field, bool range_end) {
  if (token.empty()) throw FieldProblem{item, "a value is missing"};
  if (is_digits(token)) {
    const int value = number_of(token);
    if (value < field.low || value > field.high) {
      const std::string shown = token.size() > 20 ? std::string(token.substr(0, 20)) + "..." : std::string(token);
      throw FieldProblem{{},
                         shown + " is not between " + std::to_string(field.low) + " and " + std::to_string(field.high)};
    }
    return value;
  }
  for (std::size_t i = 0; i < field.names.size(); ++i) {
    const auto name = field.names[i];
    if (token.size() == name.size() &&
        std::equal(token.begin(), token.end(), name.begin(), [](char a, char b) { return upper(a) == b; })) {
      const int value = field.low + static_cast<int>(i);
      return range_end && &field == &fields[day_of_week] && value == 0 ? 7 : value;
    }
  }
  if (field.names.empty()) throw FieldProblem{{}, quote_text(token) + " is not a number"};
  throw FieldProblem{{}, quote_text(token) + " is not a " + std::string(field.named)};
}

// One item of a list: `*`, `*/S`, `A`, `A-B` or `A-B/S`.
Mask parse_item(std::string_view item, const Field& field) {
  if (item.empty()) throw FieldProblem{{}, "an empty list item"};
  const auto slash = item.find('/');
  const std::string_view range = item.substr(0, slash);
  int step = 1;
  if (slash != std::string_view::npos) {
    const std::string_view step_text = item.substr(slash + 1);
    if (!is_digits(step_text)) {
      throw FieldProblem{item, "the step " + quote_text(step_text) + " is not a number"};
    }
    step = number_of(step_text);
    if (step == 0) throw FieldProblem{item, "the step is 0; it must be at least 1"};
  }
  int low = field.low;
  int high = field.high;
  if (range != "*") {
    const auto dash = range.find('-');
    if (dash == std::string_view::npos) {
      low = high = value_of(range, item, field, false);
      if (slash != std::string_view::npos) {
        const auto step_text = std::to_string(step);
        throw FieldProblem{item, "a step follows * or a range, like */" + step_text + " or " + std::to_string(low) +
                                     "-" + std::to_string(field.high) + "/" + step_text};
      }
    } else {
      low = value_of(range.substr(0, dash), item, field, false);
      high = value_of(range.substr(dash + 1), item, field, true);
      if (low > high) {
        throw FieldProblem{item,
                           "the range runs backwards (" + std::to_string(low) + " > " + std::to_string(high) + ")"};
      }
    }
  }
  Mask mask = 0;
  for (int v = low; v <= high; v += step) mask |= Mask{1} << v;
  return mask;
}

Mask parse_field(std::string_view text, const Field& field) {
  Mask mask = 0;
  for (std::size_t start = 0;;) {
    const auto comma = text.find(',', start);
    mask |= parse_item(text.substr(start, comma - start), field);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (&field == &fields[day_of_week] && (mask & (Mask{1} << 7)) != 0) mask = (mask | 1) & ~(Mask{1} << 7);
  return mask;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// The smallest value >= from in mask, or -1.
int next_in(Mask mask, int from) {
  if (from >= 64) return -1;
  const Mask rest = mask & (~Mask{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

bool has(Mask mask, int value) { return ((mask >> value) & 1U) != 0; }

int days_in_month(cctz::year_t year, int month_number) {
  return static_cast<int>(cctz::civil_day(cctz::civil_month(year, month_number) + 1) -
                          cctz::civil_day(year, month_number, 1));
}

int weekday_of(const cctz::civil_day& day) {  // 0 Sunday ... 6 Saturday
  return (static_cast<int>(cctz::get_weekday(day)) + 1) % 7;
}

// Whether cctz would look `name` up in the tz database: it reads any path
// ("/etc/localtime", "../x", "file:x"), which is not a zone name. ("localtime",
// the machine's zone, is refused before.)
bool is_zone_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t start = 0;;) {
    const auto slash = name.find('/', start);
    const auto part = name.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (const char c : part) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
            c == '+' || c == '.')) {
        return false;
      }
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

struct CronSchedule::Parsed {
  std::string expression;
  std::string time_zone;
  cctz::time_zone zone;
  std::array<Mask, field_count> masks{};  // day of week: bit 0 Sunday ... 6 Saturday
  bool either_day = false;                // both day fields restricted: a day matches when either does
  // The hour field is a wildcard or a step ("*", "*/2", "1-23/2"): the job
  // runs through the day, so in a repeated hour (the clock set back) its
  // matches fire at both occurrences, as Vixie cron's wildcard jobs do; a
  // job of fixed hours fires at the first occurrence only.
  bool repeats_hours = false;

  bool day_matches(const cctz::civil_day& day) const {
    const bool by_month = has(masks[day_of_month], day.day());
    const bool by_week = has(masks[day_of_week], weekday_of(day));
    return either_day ? by_month || by_week : by_month && by_week;
  }

  // Whether some date matches (hours, minutes and seconds always exist in
  // civil time): with either_day, any week has a day that matches; else a
  // (month, day) must exist, and each date falls on every weekday within
  // the 400-year cycle.
  bool ever_fires() const {
    if (either_day) return true;
    for (int m = 1; m <= 12; ++m) {
      if (has(masks[month], m) && next_in(masks[day_of_month], 1) <= days_in_month(2000, m)) return true;
    }
    return false;
  }

  // The first civil second at or after `from` whose fields match, found
  // field by field from the largest; none up to the end of `last_year`.
  std::optional<cctz::civil_second> next_match(cctz::civil_second c, cctz::year_t last_year) const {
    using cctz::civil_day;
    using cctz::civil_hour;
    using cctz::civil_minute;
    using cctz::civil_month;
    using cctz::civil_second;
    while (c.year() <= last_year) {
      if (const int m = next_in(masks[month], c.month()); m != c.month()) {
        c = m < 0 ? civil_second(c.year() + 1, 1, 1) : civil_second(c.year(), m, 1);
        continue;
      }
      if (!day_matches(civil_day(c))) {
        // Joined by AND, only the days of day-of-month can match: go to the
        // next one (or the next month) instead of day by day.
        const int d = either_day ? c.day() + 1 : next_in(masks[day_of_month], c.day() + 1);
        c = d < 0 || d > days_in_month(c.year(), c.month()) ? civil_second(civil_month(c) + 1)
                                                            : civil_second(c.year(), c.month(), d);
        continue;
      }
      if (const int h = next_in(masks[hour], c.hour()); h != c.hour()) {
        c = h < 0 ? civil_second(civil_day(c) + 1) : civil_second(c.year(), c.month(), c.day(), h);
        continue;
      }
      if (const int m = next_in(masks[minute], c.minute()); m != c.minute()) {
        c = m < 0 ? civil_second(civil_hour(c) + 1) : civil_second(c.year(), c.month(), c.day(), c.hour(), m);
        continue;
      }
      if (const int s = next_in(masks[second], c.second()); s != c.second()) {
        c = s < 0 ? civil_second(civil_minute(c) + 1) : civil_second(civil_minute(c)) + s;
        continue;
      }
      return c;
    }
    return std::nullopt;
  }
};

CronSchedule::CronSchedule(std::string_view expression, std::string_view time_zone) {
  auto parsed = std::make_shared<Parsed>();
  parsed->expression = std::string(expression);
  parsed->time_zone = std::string(time_zone);
  const auto refuse = [&](const std::string& why) {
    throw Error(ErrorCode::invalid_parameter, "cron expression " + quote_text(expression) + ": " + why);
  };

  auto text = expression;
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  if (text.empty()) refuse("empty");
  if (text.front() == '@') {
    const auto macro = std::find_if(macros.begin(), macros.end(), [&](const auto& m) { return m.first == text; });
    if (macro == macros.end()) {
      refuse("unknown macro; the macros are @yearly @annually @monthly @weekly @daily @midnight @hourly");
    }
    text = macro->second;
  }
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t end = i;
    while (end < text.size() && !is_blank(text[end])) ++end;
    words.push_back(text.substr(i, end - i));
    i = end;
    while (i < text.size() && is_blank(text[i])) ++i;
  }
  if (words.size() != 5 && words.size() != 6) {
    refuse(std::to_string(words.size()) +
           " fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (second first)");
  }
  // Five fields: every second field is 0.
  const std::size_t first = words.size() == 6 ? second : minute;
  parsed->masks[second] = 1;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const Field& field = fields[first + i];
    try {
      parsed->masks[first + i] = parse_field(words[i], field);
    } catch (const FieldProblem& problem) {
      const bool part = !problem.item.empty() && problem.item != words[i];
      refuse(std::string(field.name) + " field " + quote_text(words[i]) + ": " +
             (part ? quote_text(problem.item) + ": " : "") + problem.what);
    }
  }
  // As in Vixie cron, a day field that starts with * ("*", "*/2") does not
  // restrict: the other one decides alone.
  const auto day_words = words.end() - 3;  // day-of-month, month, day-of-week
  parsed->either_day = day_words[0].front() != '*' && day_words[2].front() != '*';
  const std::string_view hour_word = words[words.size() - 4];
  parsed->repeats_hours = hour_word.front() == '*' || hour_word.find('/') != std::string_view::npos;
  if (!parsed->ever_fires()) refuse("never fires (no month has such a day)");

  const auto zone_refused = [&](const std::string& why) {
    throw Error(ErrorCode::invalid_parameter, "cron time zone " + quote_text(time_zone) + ": " + why);
  };
  if (time_zone == "localtime") zone_refused("the machine's local zone is never used; name one, like Europe/Berlin");
  if (!is_zone_name(time_zone) || !cctz::load_time_zone(std::string(time_zone), &parsed->zone)) {
    zone_refused("not in the tz database");
  }
  parsed_ = std::move(parsed);
}

namespace {

// The first fire time at or after `threshold` that is a unique civil time,
// the end of a gap for a civil time in it, or the first occurrence of a
// repeated one.
template <class Parsed>
std::optional<Seconds> first_occurrence(const Parsed& p, Seconds threshold) {
  // Civil times map to instants monotonically (UNIQUE and REPEATED: pre, the
  // first occurrence; SKIPPED: trans, the end of the gap), so every civil
  // time up to that of threshold - 1 s maps before threshold. The civil
  // second after it may still map before threshold (when threshold lies in
  // the second occurrence of a repeated hour): such matches are skipped.
  cctz::civil_second from = p.zone.lookup(threshold - cctz::seconds(1)).cs + 1;
  const cctz::year_t last_year = std::min<cctz::year_t>(from.year() + search_years, 2263);
  for (;;) {
    const auto match = p.next_match(from, last_year);
    if (!match) return std::nullopt;
    const auto found = p.zone.lookup(*match);
    const Seconds fire = found.kind == cctz::time_zone::civil_lookup::SKIPPED ? found.trans : found.pre;
    if (fire >= threshold) return fire;
    from = *match + 1;
    // A repeated civil time whose first occurrence is past: so are those of
    // the rest of the overlap, which ends at the civil time of the
    // transition in the old offset.
    if (found.kind == cctz::time_zone::civil_lookup::REPEATED) {
      from = std::max(from, p.zone.lookup(found.trans - cctz::seconds(1)).cs + 1);
    }
  }
}

// The instant of a change of the zone's offset: `to`, the civil time it
// begins at in the new offset (for a clock set back, `to`'s second
// occurrence).
Seconds transition_instant(const cctz::time_zone& zone, const cctz::time_zone::civil_transition& transition) {
  const auto to = zone.lookup(transition.to);
  return to.kind == cctz::time_zone::civil_lookup::REPEATED ? to.post : to.pre;
}

// The first instant at or after `threshold` that is the second occurrence of
// a matching civil time in a repeated hour, and earlier than `before` (when
// set); none otherwise. The second occurrences of a backward transition at
// instant T by L seconds are [T, T + L), civil times [to, to + L).
template <class Parsed>
std::optional<Seconds> second_occurrence(const Parsed& p, Seconds threshold, std::optional<Seconds> before) {
  cctz::time_zone::civil_transition transition;
  // The last transition at or before threshold (its second occurrences may
  // hold threshold), then the next ones while they come before `before`.
  bool found = p.zone.prev_transition(threshold + cctz::seconds(1), &transition);
  if (!found) found = p.zone.next_transition(threshold, &transition);
  for (int i = 0; found && i < 4 * search_years + 8; ++i) {
    const Seconds start = transition_instant(p.zone, transition);
    if (transition.to < transition.from) {
      if (before && start >= *before) return std::nullopt;
      const auto length = transition.from - transition.to;  // seconds repeated
      const auto skip = threshold > start ? (threshold - start).count() : 0;
      if (skip < length) {
        const auto match = p.next_match(transition.to + skip, transition.from.year());
        if (match && *match < transition.from) {
          const Seconds fire = start + cctz::seconds(*match - transition.to);
          if (before && fire >= *before) return std::nullopt;
          return fire;
        }
      }
    }
    found = p.zone.next_transition(start, &transition);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Timestamp> CronSchedule::next_after(Timestamp after) const {
  const Parsed& p = *parsed_;
  const Seconds threshold = std::chrono::floor<cctz::seconds>(after) + cctz::seconds(1);  // the first candidate
  const Seconds latest = std::chrono::floor<cctz::seconds>(Timestamp::max());
  if (threshold > latest) return std::nullopt;
  std::optional<Seconds> first = first_occurrence(p, threshold);
  if (p.repeats_hours) {
    if (const auto second = second_occurrence(p, threshold, first)) first = second;
  }
  if (!first || *first > latest) return std::nullopt;
  return std::chrono::time_point_cast<Timestamp::duration>(*first);
}

std::optional<std::string> CronSchedule::clock_change_note(Timestamp from, Timestamp to) const {
  const Parsed& p = *parsed_;
  if (p.repeats_hours || to <= from) return std::nullopt;
  const Seconds end = std::chrono::floor<cctz::seconds>(to);
  cctz::time_zone::civil_transition transition;
  Seconds at = std::chrono::floor<cctz::seconds>(from);
  for (int i = 0; i < 64 && p.zone.next_transition(at, &transition); ++i) {
    const Seconds instant = transition_instant(p.zone, transition);
    if (instant >= end) break;
    at = instant;
    const bool gap = transition.from < transition.to;
    const cctz::civil_second first = gap ? transition.from : transition.to;
    const cctz::civil_second last = gap ? transition.to : transition.from;  // exclusive
    const auto match = p.next_match(first, last.year());
    if (!match || *match >= last) continue;
    const auto civil_text = [](const cctz::civil_second& c) {
      char text[32];
      std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d", static_cast<int>(c.year()), c.month(), c.day(),
                    c.hour(), c.minute(), c.second());
      return std::string(text);
    };
    const auto found = p.zone.lookup(*match);
    const Seconds fire = gap ? found.trans : found.pre;
    const std::string fires = cctz::format("%Y-%m-%d %H:%M:%S %Z (%Ez)", fire, p.zone);
    return civil_text(*match) + (gap ? " does not exist in " : " happens twice in ") + p.time_zone +
           (gap ? " (the clock goes forward): it fires once at " : " (the clock goes back): it fires at the first, ") +
           fires;
  }
  return std::nullopt;
}

const std::string& CronSchedule::expression() const noexcept { return parsed_->expression; }

const std::string& CronSchedule::time_zone() const noexcept { return parsed_->time_zone; }

std::string CronSchedule::to_string() const { return "cron " + parsed_->expression + " in " + parsed_->time_zone; }

std::string CronSchedule::format_local(Timestamp t) const {
  return cctz::format("%Y-%m-%d %H:%M:%S %Z (%Ez)", std::chrono::floor<cctz::seconds>(t), parsed_->zone);
}

std::string_view to_string(Misfire misfire) noexcept { return misfire == Misfire::skip ? "skip" : "run_once"; }

std::optional<Misfire> parse_misfire(std::string_view text) noexcept {
  if (text == "run_once") return Misfire::run_once;
  if (text == "skip") return Misfire::skip;
  return std::nullopt;
}

}  // namespace jobrepo
