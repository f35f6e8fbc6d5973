#include "serve.hpp"

#include "duration.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "output.hpp"
#include "run_cgroup.hpp"
#include "service_notify.hpp"
#include "shown.hpp"
#include "status.hpp"
#include "supervisor.hpp"

#include <jobrepo/jobrepo.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char** environ;

namespace jobctl {

namespace {

using nlohmann::json;
using std::chrono::microseconds;
using Steady = std::chrono::steady_clock;

// --- running a command -----------------------------------------------------

// What serve keeps of each run of its own until the run's end is stored,
// for its on_failure: the command's exit status and its output's last
// lines (stdout and stderr, at most 64 KiB). Thread-safe.
class RunNotes {
 public:
  static constexpr std::size_t max_tail_bytes = 64 * 1024;
  struct Note {
    std::deque<std::string> tail;
    std::size_t bytes = 0;
    std::optional<int> exit_code;  // when the command exited
  };
  void line(const std::string& run, std::string_view text) {
    const std::lock_guard lock(mutex_);
    auto& note = notes_[run];
    note.tail.emplace_back(text.substr(0, max_tail_bytes));
    note.bytes += note.tail.back().size() + 1;
    while (note.bytes > max_tail_bytes && note.tail.size() > 1) {
      note.bytes -= note.tail.front().size() + 1;
      note.tail.pop_front();
    }
  }
  void exited(const std::string& run, int code) {
    const std::lock_guard lock(mutex_);
    notes_[run].exit_code = code;
  }
  // The note of `run`, which is forgotten.
  Note take(const std::string& run) {
    const std::lock_guard lock(mutex_);
    const auto found = notes_.find(run);
    if (found == notes_.end()) return {};
    Note note = std::move(found->second);
    notes_.erase(found);
    return note;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, Note> notes_;
};

// What every run of this serve process shares.
struct Runtime {
  std::string server_id;
  std::chrono::microseconds grace{0};
  int lock_fd = -1;  // the server lock, held by every supervisor too
  RunNotes* notes = nullptr;
};

// The environment of a command of `job` ("NAME=value"): jobctl's own without
// serve's database credentials (a job that needs the database gets its own
// in `environment`), then the job's `environment`, JOBREPO_JOB_NAME and
// `extra`. JOBREPO_RUN_ARG comes from `extra` alone: set only for a run with
// arguments, so that a value in serve's own environment or in the config
// never passes for them.
std::vector<std::string> command_environment(const CommandJob& job, const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const char* secret : {"JOBREPO_DATABASE_URL", "JOBREPO_DATABASE_URL_FILE", "PGPASSWORD"}) env.erase(secret);
  for (const char* systemd : service_variables) env.erase(systemd);
  for (const auto& [key, value] : job.environment) env[key] = value;
  env.erase("JOBREPO_RUN_ARG");
  env["JOBREPO_JOB_NAME"] = job.name;
  for (const auto& [key, value] : extra) env[key] = value;
  std::vector<std::string> out;
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

// Runs the command of `job` for one run, under its own supervisor (see
// supervisor.hpp and docs/cli.md). Returns `every` on exit status 0.
microseconds run_command(const CommandJob& job, const Runtime& runtime, jobrepo::JobContext& context) {
  SupervisedCommand command{context.run_id(),      job.name,      job.command,    {},
                            job.working_directory, runtime.grace, runtime.lock_fd};
  std::map<std::string, std::string> run_variables{{"JOBREPO_RUN_ID", context.run_id()}};
  if (const auto& payload = context.payload()) run_variables["JOBREPO_RUN_ARG"] = *payload;
  command.environment = command_environment(job, run_variables);

  // A random wait first, when the job has a jitter (the run is claimed and
  // heartbeats go on meanwhile; a cancel ends the wait).
  if (job.jitter.count() > 0) {
    thread_local std::mt19937_64 random(std::random_device{}());
    const microseconds wait(std::uniform_int_distribution<long long>(0, job.jitter.count() - 1)(random));
    if (!context.sleep_for(wait)) context.throw_if_cancelled();
  }
  // The output's tail is kept only for a job whose on_failure may want it:
  // every other job's lines go to the log alone.
  RunNotes* const tail = job.on_failure.empty() ? nullptr : runtime.notes;
  const auto on_line = [&](std::string_view line) {
    if (tail != nullptr) tail->line(context.run_id(), line);
    if (const auto progress = parse_progress(line)) {
      try {
        context.report_progress(progress->completed, progress->total);
      } catch (const jobrepo::Error& e) {
        log(LogLevel::warning, job.name + ": ignored " + e.what());
      }
      return;
    }
    log_output(job.name, context.run_id(), line);
  };
  const auto end = run_supervised(command, context, on_line, [&](std::string_view line) {
    if (tail != nullptr) tail->line(context.run_id(), line);
    log_output(job.name, context.run_id(), line, /*from_stderr=*/true);
  });
  if (runtime.notes != nullptr && end.how == CommandEnd::How::exited) runtime.notes->exited(context.run_id(), end.code);
  if (end.leftovers > 0) {
    log(LogLevel::warning,
        job.name + " run " + context.run_id() + ": stopped " + counted(end.leftovers, "process", "processes") +
            " the command left behind",
        LogContext{job.name, context.run_id()});
  }
  // A command that exited 0 on its own, before anyone asked it to stop,
  // did its work, whatever came after (a cancel while its leftovers were
  // being ended): the run is completed. Any other end of a cancelled run is
  // the cancellation's (the Scheduler decides what it means: interrupted
  // when stopping, failed for a timeout...).
  if (end.how == CommandEnd::How::exited && end.code == 0 && !end.asked) return job.every;
  context.throw_if_cancelled();
  switch (end.how) {
    case CommandEnd::How::not_started:
      if (end.code == ENOENT) throw std::runtime_error("exit 127 (command not found: " + job.command.front() + ")");
      throw std::runtime_error("cannot run " + job.command.front() + ": " + std::strerror(end.code));
    case CommandEnd::How::killed:
      if (end.fenced) {
        throw std::runtime_error("ended by its supervisor at the fence deadline (no heartbeat reached it), signal " +
                                 std::to_string(end.code));
      }
      throw std::runtime_error("killed by signal " + std::to_string(end.code));
    case CommandEnd::How::exited:
      if (end.code == 0) return job.every;
      throw std::runtime_error("exit " + std::to_string(end.code));
    case CommandEnd::How::cancelled:  // not started: the run was cancelled first (thrown above)
      throw std::runtime_error("cancelled before the command started");
  }
  return job.every;
}

// --- on_failure hooks -------------------------------------------------------

// How long an on_failure command may run: the job's timeout, else this.
constexpr microseconds hook_time_limit = std::chrono::minutes(10);

// The context of a hook's supervisor: no heartbeat to keep (no fence), a
// stop when its time is up or serve stops.
class HookContext final : public jobrepo::JobContext {
 public:
  HookContext(std::string run_id, std::string job_name, Steady::time_point deadline)
      : run_id_(std::move(run_id)), job_name_(std::move(job_name)), deadline_(deadline) {}
  const std::string& run_id() const override { return run_id_; }
  const std::string& job_name() const override { return job_name_; }
  Steady::time_point deadline() const override { return deadline_; }
  Steady::time_point fence_deadline() const override { return fence_; }
  std::stop_token stop_token() const override { return stop_.get_token(); }
  jobrepo::CancelReason cancel_reason() const override { return reason_; }
  bool sleep_for(microseconds) const override { return !cancelled(); }
  void report_progress(std::int64_t, std::int64_t) override {}
  void stop(jobrepo::CancelReason reason) {
    if (!stop_.stop_requested()) reason_ = reason;
    stop_.request_stop();
  }

