// jobctl serve: the commands of a config (config.hpp), run as
// cluster-exclusive recurring jobs by a jobrepo::Scheduler.
#pragma once

#include "config.hpp"
#include "log.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/scheduler.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobctl {

// jobctl serve cannot run (exit 1, reported as a library error is: its
// message and code, on stdout too with --json): e.g. its HTTP port is in use
// (unavailable), its server id is in use here (not_unique).
struct ServeError : std::runtime_error {
  explicit ServeError(const std::string& message, jobrepo::ErrorCode error_code = jobrepo::ErrorCode::unavailable)
      : std::runtime_error(message), code(error_code) {}
  jobrepo::ErrorCode code;
};

// Loads the config with `load` (ConfigError before anything else), then runs
// its jobs until SIGINT or SIGTERM and stops gracefully; SIGHUP loads it
// again and applies its jobs. Throws ServeError, jobrepo::Error. Returns the
// process exit status.
// What the command line of serve says besides the config.
struct ServeFlags {
  std::string http{};  // --http ADDR:PORT (over the config's "http"); empty: the config's
  // --http-host NAME[,NAME...] (over the config's "http_hosts"); none: the config's
  std::optional<std::vector<std::string>> http_hosts{};
  LogFormat log_format = LogFormat::text;
  LogLevel log_level = LogLevel::info;
};

int serve(const std::string& url, const std::string& server_id, const std::function<ServeConfig()>& load,
          const ServeFlags& flags = {});

// hostname-pid
std::string default_server_id();

}  // namespace jobctl
