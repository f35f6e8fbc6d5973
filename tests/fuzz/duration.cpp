// jobctl's duration parser (tools/jobctl/duration.cpp) on any text: it
// never crashes, and what it accepts lies within max_offset. Its ISO time
// parser on the same text: a time it accepts, iso_utc shows, and that text
// reads back as the same time to the microsecond.
#include "duration.hpp"

#include <jobrepo/repository.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto parsed = jobctl::parse_duration(text)) {
    if (*parsed > jobrepo::max_offset || *parsed < -jobrepo::max_offset) std::abort();
    // What it accepts, it can show.
    if (jobctl::format_duration(*parsed).empty()) std::abort();
  }
  if (const auto time = jobctl::parse_iso_time(text)) {
    const auto again = jobctl::parse_iso_time(jobctl::iso_utc(*time));
    if (!again || *again != std::chrono::time_point_cast<std::chrono::microseconds>(*time)) std::abort();
  }
  return 0;
}
