#include "log.hpp"

#include "duration.hpp"

#include <jobrepo/text.hpp>
#include <jobrepo/types.hpp>

#include <nlohmann/json.hpp>

#include <iostream>
#include <mutex>

namespace jobctl {

namespace {

struct Settings {
  LogFormat format = LogFormat::text;
  LogLevel level = LogLevel::info;
  std::string server;
};

std::mutex log_mutex;
Settings settings;

std::string json_line(const nlohmann::json& object) {
  return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "info";
}

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
  for (const auto level : {LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error}) {
    if (to_string(level) == text) return level;
  }
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept {
  if (text == "text") return LogFormat::text;
  if (text == "json") return LogFormat::json;
  return std::nullopt;
}

void configure_log(LogFormat format, LogLevel level, std::string server) {
  const std::lock_guard lock(log_mutex);
  settings = Settings{format, level, std::move(server)};
}

void log(LogLevel level, std::string_view message, const LogContext& context) {
  const std::string time = iso_utc(jobrepo::Clock::now());
  const std::lock_guard lock(log_mutex);
  if (level < settings.level) return;
  if (settings.format == LogFormat::json) {
    nlohmann::json line = {{"time", time}, {"level", to_string(level)}, {"server", settings.server}};
    if (!context.job.empty()) line["job"] = context.job;
    if (!context.run.empty()) line["run"] = context.run;
    if (!context.event.empty()) line["event"] = context.event;
    if (context.duration_ms) line["duration_ms"] = *context.duration_ms;
    if (context.attempt) line["attempt"] = *context.attempt;
    if (context.exit_code) line["exit_code"] = *context.exit_code;
    line["msg"] = message;
    std::cerr << json_line(line) << std::endl;
    return;
  }
  std::string level_text(to_string(level));
  level_text.resize(8, ' ');
  // One line per event: the server, the message and the names in it by the
  // one visible rule (a name with a line break cannot forge a line).
  std::cerr << time << " " << level_text << "jobctl serve [" << jobrepo::printable(settings.server) << "] "
            << jobrepo::printable(message) << std::endl;
}

void log_output(std::string_view job, std::string_view run, std::string_view line, bool from_stderr) {
  const std::string time = iso_utc(jobrepo::Clock::now());
  const std::lock_guard lock(log_mutex);
  std::ostream& out = from_stderr ? std::cerr : std::cout;
  if (settings.format == LogFormat::json) {
    out << json_line({{"time", time},
                      {"level", from_stderr ? "warning" : "info"},
                      {"server", settings.server},
                      {"job", job},
                      {"run", run},
                      {"stream", from_stderr ? "stderr" : "stdout"},
                      {"msg", line}})
        << std::endl;
    return;
  }
  out << time << " run=" << jobrepo::printable(run) << " [" << jobrepo::printable(job) << "] "
      << jobrepo::printable(line) << std::endl;
}

}  // namespace jobctl
