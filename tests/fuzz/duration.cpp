// jobctl's duration parser (tools/jobctl/duration.cpp) on any text: it
// never crashes, and what it accepts lies within max_offset.
#include "duration.hpp"

#include <jobrepo/repository.hpp>

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
  return 0;
}
