// The config file of jobctl serve (docs/cli.md): what it holds, and the
// reader that checks every field before anything touches a database.
#pragma once

#include <jobrepo/cron.hpp>
#include <jobrepo/scheduler.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace jobctl {

struct CommandJob;
// The whole definition of a job as text (canonical JSON): what the
// fingerprint of a server's definition is made of (RegisterJobOptions::
// definition) and what makes two definitions equal.
std::string definition(const CommandJob& job);

struct CommandJob {
  std::string name;
  std::string description;
  std::vector<std::string> command;  // argv; no shell unless the user writes one
  // Exactly one of: `every` (from the end of a successful run), `cron` (a
  // calendar schedule in `time_zone`, with `misfire`) or `on_demand` (only
  // run-now makes it due).
  std::chrono::microseconds every{0};
  std::string cron;
  bool on_demand = false;
  std::string time_zone;  // of cron: the job's own, else the config's, else UTC
  jobrepo::Misfire misfire = jobrepo::Misfire::run_once;
  std::chrono::microseconds timeout{0};  // 0: none (the job's own "timeout", else the config's)
  // A random wait of up to this before each run's command starts ("jitter",
  // the job's own else the config's; 0: none), so that jobs due at the
  // same moment on many servers do not all start at once.
  std::chrono::microseconds jitter{0};
  std::string working_directory;  // empty: jobctl's own
  std::map<std::string, std::string> environment;
  // After failed runs: the job's own "backoff", else the config's, else the
  // library's default.
  jobrepo::BackoffOptions backoff{};
  // Run when a run of it fails, times out or is interrupted (argv; the job's
  // own "on_failure", else the config's; empty: none).
  std::vector<std::string> on_failure;
  // When on_failure runs ("on_failure_when", the job's own else the
  // config's): after every failed attempt, only once the back-off's
  // max_attempts failed in a row, and/or on the first success after
  // failures. Default: every attempt.
  struct OnFailureWhen {
    bool every_attempt = true;
    bool exhausted = false;
    bool recovery = false;
    friend bool operator==(const OnFailureWhen&, const OnFailureWhen&) = default;
  } on_failure_when{};
  // Whether a run an operator cancelled counts as a failure for on_failure
  // ("on_failure_cancels"; default false).
  bool on_failure_cancels = false;
  // The history serve keeps of the job (the job's own "keep_runs" and
  // "keep_for", else the config's; empty: no such rule): its final runs
  // beyond the keep_runs newest, and those that ended more than keep_for
  // ago, are deleted (Repository::prune_job_runs) every prune_interval.
  std::optional<std::int64_t> keep_runs;
  std::optional<std::chrono::microseconds> keep_for;

  friend bool operator==(const CommandJob& a, const CommandJob& b) { return definition(a) == definition(b); }
};

// How serve ends every process of a run (docs/cli.md, "One run, one set of
// processes"): each run in a cgroup v2 of its own where serve can create
// them, else through the process tree (automatic); cgroups or refuse to start
// (on); the process tree (off).
enum class CgroupsSetting { automatic, on, off };
std::string_view to_string(CgroupsSetting setting) noexcept;

struct ServeConfig {
  std::string plugin_id = "pi_system";
  std::string time_zone = "UTC";  // of the cron jobs that name none
  int worker_threads = 4;         // 1 to 1024
  std::chrono::microseconds claim_interval = std::chrono::seconds(1);
  std::chrono::microseconds monitor_interval = std::chrono::seconds(1);
  std::chrono::microseconds interrupt_threshold = std::chrono::seconds(30);
  std::chrono::microseconds grace = std::chrono::seconds(5);  // SIGTERM, then SIGKILL after this
  jobrepo::BackoffOptions backoff{};                          // of the jobs that give none
  std::vector<std::string> on_failure;                        // of the jobs that give none
  CommandJob::OnFailureWhen on_failure_when{};                // of the jobs that give none
  bool on_failure_cancels = false;                            // of the jobs that give none
  std::chrono::microseconds timeout{0};                       // of the jobs that give none; 0: none
  std::chrono::microseconds jitter{0};                        // of the jobs that give none; 0: none
  std::optional<std::int64_t> keep_runs;                      // of the jobs that give none
  std::optional<std::chrono::microseconds> keep_for;          // of the jobs that give none
  // How often serve prunes the history of the jobs with keep_runs or keep_for
  // (also once at start): one store call per such job each time.
  std::chrono::microseconds prune_interval = std::chrono::minutes(10);
  std::string http;                     // ADDR:PORT of the HTTP face; empty: none
  std::vector<std::string> http_hosts;  // Host names it answers besides its address
  CgroupsSetting cgroups = CgroupsSetting::automatic;
  std::vector<CommandJob> jobs;
};

// An ADDR:PORT to listen on; ":PORT" means 127.0.0.1 only.
struct HttpAddress {
  std::string host;
  int port = 0;
};
// The address, or empty with `problem` set ("9100" is not ADDR:PORT...).
std::optional<HttpAddress> parse_http_address(const std::string& text, std::string* problem);
// The names of --http-host NAME[,NAME...] (or the config's "http_hosts"): each a
// DNS name or IP address without a port; empty with `problem` set otherwise.
std::optional<std::vector<std::string>> parse_http_hosts(const std::vector<std::string>& names, std::string* problem);

// A configuration error: what() names the file and the field.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads and checks a config file, the Scheduler's rules included (the
// fence: see docs/cli.md); throws ConfigError. Touches no database.
ServeConfig load_config(const std::string& path);

// The same for the text of a config; `path` names it in messages (as given:
// load_config gives shown(path), shown.hpp).
ServeConfig parse_config(std::string_view text, const std::string& path);

// The Scheduler's options for a config (without on_event).
jobrepo::SchedulerOptions scheduler_options(const ServeConfig& config);

// The history rules of a job, for people: "keep_runs 100, keep_for 30d", or
// empty when it has none.
std::string retention_text(const CommandJob& job);

// The registration of a job of a config: timeout, calendar schedule, and the
// schedule's words for Job::schedule ("every 1h", "cron ... in ZONE").
jobrepo::RegisterJobOptions register_options(const CommandJob& job);

}  // namespace jobctl
