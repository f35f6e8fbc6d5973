// The config reader of jobctl serve (tools/jobctl/config.cpp) on any text:
// it returns a config or throws ConfigError, nothing else; what it returns
// obeys core's rules (text, ranges, the fence).
#include "config.hpp"

#include <jobrepo/repository.hpp>
#include <jobrepo/text.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  jobctl::ServeConfig config;
  try {
    config = jobctl::parse_config(text, "fuzz.json");
  } catch (const jobctl::ConfigError&) {
    return 0;
  }
  if (!jobrepo::scheduler_options_problem(jobctl::scheduler_options(config)).empty()) std::abort();
  if (config.jobs.empty()) std::abort();
  for (const auto& job : config.jobs) {
    if (jobrepo::text_problem(jobrepo::TextKind::job_name, job.name)) std::abort();
    if (jobrepo::text_problem(jobrepo::TextKind::description, job.description)) std::abort();
    if (job.command.empty() || job.every.count() <= 0 || job.every > jobrepo::max_offset) std::abort();
    if (job.timeout.count() < 0 || job.timeout > jobrepo::max_offset) std::abort();
    if (job.keep_runs && *job.keep_runs < 1) std::abort();
    if (job.keep_for && (job.keep_for->count() <= 0 || *job.keep_for > jobrepo::max_offset)) std::abort();
  }
  if (config.prune_interval.count() <= 0 || config.prune_interval > jobrepo::max_offset) std::abort();
  return 0;
}