 private:
  std::string run_id_, job_name_;
  Steady::time_point deadline_;
  Steady::time_point fence_ = Steady::now() + std::chrono::hours(24 * 365);
  std::stop_source stop_;
  std::atomic<jobrepo::CancelReason> reason_{jobrepo::CancelReason::none};
};

// Runs the on_failure commands of runs that failed, timed out or were
// interrupted, each once, under a supervisor of its own (so that what it
// starts ends with it), its output logged like a job's.
class Hooks {
 public:
  explicit Hooks(const Runtime& runtime) : runtime_(runtime) {}
  Hooks(const Hooks&) = delete;
  Hooks& operator=(const Hooks&) = delete;
  ~Hooks() { stop_all(); }

  // What a hook is told of the run (docs/cli.md, "on_failure").
  struct Info {
    std::string run_id;
    std::string status;   // failed, interrupted; completed for a recovery
    std::string message;  // the run's message as stored
    std::string when;     // attempt, exhausted or recovery
    std::int64_t attempt = 0;
    microseconds duration{0};
    RunNotes::Note note;  // the exit status and the output's tail
  };

  void start(const CommandJob& job, Info info) {
    const auto limit = job.timeout.count() > 0 ? job.timeout : hook_time_limit;
    auto context = std::make_shared<HookContext>(info.run_id, job.name, Steady::now() + limit);
    SupervisedCommand command{info.run_id,           job.name + " on_failure", job.on_failure,  {},
                              job.working_directory, runtime_.grace,           runtime_.lock_fd};
    // The output's tail, in a file of the hook's own (owner only), removed
    // when the hook has ended.
    const std::string tail_file =
        (std::filesystem::temp_directory_path() / ("jobrepo-on-failure-" + info.run_id + ".out")).string();
    const int fd = ::open(tail_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string text;
      for (const auto& line : info.note.tail) text += line + "\n";
      for (std::size_t at = 0; at < text.size();) {
        const auto n = ::write(fd, text.data() + at, text.size() - at);
        if (n <= 0) break;
        at += static_cast<std::size_t>(n);
      }
      ::close(fd);
    }
    command.environment = command_environment(
        job, {{"JOBREPO_RUN_ID", info.run_id},
              {"JOBREPO_RUN_STATUS", info.status},
              {"JOBREPO_RUN_MESSAGE", info.message},
              {"JOBREPO_ON_FAILURE_WHEN", info.when},
              {"JOBREPO_ATTEMPT", std::to_string(info.attempt)},
              {"JOBREPO_MAX_ATTEMPTS", std::to_string(job.backoff.max_attempts)},
              {"JOBREPO_SERVER_ID", runtime_.server_id},
              {"JOBREPO_EXIT_CODE", info.note.exit_code ? std::to_string(*info.note.exit_code) : std::string()},
              {"JOBREPO_DURATION_MS", std::to_string(info.duration.count() / 1000)},
              {"JOBREPO_OUTPUT_FILE", fd >= 0 ? tail_file : std::string()}});
    const std::lock_guard lock(mutex_);
    if (stopping_) {
      std::remove(tail_file.c_str());
      return;
    }
    running_.push_back(context);
    threads_.emplace_back([command, context, limit, tail_file] {
      const std::string what = "on_failure of " + context->job_name() + " run " + context->run_id();
      const LogContext about{context->job_name(), context->run_id(), "on_failure"};
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      // The time limit.
      std::thread timer([&] {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, limit, [&] { return done; })) context->stop(jobrepo::CancelReason::deadline);
      });
      try {
        const auto end = run_supervised(
            command, *context,
            [&](std::string_view line) { log_output(context->job_name() + " on_failure", context->run_id(), line); },
            [&](std::string_view line) {
              log_output(context->job_name() + " on_failure", context->run_id(), line, /*from_stderr=*/true);
            });
        if (context->cancel_reason() == jobrepo::CancelReason::deadline) {
          log(LogLevel::warning, what + " was stopped after " + format_duration(limit) + " (not retried)", about);
        } else if (end.how == CommandEnd::How::exited && end.code == 0) {
          log(LogLevel::info, what + " ran", about);
        } else if (end.how == CommandEnd::How::cancelled) {
          log(LogLevel::warning, what + " was not started: serve is stopping (not retried)", about);
        } else if (end.how == CommandEnd::How::not_started) {
          log(LogLevel::warning,
              what + " could not start " + command.argv.front() + ": " + std::strerror(end.code) + " (not retried)",
              about);
        } else {
          log(LogLevel::warning,
              what + (end.how == CommandEnd::How::exited ? " failed with exit " : " was killed by signal ") +
                  std::to_string(end.code) + " (not retried)",
              about);
        }
      } catch (const std::exception& e) {
        log(LogLevel::warning, what + ": " + e.what() + " (not retried)", about);
      }
      {
        const std::lock_guard lock(m);
        done = true;
      }
      cv.notify_all();
      timer.join();
      std::remove(tail_file.c_str());
    });
  }

