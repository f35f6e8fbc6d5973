// CronSchedule (core/src/cron.cpp) on any expression, in a zone picked from
// a few: it parses or throws invalid_parameter with a one-line message,
// nothing else; a parsed schedule's next_after() returns whole seconds,
// strictly increasing over a few calls, and finds a fire time again from
// just before it.
//
// Input: byte 0 picks the zone (low 3 bits) and where to start (bits 4-5:
// around 2026, near the end or near the start of what a Timestamp holds),
// bytes 1-4 an offset in seconds from there, the rest is the expression.
#include <jobrepo/cron.hpp>
#include <jobrepo/error.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr std::array<const char*, 8> zones = {
      "UTC",          "Europe/Berlin",   "America/New_York", "Australia/Lord_Howe",
      "Asia/Kolkata", "Pacific/Chatham", "Pacific/Apia",     "Mars/Olympus"};
  if (size < 5) return 0;
  std::uint32_t offset = 0;
  std::memcpy(&offset, data + 1, sizeof offset);
  const std::string_view expression(reinterpret_cast<const char*>(data + 5), size - 5);
  using std::chrono::seconds;
  jobrepo::Timestamp after;
  switch ((data[0] >> 4U) & 3U) {
    case 0:
    case 1:  // 2026-01-01 +- 68 years
      after = jobrepo::Timestamp(seconds(1767225600) + seconds(static_cast<std::int32_t>(offset)));
      break;
    case 2: after = jobrepo::Timestamp::max() - seconds(offset); break;
    default: after = jobrepo::Timestamp::min() + seconds(offset); break;
  }
  std::string zone = zones[data[0] & 7U];
  try {
    const jobrepo::CronSchedule schedule(expression, zone);
    for (int i = 0; i < 4; ++i) {
      const auto next = schedule.next_after(after);
      if (!next) break;
      if (*next <= after) std::abort();
      if (next->time_since_epoch() % seconds(1) != jobrepo::Timestamp::duration::zero()) std::abort();
      if (schedule.next_after(*next - std::chrono::nanoseconds(1)) != next) std::abort();
      after = *next;
    }
  } catch (const jobrepo::Error& e) {
    if (e.code() != jobrepo::ErrorCode::invalid_parameter) std::abort();
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) std::abort();
  }
  return 0;
}
