// jobctl serve's log (docs/operations.md, "Logs"): lines on stderr, and the
// commands' output lines on stdout, as text or as one JSON object per line,
// each with an RFC 3339 UTC timestamp, its level, the server, and the job
// and run it is about. One line is one event: the text format shows every
// text in a line (server, message, job, run, output) by the one visible rule
// (jobrepo::printable: line breaks, control bytes and invalid UTF-8 escaped);
// JSON escapes them as JSON does (invalid UTF-8 as U+FFFD). Thread-safe:
// lines never interleave.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace jobctl {

enum class LogLevel { debug, info, warning, error };
enum class LogFormat { text, json };

std::string_view to_string(LogLevel level) noexcept;
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;
std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;

// Set once, before serve logs (defaults: text, info, no server).
void configure_log(LogFormat format, LogLevel level, std::string server);

// What a line is about; empty fields are left out.
struct LogContext {
  std::string job{};
  std::string run{};
  std::string event{};  // the Scheduler event's kind, for machines
  // Of a run that ended (JSON logs: numbers): how long it ran, its attempt,
  // its command's exit status.
  std::optional<long long> duration_ms{};
  std::optional<long long> attempt{};
  std::optional<int> exit_code{};
};

// A line on stderr, unless `level` is below the configured one:
//   text: 2026-12-02T01:38:54.236000Z info  jobctl serve [web-1] MESSAGE
//   json: {"time": ..., "level": ..., "server": ..., "job": ..., "run": ..., "event": ...,
//          "duration_ms": ..., "attempt": ..., "exit_code": ..., "msg": ...}
void log(LogLevel level, std::string_view message, const LogContext& context = {});

// A line a command wrote to its stdout (on stdout) or its stderr (on
// stderr), whatever the level:
//   text: 2026-12-02T01:38:54.236000Z run=RUN [JOB] LINE
//   json: {"time": ..., "level": "info", "server": ..., "job": ..., "run": ..., "stream": "stdout", "msg": LINE}
//         (stderr lines: "level": "warning", "stream": "stderr")
void log_output(std::string_view job, std::string_view run, std::string_view line, bool from_stderr = false);

}  // namespace jobctl