  // Stops the hooks still running (SIGTERM, SIGKILL after grace) and waits for them.
  void stop_all() {
    std::vector<std::thread> threads;
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
      for (const auto& context : running_) context->stop(jobrepo::CancelReason::stopping);
      threads.swap(threads_);
    }
    for (auto& thread : threads) thread.join();
  }

 private:
  const Runtime& runtime_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<HookContext>> running_;
  std::vector<std::thread> threads_;
};

// --- the server lock --------------------------------------------------------

// One jobctl serve per (database URL as written, plugin, server id) on this
// machine, and none while the supervisors of a previous one with that id
// still live: a datagram socket bound to an abstract name (no file to clean
// up), inherited by every supervisor, so the name is taken until the last of
// them exits. Returns the socket. Waits up to `wait` for a previous holder.
// (Another spelling of the URL, or another machine: the store's lease on the
// server id refuses a second live serve in Scheduler::start(), and
// wait_for_old_supervisors() waits for a dead one's supervisors.)
int hold_server_lock(const std::string& url, const std::string& plugin_id, const std::string& server_id,
                     microseconds wait) {
  std::uint64_t hash = 14695981039346656037ULL;  // FNV-1a: the name must fit in 108 bytes
  for (const auto& part : {url, plugin_id, server_id}) {
    for (const char c : part + '\n') hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  char name[64];
  std::snprintf(name, sizeof name, "jobrepo-serve-%016llx", static_cast<unsigned long long>(hash));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path + 1, name, std::strlen(name));  // sun_path[0] = 0: abstract
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::strlen(name));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw ServeError(std::string("cannot create the server lock: ") + std::strerror(errno),
                     jobrepo::ErrorCode::internal);
  }
  const auto started = Steady::now();
  bool said = false;
  while (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    if (errno != EADDRINUSE) {
      ::close(fd);
      throw ServeError(std::string("cannot take the server lock: ") + std::strerror(errno),
                       jobrepo::ErrorCode::internal);
    }
    if (Steady::now() - started >= wait) {
      ::close(fd);
      throw ServeError("server id " + jobrepo::quote_text(server_id) +
                           " is in use on this machine for this database: another jobctl serve with it is running, "
                           "or processes of its runs have not ended after " +
                           format_duration(wait) + " (abstract socket @" + name + ")",
                       jobrepo::ErrorCode::not_unique);
    }
    if (!said) {
      log(LogLevel::warning, "waiting for the processes of runs of a previous jobctl serve with this server id to end");
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (said) {
    log(LogLevel::info,
        "they ended after " + format_duration(std::chrono::duration_cast<microseconds>(Steady::now() - started)));
  }
  return fd;
}

// The name (comm) of a process of this machine, or empty when it is gone.
std::string process_name(const std::string& pid) {
  std::ifstream comm("/proc/" + pid + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// The supervisors (jobrepo-run processes) of this machine that supervise one
// of `runs` and whose serve is gone (their parent is no jobctl: they were
// orphaned). A live serve's supervisors are left to it: the store's lease
// refuses a second live serve with its id.
std::vector<pid_t> orphaned_supervisors_of(const std::set<std::string>& runs) {
  std::vector<pid_t> found;
  if (runs.empty()) return found;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    const std::string pid = entry.path().filename();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (process_name(pid) != supervisor_name) continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string argv0, run_id;
    if (!std::getline(cmdline, argv0, '\0') || !std::getline(cmdline, run_id, '\0') || runs.count(run_id) == 0) {
      continue;
    }
    // /proc/PID/stat: "PID (NAME) STATE PPID ...", NAME jobrepo-run here.
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    std::getline(stat, text);
    const auto close = text.rfind(')');
    if (close == std::string::npos || close + 4 >= text.size()) continue;
    const std::string rest = text.substr(close + 4);
    const std::string parent = rest.substr(0, rest.find(' '));
    if (process_name(parent) == "jobctl") continue;
    found.push_back(static_cast<pid_t>(std::stol(pid)));
  }
  return found;
}

// Before this server id's leftover runs are ended (Scheduler::start()):
// the supervisors a previous serve with this id left on this machine must
// be gone, whatever URL spelling that serve used (the server lock covers the
// same spelling only). Waits up to `wait`.
void wait_for_old_supervisors(jobrepo::Store& store, const std::string& plugin_id, const std::string& server_id,
                              microseconds wait) {
  jobrepo::Repository repo(store, {plugin_id, 0});
  std::set<std::string> runs;
  for (const auto& run : repo.list_runs({.status = jobrepo::Status::running, .limit = -1})) {
    if (run.server_id == server_id) runs.insert(run.private_id);
  }
  const auto started = Steady::now();
  bool said = false;
  for (auto left = orphaned_supervisors_of(runs); !left.empty(); left = orphaned_supervisors_of(runs)) {
    if (Steady::now() - started >= wait) {
      throw ServeError("server id " + jobrepo::quote_text(server_id) + ": the supervisors of " +
                           counted(left.size(), "run", "runs") + " of a previous jobctl serve with it (pid " +
                           std::to_string(left.front()) + (left.size() > 1 ? ", ..." : "") + ") have not ended after " +
                           format_duration(wait),
                       jobrepo::ErrorCode::busy);
    }
    if (!said) {
      log(LogLevel::warning, "waiting for the supervisors of " + counted(left.size(), "run", "runs") +
                                 " of a previous jobctl serve with this server id to end");
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// A handler of `job` for the Scheduler (it keeps its own copy of the job).
std::shared_ptr<jobrepo::JobHandler> command_handler(const CommandJob& job, const Runtime& runtime) {
  auto shared = std::make_shared<const CommandJob>(job);
  return jobrepo::make_job(job.name, job.description, [shared, &runtime](jobrepo::JobContext& context) {
    return run_command(*shared, runtime, context);
  });
}

// SIGHUP: reads the config again and applies its jobs; anything else in it
// takes effect at the next start. A bad config changes nothing.
ServeConfig reload(jobrepo::Scheduler& scheduler, const ServeConfig& current, const std::function<ServeConfig()>& load,
                   const Runtime& runtime) {
  ServeConfig next;
  try {
    next = load();
  } catch (const std::exception& e) {
    log(LogLevel::error, std::string("reload: ") + e.what() + "; keeping the current config");
    return current;
  }
  const auto changed = [&](const char* field, bool differs) {
    if (differs)
      log(LogLevel::warning, std::string("reload: ") + field + " changed; it takes effect when serve restarts");
  };
  changed("plugin_id", next.plugin_id != current.plugin_id);
  changed("worker_threads", next.worker_threads != current.worker_threads);
  changed("claim_interval", next.claim_interval != current.claim_interval);
  changed("monitor_interval", next.monitor_interval != current.monitor_interval);
  changed("interrupt_threshold", next.interrupt_threshold != current.interrupt_threshold);
  changed("grace", next.grace != current.grace);
  changed("cgroups", next.cgroups != current.cgroups);
  changed("prune_interval", next.prune_interval != current.prune_interval);
  std::map<std::string, const CommandJob*> before;
  for (const auto& job : current.jobs) before[job.name] = &job;
  ServeConfig applied = next;
  applied.jobs.clear();
  std::vector<std::string> added, removed, updated;
  for (const auto& job : next.jobs) {
    const auto old = before.find(job.name);
    if (old != before.end() && *old->second == job) {
      applied.jobs.push_back(job);
      before.erase(old);
      continue;
    }
    try {
      auto options = register_options(job);
      options.replace = true;
      scheduler.register_job(command_handler(job, runtime), options);
      applied.jobs.push_back(job);
      (old == before.end() ? added : updated).push_back(job.name);
    } catch (const jobrepo::Error& e) {
      log(LogLevel::error, "reload: job " + job.name + " not registered: " + e.what());
      if (old != before.end()) applied.jobs.push_back(*old->second);
    }
    if (old != before.end()) before.erase(old);
  }
  for (const auto& [name, job] : before) {
    scheduler.unregister_job(name);
    removed.push_back(name);
  }
  const auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("none") : out;
  };
  log(LogLevel::info, "reloaded the config: " + counted(applied.jobs.size(), "job", "jobs") + "; added " + list(added) +
                          "; removed " + list(removed) + "; changed " + list(updated));
  return applied;
}

}  // namespace

std::string default_server_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

namespace {

// A store and the Scheduler started on it (destroyed in the reverse order).
struct Serving {
  std::unique_ptr<jobrepo::Store> store;
  std::unique_ptr<MeteredStore> metered;  // what the scheduler uses: every call counted
  std::unique_ptr<jobrepo::Scheduler> scheduler;
};

// A store outage, logged when it starts and when it ends (with how many
// calls failed meanwhile), never per failed call.
class StoreOutage {
 public:
  void failed(const jobrepo::Error& e) {
    if (e.code() != jobrepo::ErrorCode::unavailable && e.code() != jobrepo::ErrorCode::busy) return;
    const std::lock_guard lock(mutex_);
    ++failures_;
    if (down_) return;
    down_ = true;
    since_ = Steady::now();
    failures_ = 1;
    log(LogLevel::error, std::string("the store fails: ") + e.what() + " (" +
                             std::string(jobrepo::to_string(e.code())) + "); said again when it answers");
  }
  void succeeded() {
    if (!down_.load()) return;
    const std::lock_guard lock(mutex_);
    if (!down_) return;
    down_ = false;
    log(LogLevel::info, "the store answers again after " +
                            format_duration(std::chrono::duration_cast<microseconds>(Steady::now() - since_)) + "; " +
                            std::to_string(failures_) + " store calls failed meanwhile");
  }
  bool down() const { return down_.load(); }

 private:
  std::mutex mutex_;
  std::atomic<bool> down_{false};
  Steady::time_point since_{};
  long long failures_ = 0;
};

// Keeps the history of the jobs with keep_runs or keep_for bounded
// (Repository::prune_job_runs): once at start, then every prune_interval,
// one store call per such job each time, on a thread of its own, off the
// claim and run paths. One call deletes at most max_pruned_runs runs, so a
// longer backlog goes over the next periods (jobctl prune --job clears it at
// once). Every server of a cluster prunes; deletes are idempotent, so one
// pruning what another just pruned finds nothing.
class Pruner {
 public:
  // A job's rules as the config says now (SIGHUP may change them).
  struct Rule {
    std::string job;
    jobrepo::PruneJobRunsOptions options;
    std::string text;  // "keep_runs 100, keep_for 30d"
  };
  Pruner(jobrepo::Store& store, std::string plugin_id, microseconds interval, std::function<std::vector<Rule>()> rules,
         const StoreOutage& outage)
      : store_(store),
        plugin_id_(std::move(plugin_id)),
        interval_(interval),
        rules_(std::move(rules)),
        outage_(outage),
        thread_([this] { loop(); }) {}
  Pruner(const Pruner&) = delete;
  Pruner& operator=(const Pruner&) = delete;
  ~Pruner() { stop(); }

  // Waits for the call under way, if any, and ends the thread.
  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      prune_all();
      lock.lock();
      wake_.wait_for(lock, interval_, [&] { return stopping_; });
    }
  }

  bool stopping() {
    const std::lock_guard lock(mutex_);
    return stopping_;
  }

  // One store call per job with a rule; what fails is logged, never thrown
  // (a store outage is logged once, by StoreOutage).
  void prune_all() noexcept {
    try {
      const auto rules = rules_();
      jobrepo::Repository repo(store_, {plugin_id_, 0});
      for (const auto& rule : rules) {
        if (stopping()) return;
        const LogContext about{rule.job, "", "prune"};
        try {
          const auto deleted = repo.prune_job_runs(rule.job, rule.options);
          if (deleted > 0) {
            log(LogLevel::info,
                "pruned " + counted(deleted, "run", "runs") + " of job " + rule.job + " (" + rule.text + ")", about);
          }
        } catch (const jobrepo::Error& e) {
          const bool transient = e.code() == jobrepo::ErrorCode::unavailable || e.code() == jobrepo::ErrorCode::busy;
          if (transient && outage_.down()) continue;
          log(LogLevel::error,
              "pruning job " + rule.job + " failed: " + e.what() + " (" + std::string(jobrepo::to_string(e.code())) +
                  "); tried again in " + format_duration(interval_),
              about);
        }
      }
    } catch (const std::exception& e) {
      log(LogLevel::error,
          std::string("pruning failed: ") + e.what() + "; tried again in " + format_duration(interval_));
    } catch (...) {
      log(LogLevel::error, "pruning failed: an unknown exception; tried again in " + format_duration(interval_));
    }
  }

  jobrepo::Store& store_;
  const std::string plugin_id_;
  const microseconds interval_;
  const std::function<std::vector<Rule>()> rules_;
  const StoreOutage& outage_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // under mutex_
  std::thread thread_;     // last: started once the rest is ready
};

// The log line of a Scheduler event: its level, and its words as before
// ("failed JOB run ID with exit 3; retry in 1s").
void log_event(const jobrepo::SchedulerEvent& e, std::optional<int> exit_code = std::nullopt) {
  using Kind = jobrepo::SchedulerEvent::Kind;
  LogLevel level = LogLevel::info;
  switch (e.kind) {
    case Kind::claimed:
    case Kind::started: level = LogLevel::debug; break;
    case Kind::failed:
    case Kind::interrupted:
    case Kind::interrupted_peer:
    case Kind::warning: level = LogLevel::warning; break;
    case Kind::error: level = LogLevel::error; break;
    default: break;
  }
  std::string text = std::string(jobrepo::to_string(e.kind));
  if (!e.job_name.empty()) text += " " + e.job_name;
  if (!e.run_id.empty()) text += " run " + e.run_id;
  if (!e.detail.empty()) text += (e.kind == Kind::failed ? " with " : " ") + e.detail;
  LogContext context{e.job_name, e.run_id, std::string(jobrepo::to_string(e.kind))};
  if (e.kind == Kind::completed || e.kind == Kind::failed || e.kind == Kind::interrupted) {
    context.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.duration).count();
    if (e.attempt > 0) context.attempt = e.attempt;
    context.exit_code = exit_code;
  }
  log(level, text, context);
}

// Opens the store, migrates it, registers the jobs of `config` and starts the
// Scheduler. While that fails with unavailable or busy (the database is down,
// unreachable, read-only, locked) it tries again from a new store with a
// back-off up to 5 s, logging what it waits for at once and then every 30 s
// at most; other errors are thrown. Waiting, it takes the signals of
// `handled`: SIGINT or SIGTERM return nullopt, SIGHUP reads the config's
// jobs again.
std::optional<Serving> start_serving(const std::string& url, ServeConfig& config,
                                     const std::function<ServeConfig()>& load, const Runtime& runtime,
                                     const jobrepo::SchedulerOptions& options, const sigset_t& handled,
                                     Metrics& metrics, StoreOutage& outage, StatusBoard& board,
                                     ServiceNotifier& notifier) {
  const auto& server = runtime.server_id;
  const auto began = Steady::now();
  const auto waited = [&] { return format_duration(std::chrono::duration_cast<microseconds>(Steady::now() - began)); };
  std::chrono::milliseconds backoff(250);
  std::optional<Steady::time_point> said;
  for (;;) {
    try {
      Serving serving;
      serving.store = jobrepo::open_store(url);
      serving.metered = std::make_unique<MeteredStore>(
          *serving.store,
          [&] {
            metrics.store_call_succeeded();
            outage.succeeded();
          },
          [&](const jobrepo::Error& e) {
            metrics.store_call_failed(e.code());
            outage.failed(e);
          });
      serving.metered->migrate();
      serving.scheduler = std::make_unique<jobrepo::Scheduler>(server, *serving.metered, options);
      for (const auto& job : config.jobs) {
        serving.scheduler->register_job(command_handler(job, runtime), register_options(job));
      }
      wait_for_old_supervisors(*serving.metered, config.plugin_id, server,
                               std::max<microseconds>(config.interrupt_threshold, std::chrono::seconds(10)));
      serving.scheduler->start();
      if (said) log(LogLevel::info, "the database is ready after " + waited());
      return serving;
    } catch (const jobrepo::Error& e) {
      if (e.code() != jobrepo::ErrorCode::unavailable && e.code() != jobrepo::ErrorCode::busy) throw;
      const std::string error = std::string(e.what()) + " (" + std::string(jobrepo::to_string(e.code())) + ")";
      board.set_waiting("waiting for the database: " + error);
      notifier.status("waiting for the database: " + error);
      if (!said) {
        log(LogLevel::warning, "waiting for the database: " + error);
        said = Steady::now();
      } else if (Steady::now() - *said >= std::chrono::seconds(30)) {
        log(LogLevel::warning, "still waiting for the database after " + waited() + ": " + error);
        said = Steady::now();
      }
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(backoff);
    const timespec timeout{seconds.count(), static_cast<long>((backoff - seconds).count()) * 1000000L};
    const int signal = sigtimedwait(&handled, nullptr, &timeout);
    if (signal == SIGINT || signal == SIGTERM) {
      log(LogLevel::info,
          std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") + " while waiting for the database");
      return std::nullopt;
    }
    if (signal == SIGHUP) {
      notifier.reloading();
      try {
        config.jobs = load().jobs;
        log(LogLevel::info, "reloaded the config's " + counted(config.jobs.size(), "job", "jobs") +
                                " while waiting for the database; other fields take effect when serve restarts");
      } catch (const std::exception& e) {
        log(LogLevel::error, std::string("reload: ") + e.what() + "; keeping the current config");
      }
      notifier.ready("waiting for the database");
    }
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
}

}  // namespace

int serve(const std::string& url, const std::string& server_id, const std::function<ServeConfig()>& load,
          const ServeFlags& flags) {
  configure_log(flags.log_format, flags.log_level, server_id);
  ServeConfig config = load();  // checked before anything touches the database
  // The library's rules for the server id and the plugin (--plugin overrides
  // the config's), checked as early: waiting for a database that is down
  // would otherwise go on forever for an id that can never serve.
  if (const auto problem = jobrepo::text_problem(jobrepo::TextKind::server_id, server_id)) {
    throw jobrepo::Error(problem->code, "server_id " + problem->message);
  }
  if (const auto problem = jobrepo::text_problem(jobrepo::TextKind::plugin_id, config.plugin_id)) {
    throw jobrepo::Error(problem->code, "plugin_id " + problem->message);
  }
  std::optional<HttpAddress> http;
  if (const std::string& text = flags.http.empty() ? config.http : flags.http; !text.empty()) {
    std::string problem;
    http = parse_http_address(text, &problem);
    if (!http) throw ServeError("--http: " + problem, jobrepo::ErrorCode::invalid_parameter);
  }
  // A closed stdout (e.g. piped into head) must not kill the daemon; commands
  // get the default action back (their supervisor resets every signal).
  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT, SIGTERM and SIGHUP are taken by sigwait() below, in this thread
  // only: every thread started from here on inherits the blocked mask.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  become_subreaper();
  // Each run in a cgroup of its own, or the process tree (logged once), and the orphan sweeps.
  const RunCgroups run_cgroups(config.cgroups, config.monitor_interval,
                               std::max<microseconds>(config.interrupt_threshold, std::chrono::seconds(10)));

  RunNotes notes;
  Runtime runtime{server_id, config.grace, -1, &notes};
  runtime.lock_fd = hold_server_lock(url, config.plugin_id, server_id,
                                     std::max<microseconds>(config.interrupt_threshold, std::chrono::seconds(10)));
  auto options = scheduler_options(config);
  Metrics metrics;
  StoreOutage outage;
  StatusBoard board(server_id, metrics, options);
  std::optional<HttpServer> http_server;
  if (http) {
    http_server.emplace(board, *http, flags.http_hosts ? *flags.http_hosts : config.http_hosts);
    http_server->start();
  }
  // systemd: ready once the config is checked, the server id held and the
  // HTTP port bound (the database may still be away: the status says so).
  ServiceNotifier notifier([&board] { return board.stuck(); });
  notifier.ready("connecting to the database");
  Hooks hooks(runtime);
  // The jobs as configured now (SIGHUP replaces them), for their on_failure.
  std::mutex jobs_mutex;
  std::map<std::string, CommandJob> jobs_now;
  const auto set_jobs = [&](const ServeConfig& c) {
    const std::lock_guard lock(jobs_mutex);
    jobs_now.clear();
    for (const auto& job : c.jobs) jobs_now.emplace(job.name, job);
  };
  set_jobs(config);
  options.on_event = [&](const jobrepo::SchedulerEvent& e) {
    using Kind = jobrepo::SchedulerEvent::Kind;
    metrics.on_event(e);
    // During a store outage its failures are logged once (StoreOutage).
    const bool outage_error = e.kind == Kind::error && outage.down() &&
                              (e.code == jobrepo::ErrorCode::unavailable || e.code == jobrepo::ErrorCode::busy);
    const bool ended = e.kind == Kind::failed || e.kind == Kind::interrupted || e.kind == Kind::completed;
    // This server's runs leave a note (exit status, output's tail) whatever
    // comes of it; a peer's run that this server interrupted has none.
    auto note = ended ? notes.take(e.run_id) : RunNotes::Note{};
    if (!outage_error) log_event(e, note.exit_code);
    if (!ended && e.kind != Kind::interrupted_peer) return;
    std::optional<CommandJob> job;
    {
      const std::lock_guard lock(jobs_mutex);
      const auto found = jobs_now.find(e.job_name);
      if (found != jobs_now.end() && !found->second.on_failure.empty()) job = found->second;
    }
    if (!job) return;
    const auto& when = job->on_failure_when;
    // An operator's cancel is not a failure, unless the job asks for it.
    const bool counts = e.cancel_reason != jobrepo::CancelReason::operator_request || job->on_failure_cancels;
    std::string why;
    if (e.kind == Kind::completed) {
      // The first success after failures (attempt: 1 + failures in a row).
      if (when.recovery && e.attempt > 1) why = "recovery";
    } else if (counts && when.every_attempt) {
      why = "attempt";
    } else if (counts && when.exhausted && e.kind == Kind::failed && job->backoff.max_attempts > 0 &&
               e.attempt >= job->backoff.max_attempts) {
      why = "exhausted";
    }
    if (why.empty()) return;
    // The event's kind names the run's status, but for a peer's run that
    // this server interrupted.
    const std::string status =
        e.kind == Kind::interrupted_peer ? std::string("interrupted") : std::string(jobrepo::to_string(e.kind));
    hooks.start(*job, Hooks::Info{e.run_id, status, e.message, why, e.attempt, e.duration, std::move(note)});
  };
  auto serving = start_serving(url, config, load, runtime, options, handled, metrics, outage, board, notifier);
  set_jobs(config);  // reloaded while it waited for the database, maybe
  if (!serving) {
    notifier.stopping();
    log(LogLevel::info, "stopped");
    return 0;
  }
  jobrepo::Scheduler& scheduler = *serving->scheduler;
  const auto names = [](const ServeConfig& c) {
    std::vector<std::string> out;
    for (const auto& job : c.jobs) out.push_back(job.name);
    return out;
  };
  // Each scheduled job's period as configured (jobrepo_job_period_seconds):
  // its `every`, or the gap between its next two cron fire times.
  const auto periods = [](const ServeConfig& c) {
    std::map<std::string, double> out;
    for (const auto& job : c.jobs) {
      if (job.every.count() > 0) {
        out[job.name] = std::chrono::duration<double>(job.every).count();
      } else if (!job.cron.empty()) {
        try {
          const jobrepo::CronSchedule schedule(job.cron, job.time_zone);
          const auto first = schedule.next_after(std::chrono::system_clock::now());
          const auto second = first ? schedule.next_after(*first) : std::nullopt;
          if (second) out[job.name] = std::chrono::duration<double>(*second - *first).count();
        } catch (const std::exception&) {
          // load_config checked it: nothing to show otherwise
        }
      }
    }
    return out;
  };
  board.set_scheduler(&scheduler, names(config));
  board.set_periods(periods(config));
  // The cluster as the status page and the metrics show it: read every 5 s.
  std::mutex refresher_mutex;
  std::condition_variable refresher_wake;
  bool refresher_stop = false;
  std::thread refresher;
  if (http) {
    refresher = std::thread([&, plugin = config.plugin_id] {
      jobrepo::Repository repo(*serving->metered, {plugin, 0});
      std::unique_lock lock(refresher_mutex);
      while (!refresher_stop) {
        lock.unlock();
        board.refresh(repo);
        lock.lock();
        refresher_wake.wait_for(lock, StatusBoard::refresh_interval, [&] { return refresher_stop; });
      }
    });
  }
  const auto serving_text = [&] {
    return "serving " + counted(config.jobs.size(), "job", "jobs") + " as " + server_id + " on " +
           jobrepo::redact_url(url);
  };
  // The history of the jobs that keep_runs or keep_for bound, as configured now.
  const auto prune_rules = [&] {
    std::vector<Pruner::Rule> rules;
    const std::lock_guard lock(jobs_mutex);
    for (const auto& [name, job] : jobs_now) {
      if (!job.keep_runs && !job.keep_for) continue;
      rules.push_back({name, {.keep_last = job.keep_runs, .older_than = job.keep_for}, retention_text(job)});
    }
    return rules;
  };
  Pruner pruner(*serving->metered, config.plugin_id, config.prune_interval, prune_rules, outage);
  log(LogLevel::info, "serving " + counted(config.jobs.size(), "job", "jobs") + " on " + jobrepo::redact_url(url));
  notifier.status(serving_text());
  for (;;) {
    int signal = 0;
    sigwait(&handled, &signal);
    if (signal == SIGHUP) {
      log(LogLevel::info, "reloading the config on SIGHUP");
      notifier.reloading();
      config = reload(scheduler, config, load, runtime);
      notifier.ready(serving_text());
      set_jobs(config);
      board.set_scheduler(&scheduler, names(config));
      board.set_periods(periods(config));
      continue;
    }
    log(LogLevel::info, std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
    notifier.stopping();
    break;
  }
  pruner.stop();
  // The runs end when their commands have: stop() waits for them (SIGTERM,
  // SIGKILL after grace) and never ends a run whose processes live, so wait
  // as long as they take (their supervisors end them at the latest grace +
  // 5 s after the cancel; see run_supervised).
  bool clean = scheduler.stop();
  for (bool said = false; !scheduler.stop();) {
    if (!said) log(LogLevel::warning, "waiting for the commands of runs to end before the runs are ended");
    said = true;
  }
  hooks.stop_all();
  {
    const std::lock_guard lock(refresher_mutex);
    refresher_stop = true;
  }
  refresher_wake.notify_all();
  if (refresher.joinable()) refresher.join();
  board.set_scheduler(nullptr, {});
  if (http_server) http_server->stop();
  log(LogLevel::info, clean ? "stopped" : "stopped, once the commands of its runs had ended");
  return 0;
}

}  // namespace jobctl
