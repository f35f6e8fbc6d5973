#include <jobrepo/error.hpp>
#include <jobrepo/scheduler.hpp>
#include <jobrepo/text.hpp>

#include "operation.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace jobrepo {

using std::chrono::microseconds;
using SteadyClock = std::chrono::steady_clock;

std::string_view to_string(CancelReason reason) noexcept {
  switch (reason) {
    case CancelReason::none: return "none";
    case CancelReason::stopping: return "stopping";
    case CancelReason::interrupted: return "interrupted";
    case CancelReason::fenced: return "fenced";
    case CancelReason::deadline: return "deadline";
    case CancelReason::operator_request: return "cancelled by operator";
  }
  return "unknown";
}

std::string_view to_string(SchedulerEvent::Kind kind) noexcept {
  switch (kind) {
    case SchedulerEvent::Kind::claimed: return "claimed";
    case SchedulerEvent::Kind::started: return "started";
    case SchedulerEvent::Kind::completed: return "completed";
    case SchedulerEvent::Kind::failed: return "failed";
    case SchedulerEvent::Kind::cancelled: return "cancelled";
    case SchedulerEvent::Kind::interrupted_peer: return "interrupted";
    case SchedulerEvent::Kind::error: return "error";
    case SchedulerEvent::Kind::skipped: return "skipped";
    case SchedulerEvent::Kind::interrupted: return "interrupted";
    case SchedulerEvent::Kind::warning: return "warning";
  }
  return "unknown";
}

Cancelled::Cancelled(CancelReason reason)
    : std::runtime_error("cancelled: " + std::string(to_string(reason))), reason_(reason) {}

void JobContext::throw_if_cancelled() const {
  if (cancelled()) throw Cancelled(cancel_reason());
}

namespace {

// --- who this process is, for the server id's lease -----------------------

// The text of a small file (/proc), or empty.
std::string read_small_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buffer[1024];
  const auto got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) return {};
  std::string text(buffer, static_cast<std::size_t>(got));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Field 22 of /proc/PID/stat (the process's start, in clock ticks since
// boot): with the pid, it names one process for the machine's uptime. The
// command name (field 2) may hold spaces and parentheses: the fields after
// the last ')' are counted. Empty when the process is gone or a zombie.
std::string process_start(pid_t pid) {
  const std::string stat = read_small_file(("/proc/" + std::to_string(pid) + "/stat").c_str());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::vector<std::string> fields;  // from field 3 (the state) on
  std::size_t at = close + 2;
  while (at < stat.size() && fields.size() < 20) {
    const auto space = stat.find(' ', at);
    fields.push_back(stat.substr(at, space == std::string::npos ? std::string::npos : space - at));
    if (space == std::string::npos) break;
    at = space + 1;
  }
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return {};
  return fields[19];
}

// The machine and pid namespace this process runs in: a pid means the same
// process only where both are equal. "?" parts when /proc cannot tell.
std::string machine_part() {
  std::string boot = read_small_file("/proc/sys/kernel/random/boot_id");
  char link[64] = {};
  const auto length = ::readlink("/proc/self/ns/pid", link, sizeof link - 1);
  if (boot.empty() || boot.find(':') != std::string::npos) boot = "?";
  std::string ns = "?";
  if (length > 0) {
    // "pid:[4026531836]": the number alone.
    const std::string text(link, static_cast<std::size_t>(length));
    const auto open = text.find('['), close = text.find(']');
    if (open != std::string::npos && close != std::string::npos && close > open + 1) {
      ns = text.substr(open + 1, close - open - 1);
    }
  }
  return boot + ":" + ns;
}

// This Scheduler's instance token (ServerRecord::instance):
// "BOOT_ID:PIDNS:PID:START:RANDOM"; and where it runs, for people.
std::pair<std::string, std::string> new_instance() {
  const pid_t pid = ::getpid();
  std::string start = process_start(pid);
  if (start.empty()) start = "?";
  std::random_device device;
  char random[17];
  std::snprintf(random, sizeof random, "%08x%08x", device(), device());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "unknown-host");
  return {machine_part() + ":" + std::to_string(pid) + ":" + start + ":" + random,
          std::string(host) + " pid " + std::to_string(pid)};
}

// Whether the instance with this token was a process of this machine and pid
// namespace that is gone now (its pid free, or reused by a later process).
// False when it cannot tell (another machine, an unknown token).
bool instance_gone(const std::string& token) {
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    const auto colon = token.find(':', at);
    parts.push_back(token.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  if (parts.size() != 5 || parts[0] == "?" || parts[1] == "?" || parts[3] == "?") return false;
  if (parts[0] + ":" + parts[1] != machine_part()) return false;
  char* end = nullptr;
  const long pid = std::strtol(parts[2].c_str(), &end, 10);
  if (end == parts[2].c_str() || *end != '\0' || pid <= 0) return false;
  return process_start(static_cast<pid_t>(pid)) != parts[3];
}

class FunctionJob final : public JobHandler {
 public:
  FunctionJob(std::string name, std::string description, std::function<microseconds(JobContext&)> run)
      : name_(std::move(name)), description_(std::move(description)), run_(std::move(run)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return description_; }
  microseconds run(JobContext& context) override { return run_(context); }

 private:
  std::string name_, description_;
  std::function<microseconds(JobContext&)> run_;
};

// One run executing (or queued) here: its context and its liveness.
class LocalRun final : public JobContext {
 public:
  LocalRun(Run run, std::shared_ptr<JobHandler> handler, std::optional<CronSchedule> schedule, Misfire misfire,
           std::optional<microseconds> every, BackoffOptions backoff, SteadyClock::time_point claimed,
           microseconds timeout, microseconds fence_after)
      : run_(std::move(run)),
        handler_(std::move(handler)),
        schedule_(std::move(schedule)),
        misfire_(misfire),
        every_(every),
        backoff_(backoff),
        timeout_(timeout),
        fence_after_(fence_after),
        last_heartbeat_(claimed.time_since_epoch().count()),
        anchor_database_(run_.create_time),
        anchor_steady_(SteadyClock::now()) {}

  const std::string& run_id() const override { return run_.private_id; }
  const std::string& job_name() const override { return run_.job_name; }
  // max() while queued and for a job without a timeout.
  SteadyClock::time_point deadline() const override {
    return SteadyClock::time_point(SteadyClock::duration(deadline_.load()));
  }
  // A worker starts it: the job's timeout counts from now.
  void start(SteadyClock::time_point now) {
    if (timeout_.count() > 0) deadline_.store((now + timeout_).time_since_epoch().count());
    started_.store(true);
  }
  // Whether a worker started its handler.
  bool started() const { return started_.load(); }
  // The handler returned (or threw): its work is over.
  void set_returned() { returned_.store(true); }
  bool returned() const { return returned_.load(); }
  SteadyClock::time_point fence_deadline() const override { return last_heartbeat() + fence_after_; }
  std::stop_token stop_token() const override { return stop_.get_token(); }
  CancelReason cancel_reason() const override { return reason_.load(); }

  bool sleep_for(microseconds duration) const override {
    std::unique_lock lock(sleep_mutex_);
    sleep_cv_.wait_for(lock, stop_.get_token(), duration, [] { return false; });
    return !cancelled();
  }

  void report_progress(std::int64_t completed, std::int64_t total) override {
    if (completed < 0 || total < 0 || completed > total) {
      throw Error(ErrorCode::invalid_parameter, "report_progress: run \"" + run_.private_id + "\": counts " +
                                                    std::to_string(completed) + "/" + std::to_string(total) +
                                                    " must be non-negative with completed <= total");
    }
    const std::lock_guard lock(counts_mutex_);
    completed_ = completed;
    total_ = total;
  }

  std::pair<std::int64_t, std::int64_t> counts() const {
    const std::lock_guard lock(counts_mutex_);
    return {completed_, total_};
  }

  // First reason wins; later requests only repeat the stop.
  void cancel(CancelReason reason) {
    CancelReason none = CancelReason::none;
    if (reason_.compare_exchange_strong(none, reason)) {
      cancelled_at_.store(SteadyClock::now().time_since_epoch().count());
    }
    stop_.request_stop();
  }
  // When it was first cancelled (meaningful once cancelled()).
  SteadyClock::time_point cancelled_at() const {
    return SteadyClock::time_point(SteadyClock::duration(cancelled_at_.load()));
  }

  // The steady time at which the last successful heartbeat was sent.
  SteadyClock::time_point last_heartbeat() const {
    return SteadyClock::time_point(SteadyClock::duration(last_heartbeat_.load()));
  }
  void heartbeat_sent_at(SteadyClock::time_point sent) { last_heartbeat_.store(sent.time_since_epoch().count()); }

  const Run& run() const { return run_; }
  JobHandler& handler() const { return *handler_; }
  const std::optional<CronSchedule>& schedule() const { return schedule_; }
  Misfire misfire() const { return misfire_; }
  const std::optional<microseconds>& every() const { return every_; }
  const BackoffOptions& backoff() const { return backoff_; }
  // The job's timeout (0: none).
  microseconds timeout() const { return timeout_; }

  // The database's time now, as this process reckons it: the run's latest
  // database timestamp (its claim, then each successful heartbeat) plus the
  // time since that answer arrived, on this process's monotonic clock (no
  // server clock involved). Never later than the truth: the database took
  // the timestamp before its answer arrived.
  Timestamp database_now() const {
    const std::lock_guard lock(counts_mutex_);
    return anchor_database_ + std::chrono::duration_cast<Clock::duration>(SteadyClock::now() - anchor_steady_);
  }
  // A heartbeat's answer: the run's update_time, arrived at `received`.
  void anchor(Timestamp database, SteadyClock::time_point received) {
    const std::lock_guard lock(counts_mutex_);
    anchor_database_ = database;
    anchor_steady_ = received;
  }

  // The handler returned and the outcome waits for the writer: no more
  // heartbeats. Read and written under the scheduler's mutex.
  bool ended = false;
  // The fence loop said that the handler outlived its grace, or its
  // timeout. Fence loop only.
  bool late_reported = false;
  bool deadline_reported = false;

 private:
  const Run run_;
  const std::shared_ptr<JobHandler> handler_;
  const std::optional<CronSchedule> schedule_;
  const Misfire misfire_;
  const std::optional<microseconds> every_;
  const BackoffOptions backoff_;
  const microseconds timeout_;  // 0: none
  std::atomic<SteadyClock::rep> deadline_{SteadyClock::time_point::max().time_since_epoch().count()};
  const microseconds fence_after_;
  std::atomic<SteadyClock::rep> cancelled_at_{0};
  std::stop_source stop_;
  std::atomic<CancelReason> reason_{CancelReason::none};
  mutable std::mutex sleep_mutex_;
  mutable std::condition_variable_any sleep_cv_;
  mutable std::mutex counts_mutex_;
  std::int64_t completed_ = 0, total_ = 0;
  std::atomic<SteadyClock::rep> last_heartbeat_;
  std::atomic<bool> started_{false};
  std::atomic<bool> returned_{false};
  Timestamp anchor_database_;              // under counts_mutex_
  SteadyClock::time_point anchor_steady_;  // under counts_mutex_
};

// "1.2s"
std::string seconds_text(std::chrono::milliseconds ms) {
  const auto tenths = (ms.count() + 50) / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

// A duration as the config and docs write it: "250ms", "4s", "22.5s", "1500us".
std::string duration_text(microseconds d) {
  const auto us = d.count();
  // The magnitude in unsigned arithmetic: -us overflows for microseconds::min().
  const auto magnitude = us < 0 ? 0 - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  if (us % 1000 != 0 && magnitude < 1000000) return std::to_string(us) + "us";
  if (magnitude < 1000000) return std::to_string(us / 1000) + "ms";
  std::string text = (us < 0 ? "-" : "") + std::to_string(magnitude / 1000000);
  if (auto fraction = magnitude % 1000000; fraction != 0) {
    std::string digits = std::to_string(1000000 + fraction).substr(1);
    digits.erase(digits.find_last_not_of('0') + 1);
    text += "." + digits;
  }
  return text + "s";
}

// The fence rule's parts (see SchedulerOptions::grace).
microseconds fence_after(const SchedulerOptions& o) { return o.interrupt_threshold - o.interrupt_threshold / 4; }
microseconds fence_check_period(const SchedulerOptions& o) {
  return std::min<microseconds>(o.monitor_interval / 2, std::chrono::milliseconds(100));
}
microseconds fenced_run_ends_after(const SchedulerOptions& o) {
  return fence_after(o) + fence_check_period(o) + o.grace + kill_allowance;
}

bool transient(ErrorCode code) { return code == ErrorCode::busy || code == ErrorCode::unavailable; }

}  // namespace

std::string backoff_problem(const BackoffOptions& b, std::string_view prefix) {
  const std::string p(prefix);
  if (b.initial.count() < 0 || b.initial > max_offset) {
    return p + "initial " + duration_text(b.initial) + " is not between 0 and 100 years";
  }
  if (b.max < b.initial || b.max > max_offset) {
    return p + "max " + duration_text(b.max) + " is not between " + p + "initial and 100 years";
  }
  if (!(b.multiplier >= 1.0 && b.multiplier <= 1000.0)) {
    return p + "multiplier " + std::to_string(b.multiplier) + " is not between 1 and 1000";
  }
  if (!(b.jitter >= 0.0 && b.jitter < 1.0)) return p + "jitter " + std::to_string(b.jitter) + " is not in [0, 1)";
  if (b.max_attempts < 0) return p + "max_attempts " + std::to_string(b.max_attempts) + " is negative";
  return {};
}

std::string scheduler_options_problem(const SchedulerOptions& o) {
  if (o.worker_threads < 1) return "worker_threads " + std::to_string(o.worker_threads) + " is less than 1";
  for (const auto& [name, value] :
       {std::pair{"claim_interval", o.claim_interval}, std::pair{"monitor_interval", o.monitor_interval},
        std::pair{"interrupt_threshold", o.interrupt_threshold}}) {
    if (value.count() <= 0) return std::string(name) + " " + duration_text(value) + " must be positive";
    if (value > max_offset) return std::string(name) + " " + duration_text(value) + " is more than 100 years";
  }
  if (o.claim_limit < 0) return "claim_limit " + std::to_string(o.claim_limit) + " is negative";
  if (o.local_queue < 0) return "local_queue " + std::to_string(o.local_queue) + " is negative";
  if (o.stop_timeout.count() < 0) return "stop_timeout " + duration_text(o.stop_timeout) + " is negative";
  if (o.stop_timeout > max_offset) return "stop_timeout " + duration_text(o.stop_timeout) + " is more than 100 years";
  if (auto problem = backoff_problem(o.backoff); !problem.empty()) return problem;
  if (o.grace.count() < 0) return "grace " + duration_text(o.grace) + " must not be negative";
  if (o.grace > max_offset) return "grace " + duration_text(o.grace) + " is more than 100 years";
  if (o.monitor_interval > o.interrupt_threshold / 4) {
    return "monitor_interval " + duration_text(o.monitor_interval) +
           " must be at most a quarter of interrupt_threshold " + duration_text(o.interrupt_threshold);
  }
  if (const auto ends = fenced_run_ends_after(o); ends >= o.interrupt_threshold) {
    // The largest grace that fits, and the threshold this grace needs.
    const auto room = o.interrupt_threshold - fence_after(o) - fence_check_period(o) - kill_allowance;
    const auto needed = 4 * (fence_check_period(o) + o.grace + kill_allowance);
    return "grace " + duration_text(o.grace) + " does not fit in interrupt_threshold " +
           duration_text(o.interrupt_threshold) + ": a fenced run's processes may live until " + duration_text(ends) +
           " after its last heartbeat (fenced at " + duration_text(fence_after(o)) +
           ", 3/4 of the threshold, checked every " + duration_text(fence_check_period(o)) + ", + grace " +
           duration_text(o.grace) + " + " + duration_text(kill_allowance) +
           " to end), but a peer may take its job at " + duration_text(o.interrupt_threshold) + "; make " +
           (room.count() > 0 ? "grace less than " + duration_text(room) + " or " : std::string()) +
           "interrupt_threshold more than " + duration_text(needed);
  }
  return {};
}

std::shared_ptr<JobHandler> make_job(std::string name, std::string description,
                                     std::function<microseconds(JobContext&)> run) {
  return std::make_shared<FunctionJob>(std::move(name), std::move(description), std::move(run));
}

struct Scheduler::State {
  struct Registered {
    std::shared_ptr<JobHandler> handler;
    microseconds timeout{0};
    std::optional<CronSchedule> schedule{};
    Misfire misfire = Misfire::run_once;
    std::optional<microseconds> every{};
    BackoffOptions backoff{};
    std::string fingerprint{};  // definition_fingerprint() of its definition
  };

  State(std::string id, Store& s, SchedulerOptions o)
      : server_id(std::move(id)), store(s), options(std::move(o)), identity(new_instance()) {}

  const std::string server_id;
  Store& store;
  const SchedulerOptions options;
  // This Scheduler's instance token (ServerRecord::instance) and where it runs.
  const std::pair<std::string, std::string> identity;

  mutable std::mutex mutex;
  std::condition_variable claim_wake;    // run_now, a free worker, a peer's run interrupted
  std::condition_variable work_ready;    // a run queued for the workers
  std::condition_variable run_finished;  // a run left `executing`
  std::condition_variable loops_wake;    // monitor and fence loops: stop
  std::map<std::string, Registered, std::less<>> jobs;
  int jobs_version = 0;       // changes with every (un)registration
  int recorded_version = -1;  // the jobs_version the store last heard of (record_server)
  // Jobs whose servers disagree about the definition, warned of once
  // (start() and then the monitor loop only).
  std::set<std::string, std::less<>> warned_drift;
  std::optional<SteadyClock::time_point> last_drift_check{};  // none yet: due
  // Queued, running, or waiting for its final write here.
  std::map<std::string, std::shared_ptr<LocalRun>> executing;
  std::deque<std::shared_ptr<LocalRun>> queue;
  // Ended runs whose outcome the writer stores, many per transaction.
  struct Outcome {
    std::shared_ptr<LocalRun> local;
    RunUpdate update;
    std::string detail;    // for the event
    bool retried = false;  // a transient error was reported for it
    microseconds took{0};  // how long the handler ran
    Timestamp work_end{};  // when the handler returned, on the database's clock as reckoned here
  };
  std::vector<Outcome> outcomes;
  std::condition_variable outcomes_ready;
  // Future due times of registered jobs known here (from the last scan of
  // the jobs and from this server's own completions), earliest on top.
  std::priority_queue<Timestamp, std::vector<Timestamp>, std::greater<>> known_due;
  // None yet: due. (A steady clock may start at the boot: a default time
  // point is not "long ago" on a machine up for less than an interval.)
  std::optional<SteadyClock::time_point> last_scan{};
  // The last scan found every job of the plugin registered here, as of
  // jobs_version serves_all_version: claims then need not name the jobs
  // (shipping 10,000 names cost a claim 7 ms). -1: name them.
  int serves_all_version = -1;
  std::optional<SteadyClock::time_point> last_sweep{};  // of skip_missed(), by the claim loop
  std::unique_ptr<DueSubscription> subscription;
  bool wake_requested = false;
  // SchedulerHealth's times, as steady-clock ticks.
  std::atomic<SteadyClock::rep> claim_tick{0}, monitor_tick{0}, fence_tick{0}, store_answered{0};
  bool starting = false;  // start() is taking the lease
  bool started = false;
  bool stop_requested = false;  // stop() was called (start() waiting for the lease gives up)
  bool stopping = false;        // no more claims, no new handlers
  bool loops_stopping = false;  // monitor, fence and writer loops end
  bool finished = false;        // every thread joined, the lease given up
  bool workers_exit = false;
  int busy_workers = 0;
  // stop() and the destructor, one at a time.
  std::mutex stop_mutex;
  // Another instance took the server id over: no more claims.
  std::atomic<bool> lease_lost{false};
  // The running runs of the plugin as the monitor read them: each one's
  // update_time and when this process first read that value (its own
  // monotonic clock). Monitor loop only.
  struct Observation {
    Timestamp update_time{};
    SteadyClock::time_point since{};
  };
  std::map<std::string, Observation> observed;
  std::minstd_rand random{std::random_device{}()};

  std::thread claimer, monitor, fence, writer;
  std::vector<std::thread> workers;

  void emit(SchedulerEvent::Kind kind, const std::string& job, const std::string& run, std::string detail,
            std::string message = {}, std::optional<ErrorCode> code = std::nullopt,
            microseconds duration = microseconds(0)) const noexcept {
    if (!options.on_event) return;
    try {
      options.on_event(SchedulerEvent{kind, job, run, std::move(detail), std::move(message), duration, code});
    } catch (...) {
      // A failing observer must not stop the scheduler.
    }
  }

  // Runs one step of a loop; an exception of any kind (a third-party
  // store's, bad_alloc) becomes an error event, so that no scheduler thread,
  // and with it the process, ends because of it.
  template <class Step>
  void guarded(const char* what, Step&& step) noexcept {
    try {
      step();
    } catch (const Error& e) {
      emit_error(what, e.what(), e.code());
    } catch (const std::exception& e) {
      emit_error(what, e.what(), std::nullopt);
    } catch (...) {
      emit_error(what, "unknown exception", std::nullopt);
    }
  }

  // An error event for a failed step `what`; its message leads with `what`
  // once (a Repository error names the method already).
  void emit_error(const char* what, const std::string& message, std::optional<ErrorCode> code) const noexcept {
    try {
      const std::string prefix = std::string(what) + ": ";
      std::string detail = message.rfind(prefix, 0) == 0 ? message : prefix + message;
      SchedulerEvent event{SchedulerEvent::Kind::error, "", "", std::move(detail)};
      event.code = code;
      emit(std::move(event));
    } catch (...) {
    }
  }

  void emit(SchedulerEvent event) const noexcept {
    if (!options.on_event) return;
    try {
      options.on_event(event);
    } catch (...) {
      // A failing observer must not stop the scheduler.
    }
  }

  Repository repository() const { return Repository(store, {options.plugin_id, 0}); }

  // The delay before retry number `failures` (1: after the first failure).
  microseconds backoff(const BackoffOptions& b, std::int64_t failures) {
    double delay = static_cast<double>(b.initial.count());
    for (std::int64_t i = 1; i < failures && delay < static_cast<double>(b.max.count()); ++i) delay *= b.multiplier;
    delay = std::min(delay, static_cast<double>(b.max.count()));
    std::uniform_real_distribution<double> spread(1.0 - b.jitter, 1.0 + b.jitter);
    return microseconds(static_cast<std::int64_t>(delay * spread(random)));
  }

  void wake_claimer() {
    {
      const std::lock_guard lock(mutex);
      wake_requested = true;
    }
    claim_wake.notify_all();
  }

  std::vector<std::shared_ptr<LocalRun>> local_runs() const {
    const std::lock_guard lock(mutex);
    std::vector<std::shared_ptr<LocalRun>> runs;
    for (const auto& entry : executing) runs.push_back(entry.second);
    return runs;
  }

  // --- the claim loop -----------------------------------------------------

  void claim_loop() {
    Repository repo = repository();
    // The jobs registered here as of jobs_version: the names the claim asks
    // for and the handlers their runs get.
    std::map<std::string, Registered, std::less<>> registered;
    std::vector<std::string> names;
    int version = -1;
    for (;;) {
      claim_tick.store(SteadyClock::now().time_since_epoch().count());
      int free = 0;
      {
        const std::lock_guard lock(mutex);
        if (stopping) return;
        if (version != jobs_version) {
          registered = jobs;
          names.clear();
          for (const auto& entry : registered) names.push_back(entry.first);
          version = jobs_version;
        }
        // Runs waiting for their final write hold no worker (their jobs
        // cannot be claimed again until it is stored).
        free = options.worker_threads + options.local_queue - static_cast<int>(queue.size()) - busy_workers;
        // The server id is another instance's now: claims would be its.
        if (lease_lost.load()) free = 0;
      }
      bool maybe_more = false;
      if (free > 0 && (!last_sweep || SteadyClock::now() - *last_sweep >= options.claim_interval)) {
        guarded("misfire", [&] { skip_missed(repo); });
        last_sweep = SteadyClock::now();
      }
      if (free > 0) {
        const int limit = options.claim_limit > 0 ? std::min(options.claim_limit, free) : free;
        const auto claimed_at = SteadyClock::now();
        bool unfiltered = false;
        {
          const std::lock_guard lock(mutex);
          unfiltered = serves_all_version == version;
        }
        guarded("claim", [&] {
          auto runs = unfiltered ? repo.run_jobs(server_id, {.limit = limit})
                                 : repo.run_jobs(server_id, {.limit = limit, .only_jobs = names});
          maybe_more = static_cast<int>(runs.size()) == limit;
          std::vector<Run> strangers;
          for (auto& run : runs) {
            const auto job = registered.find(run.job_name);
            if (job == registered.end()) {
              strangers.push_back(std::move(run));
            } else {
              dispatch(std::move(run), job->second, claimed_at);
            }
          }
          if (!strangers.empty()) hand_back_strangers(repo, strangers);
        });
      }
      std::unique_lock lock(mutex);
      if (stopping) return;
      if (maybe_more && !wake_requested) {
        scan_if_due(repo, lock);  // busy: the loop never sleeps
        continue;
      }
      const auto wait = next_wake(repo, lock);
      claim_wake.wait_for(lock, wait, [&] { return wake_requested || stopping; });
      wake_requested = false;
    }
  }

  // Jobs with a calendar schedule and Misfire::skip whose due fire time
  // passed while no server ran them (all down, busy, or cut off from the
  // database) become due at their next fire time still to come, before a
  // claim could run them late. A fire time is missed when it is older than
  // half the time to the next one (at least claim_interval, at most a
  // minute), by the database's clock.
  void skip_missed(Repository& repo) {
    std::map<std::string, Registered, std::less<>> skipping;
    {
      const std::lock_guard lock(mutex);
      for (const auto& [name, job] : jobs) {
        if (job.schedule && job.misfire == Misfire::skip) skipping.emplace(name, job);
      }
    }
    if (skipping.empty()) return;
    const auto now = repo.database_time();
    for (const auto& job : repo.list_jobs({.limit = -1})) {
      const auto found = skipping.find(job.name);
      if (found == skipping.end() || job.next_scheduled_run >= now) continue;
      const auto& schedule = *found->second.schedule;
      const auto due = job.next_scheduled_run;
      const auto following = schedule.next_after(due);
      const auto period = following ? std::chrono::duration_cast<microseconds>(*following - due) : max_offset;
      const auto tolerance =
          std::min<microseconds>(std::max<microseconds>(period / 2, options.claim_interval), std::chrono::minutes(1));
      if (now - due <= tolerance) continue;
      const auto next = std::min(schedule.next_after(now).value_or(latest_time), latest_time);
      repo.update_job_next_run(job.name, next);
      emit(SchedulerEvent::Kind::skipped, job.name, "",
           "missed the fire time " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - due).count()) +
               " s ago; next in " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(next - now).count()) + " s");
      const std::lock_guard lock(mutex);
      known_due.push(next);
    }
  }

  // How long the claim loop may sleep: until the earliest known future due
  // time of a job registered here, bounded by claim_interval (and at least
  // 1 ms). The jobs are read at most once per claim_interval; in between,
  // this server's own completions tell when their jobs are due, and pushed
  // wake-ups (subscribe_due) or the next read tell of changes elsewhere.
  std::chrono::microseconds next_wake(Repository& repo, std::unique_lock<std::mutex>& lock) {
    scan_if_due(repo, lock);
    const auto now = Clock::now();
    while (!known_due.empty() && known_due.top() <= now) known_due.pop();
    microseconds wait = options.claim_interval;
    if (!known_due.empty()) wait = std::min(wait, std::chrono::duration_cast<microseconds>(known_due.top() - now));
    return std::max(wait, microseconds(1000));
  }

  // Reads the plugin's jobs when claim_interval has passed since the last
  // read: the due times of those registered here, and whether every job is.
  void scan_if_due(Repository& repo, std::unique_lock<std::mutex>& lock) {
    if (!last_scan || SteadyClock::now() - *last_scan >= options.claim_interval) {
      std::set<std::string, std::less<>> names;
      for (const auto& entry : jobs) names.insert(entry.first);
      const int version = jobs_version;
      lock.unlock();
      std::vector<Timestamp> due;
      bool read = false;
      bool all_here = true;
      guarded("list_jobs", [&] {
        const auto now = Clock::now();
        for (const auto& job : repo.list_jobs({.limit = -1})) {
          const bool here = names.count(job.name) != 0;
          all_here = all_here && here;
          if (here && job.next_scheduled_run > now) due.push_back(job.next_scheduled_run);
        }
        read = true;
      });
      lock.lock();
      if (read) {
        known_due = decltype(known_due)(std::greater<>(), std::move(due));
        last_scan = SteadyClock::now();
        serves_all_version = all_here ? version : -1;
      }
    }
  }

  void dispatch(Run run, const Registered& job, SteadyClock::time_point claimed_at) {
    auto local = std::make_shared<LocalRun>(run, job.handler, job.schedule, job.misfire, job.every, job.backoff,
                                            claimed_at, job.timeout, fence_after(options));
    emit(SchedulerEvent::Kind::claimed, run.job_name, run.private_id, "");
    {
      const std::lock_guard lock(mutex);
      executing.emplace(run.private_id, local);
      queue.push_back(std::move(local));
    }
    work_ready.notify_one();
  }

  // Runs of jobs not registered here, which a claim without the names took
  // (a job created elsewhere since the last scan): they end at once,
  // interrupted before anything ran, the job still due for the servers that
  // run it; claims name the jobs again until the next scan.
  void hand_back_strangers(Repository& repo, const std::vector<Run>& strangers) {
    {
      const std::lock_guard lock(mutex);
      serves_all_version = -1;
    }
    std::vector<RunUpdate> updates;
    for (const auto& run : strangers) {
      updates.push_back({.run_id = run.private_id,
                         .status = Status::interrupted,
                         .message = "claimed by " + server_id + ", which does not run this job; handed back"});
    }
    const auto results = repo.update_runs(updates);
    for (std::size_t i = 0; i < strangers.size(); ++i) {
      if (results[i].error) {
        emit(SchedulerEvent::Kind::error, strangers[i].job_name, strangers[i].private_id,
             std::string("claim: handing back a run of a job not registered here: ") + results[i].error->what(), {},
             results[i].error->code());
      }
    }
  }

  // Runs claimed for the local queue that no worker started: they end at
  // once (interrupted, the job stays due), so that a peer may take them
  // without waiting for this server's handlers or the interrupt threshold.
  void hand_back_queued() noexcept {
    std::vector<std::shared_ptr<LocalRun>> unstarted;
    {
      const std::lock_guard lock(mutex);
      for (auto& local : queue) {
        executing.erase(local->run_id());
        unstarted.push_back(std::move(local));
      }
      queue.clear();
    }
    if (unstarted.empty()) return;
    run_finished.notify_all();
    guarded("stop", [&] {
      std::vector<RunUpdate> updates;
      for (const auto& local : unstarted) {
        updates.push_back({.run_id = local->run_id(),
                           .status = Status::interrupted,
                           .message = "its server stopped before it started"});
      }
      const auto results = repository().update_runs(updates);
      for (std::size_t i = 0; i < unstarted.size(); ++i) {
        const auto& local = *unstarted[i];
        if (results[i].run) {
          emit(SchedulerEvent::Kind::cancelled, local.job_name(), local.run_id(), "stopping before it started");
        } else if (results[i].error) {
          emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(),
               std::string("stop: handing back a queued run: ") + results[i].error->what(), {},
               results[i].error->code());
        }
      }
    });
  }

  // --- stopping -------------------------------------------------------------

  // stop() (wait: stop_timeout) and the destructor (wait: none, i.e. as long
  // as it takes). Returns whether every handler has returned; then the
  // outcomes are stored (up to stop_timeout more), every thread is joined
  // and the lease given up. Otherwise the loops go on, heartbeating the
  // runs whose handlers still run.
  bool halt(std::optional<microseconds> wait) {
    const std::lock_guard serial(stop_mutex);
    bool first = false;
    {
      const std::lock_guard lock(mutex);
      stop_requested = true;
      if (!started || finished) {
        loops_wake.notify_all();  // start() waiting for the lease gives up
        return true;
      }
      first = !stopping;
      stopping = true;
    }
    if (first) {
      claim_wake.notify_all();
      claimer.join();
      subscription.reset();  // not under the mutex: it waits for a callback in progress
      hand_back_queued();
      for (const auto& local : local_runs()) local->cancel(CancelReason::stopping);
    }
    // Heartbeats go on meanwhile, so the runs do not look stale.
    const auto handlers_returned = [&] {
      return std::all_of(executing.begin(), executing.end(), [](const auto& entry) { return entry.second->ended; });
    };
    {
      std::unique_lock lock(mutex);
      if (wait) {
        if (!run_finished.wait_for(lock, *wait, handlers_returned)) {
          std::string names;
          int count = 0;
          for (const auto& [id, local] : executing) {
            if (local->ended) continue;
            ++count;
            if (count <= 5)
              names += (names.empty() ? "" : ", ") + std::string("job ") + quote_text(local->job_name()) + " run " + id;
          }
          lock.unlock();
          emit(SchedulerEvent::Kind::error, "", "",
               "stop: " + std::to_string(count) + (count == 1 ? " handler" : " handlers") +
                   " did not return within stop_timeout " + duration_text(*wait) + " (" + names +
                   (count > 5 ? ", ..." : "") +
                   "): their runs stay running here, heartbeated, until they return (stop() again, or the "
                   "destructor, waits for them)");
          return false;
        }
      } else {
        run_finished.wait(lock, handlers_returned);
      }
      // The outcomes: up to stop_timeout for the writer to store them.
      run_finished.wait_for(lock, options.stop_timeout, [&] { return executing.empty(); });
      loops_stopping = true;
    }
    loops_wake.notify_all();
    outcomes_ready.notify_all();
    monitor.join();
    fence.join();
    writer.join();
    guarded("stop", [&] { repository().remove_server(server_id, identity.first); });
    {
      const std::lock_guard lock(mutex);
      workers_exit = true;
    }
    work_ready.notify_all();
    for (auto& worker : workers) worker.join();
    const std::lock_guard lock(mutex);
    finished = true;
    return true;
  }

  // --- the workers --------------------------------------------------------

  // The first queued run whose job has no handler running here: a job's
  // next run waits for the handler of the one before to return (its work
  // to end), also when that run was ended in the store meanwhile (an
  // operator's interrupt, say). Under the mutex.
  std::deque<std::shared_ptr<LocalRun>>::iterator next_runnable() {
    std::set<std::string_view> busy;
    for (const auto& [id, run] : executing) {
      if (run->started() && !run->returned()) busy.insert(run->job_name());
    }
    return std::find_if(queue.begin(), queue.end(),
                        [&](const std::shared_ptr<LocalRun>& run) { return busy.count(run->job_name()) == 0; });
  }

  void worker_loop() {
    Repository repo = repository();
    for (;;) {
      std::shared_ptr<LocalRun> local;
      {
        std::unique_lock lock(mutex);
        work_ready.wait(lock, [&] { return workers_exit || next_runnable() != queue.end(); });
        const auto next = next_runnable();
        if (next == queue.end()) return;
        local = std::move(*next);
        queue.erase(next);
        ++busy_workers;
        local->start(SteadyClock::now());
      }
      std::optional<Outcome> outcome;
      if (local->cancelled()) {
        emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(),
             std::string(to_string(local->cancel_reason())) + " before it started");
        outcome = unstarted(local);
      } else {
        outcome = execute(local);
      }
      {
        const std::lock_guard lock(mutex);
        if (outcome) {
          local->ended = true;
          outcomes.push_back(std::move(*outcome));
        } else {
          executing.erase(local->run_id());
        }
        --busy_workers;
        wake_requested = true;
      }
      if (outcome) outcomes_ready.notify_one();
      run_finished.notify_all();
      claim_wake.notify_all();
      work_ready.notify_all();  // a run of the same job may wait for this one
    }
  }

  // The outcome of a run cancelled before a worker started its handler
  // (nothing ran): it ends interrupted, its job due at once, or for an
  // operator's cancel at its regular time; nothing for a run ended
  // elsewhere already.
  std::optional<Outcome> unstarted(const std::shared_ptr<LocalRun>& local) {
    const auto reason = local->cancel_reason();
    if (reason == CancelReason::interrupted) return std::nullopt;
    RunUpdate update{.run_id = local->run_id(), .status = Status::interrupted};
    if (reason == CancelReason::operator_request) {
      update.message = "cancelled by operator";
      set_regular_next(update, *local);
    } else if (reason == CancelReason::fenced) {
      update.message = "fenced before it started: no heartbeat reached the database";
    } else {
      update.message = "its server stopped before it started";
    }
    std::string detail = *update.message;
    return Outcome{local, std::move(update), std::move(detail), false, microseconds(0), local->database_now()};
  }

  // When a run of a job with a calendar schedule makes the job due next:
  // the first fire time after the run's start (the claim's database time:
  // fire times missed while it ran, or while no server could run the job,
  // make one run at once), or, with Misfire::skip, the first one still to
  // come. Past what a Timestamp holds: latest_time (practically never).
  Timestamp next_fire(const LocalRun& local) const {
    const auto& schedule = *local.schedule();
    const auto after = local.misfire() == Misfire::skip ? std::max(local.run().create_time, local.database_now())
                                                        : local.run().create_time;
    return std::min(schedule.next_after(after).value_or(latest_time), latest_time);
  }

  // Makes a failed run's update retry after the back-off (the run's attempt:
  // the job's consecutive failures in the store), but for a calendar
  // schedule never later than its next fire time; after max_attempts failed
  // attempts, at the job's next regular time instead. Returns the delay from
  // now and says which in `how`.
  microseconds set_retry(RunUpdate& update, const LocalRun& local, std::string& how) {
    const auto& b = local.backoff();
    const std::int64_t attempt = std::max<std::int64_t>(local.run().attempt, 1);
    const bool exhausted = b.max_attempts > 0 && (attempt - 1) % b.max_attempts + 1 == b.max_attempts;
    microseconds delay{};
    if (exhausted) {
      how = "attempt " + std::to_string((attempt - 1) % b.max_attempts + 1) + " of " + std::to_string(b.max_attempts) +
            "; next at its regular time";
      if (local.schedule()) {
        const auto now = local.database_now();
        update.next_run_at = std::max(next_fire(local), earliest_time);
        return std::chrono::duration_cast<microseconds>(*update.next_run_at - now);
      }
      delay = std::min(local.every().value_or(b.max), max_offset);
      update.next_run_in = delay;
      return delay;
    }
    {
      const std::lock_guard lock(mutex);
      delay = std::min(backoff(b, b.max_attempts > 0 ? (attempt - 1) % b.max_attempts + 1 : attempt), max_offset);
    }
    how = "retry";
    if (!local.schedule()) {
      update.next_run_in = delay;
      return delay;
    }
    const auto now = local.database_now();
    const auto retry_at = std::min(now + delay, next_fire(local));
    update.next_run_at = std::max(retry_at, earliest_time);
    return std::chrono::duration_cast<microseconds>(*update.next_run_at - now);
  }

  // The next time of a job whose run ends without the handler's answer
  // (cancelled by an operator): its calendar schedule, its regular interval,
  // or else its back-off's initial delay.
  void set_regular_next(RunUpdate& update, const LocalRun& local) {
    if (local.schedule()) {
      update.next_run_at = std::max(next_fire(local), earliest_time);
    } else {
      update.next_run_in = std::min(local.every().value_or(local.backoff().initial), max_offset);
    }
  }

  // Runs the handler; returns what to store, or nothing when there is
  // nothing to store (the run was ended elsewhere meanwhile). The outcome
  // follows why the run was cancelled, if it was:
  //   none: returned, completed; threw, failed (and retried after back-off);
  //   deadline: failed "timed out after X", whatever the handler did;
  //   operator_request: interrupted "cancelled by operator", the job keeps
  //     its schedule;
  //   stopping: returned, completed; threw, interrupted (due at once);
  //   fenced: within its grace, returned, completed (it ended before any
  //     peer could take the job), threw, interrupted (due at once); later,
  //     failed, saying that a peer may have run the job meanwhile;
  //   interrupted (the run is final or gone in the store): nothing but when
  //     the work ended (Run::work_end_time).
  std::optional<Outcome> execute(const std::shared_ptr<LocalRun>& local) {
    const std::string& name = local->job_name();
    emit(SchedulerEvent::Kind::started, name, local->run_id(), "");
    const auto started = SteadyClock::now();
    std::optional<microseconds> next;
    std::string failure;
    try {
      next = local->handler().run(*local);
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    local->set_returned();
    const auto work_end = local->database_now();
    const auto returned_at = SteadyClock::now();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(returned_at - started);
    const auto reason = local->cancel_reason();
    if (reason == CancelReason::interrupted) {
      emit(SchedulerEvent::Kind::cancelled, name, local->run_id(), std::string(to_string(reason)));
      note_work_end(*local, work_end);
      return std::nullopt;
    }
    RunUpdate update{.run_id = local->run_id()};
    // Progress reported since the last heartbeat is stored with the outcome,
    // so that a finished run shows its final counts.
    if (const auto [completed, total] = local->counts(); completed != 0 || total != 0) {
      update.completed_count = completed;
      update.total_count = total;
    }
    const auto outcome = [&](std::string detail) {
      return Outcome{local, std::move(update), std::move(detail), false, took, work_end};
    };
    if (reason == CancelReason::operator_request) {
      // The run ends here as interrupted, whatever the handler did, and the
      // job keeps its schedule.
      update.status = Status::interrupted;
      update.message = "cancelled by operator";
      if (next && !local->schedule()) {
        update.next_run_in = std::clamp(*next, -max_offset, max_offset);
      } else {
        set_regular_next(update, *local);
      }
      return outcome("cancelled by operator after " + seconds_text(took));
    }
    const bool overran =
        reason != CancelReason::none && returned_at - local->cancelled_at() > options.grace + kill_allowance;
    const auto late_by = std::chrono::duration_cast<std::chrono::milliseconds>(returned_at - local->cancelled_at());
    const auto fail = [&](std::string message, const std::string& note = {}) {
      update.status = Status::failed;
      update.message = message;
      std::string how;
      const auto retry = set_retry(update, *local, how);
      return outcome(message + note + "; " + (how == "retry" ? "retry" : how + ",") + " in " + duration_text(retry));
    };
    if (reason == CancelReason::deadline) {
      return fail("timed out after " + duration_text(local->timeout()),
                  overran ? " (the handler returned " + seconds_text(late_by) + " after it)" : std::string());
    }
    if (reason == CancelReason::fenced && overran) {
      return fail("still running " + seconds_text(late_by) +
                  " after it was fenced (no heartbeat reached the database); another server may have run the job "
                  "meanwhile");
    }
    if (next) {
      update.status = Status::completed;
      if (local->schedule()) {
        update.next_run_at = next_fire(*local);
      } else {
        // microseconds::max() means "not again": the farthest the store takes.
        update.next_run_in = std::clamp(*next, -max_offset, max_offset);
      }
      return outcome("in " + seconds_text(took));
    }
    if (reason == CancelReason::none) return fail(failure);
    // Stopping, or fenced and ended in time: the run ends without a result,
    // its job due at once.
    update.status = Status::interrupted;
    update.message = reason == CancelReason::fenced
                         ? "fenced: no heartbeat reached the database for " + duration_text(fence_after(options))
                         : "its server stopped before the run ended";
    emit(SchedulerEvent::Kind::cancelled, name, local->run_id(), std::string(to_string(reason)));
    return outcome(*update.message);
  }

  // Records when the work of a run that was ended elsewhere ended (a peer
  // or an operator ended it while the handler ran): jobctl audit shows it.
  void note_work_end(const LocalRun& local, Timestamp work_end) noexcept {
    try {
      repository().record_work_end(local.run_id(), work_end);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::record_not_found) return;  // deleted with its job
      emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(), std::string("record_work_end: ") + e.what(),
           {}, e.code());
    } catch (const std::exception& e) {
      emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(), std::string("record_work_end: ") + e.what());
    } catch (...) {
    }
  }

  // --- the writer: outcomes of ended runs, many per transaction ------------

  // Stores every outcome queued meanwhile in one update_runs call (one
  // commit), so that the cost of a commit is shared when runs end quickly.
  // A transient error (busy, unavailable) never drops an outcome: it is
  // tried again after a pause that grows to monitor_interval, until it is
  // stored, its run is final or gone in the store (a peer interrupted it
  // meanwhile), or stop() has waited stop_timeout for it.
  void writer_loop() {
    Repository repo = repository();
    std::vector<Outcome> retry;
    int failed_rounds = 0;
    for (bool last = false; !last;) {
      std::vector<Outcome> batch;
      {
        std::unique_lock lock(mutex);
        if (retry.empty()) {
          outcomes_ready.wait(lock, [&] { return !outcomes.empty() || loops_stopping; });
        } else {
          const auto pause = std::min<microseconds>(std::chrono::milliseconds(10) * (1 << std::min(failed_rounds, 10)),
                                                    options.monitor_interval);
          outcomes_ready.wait_for(lock, pause, [&] { return loops_stopping; });
        }
        last = loops_stopping;
        batch = std::move(retry);
        retry.clear();
        std::move(outcomes.begin(), outcomes.end(), std::back_inserter(batch));
        outcomes.clear();
      }
      if (batch.empty()) continue;
      retry = store_outcomes(repo, std::move(batch), last);
      failed_rounds = retry.empty() ? 0 : failed_rounds + 1;
    }
  }

  // One attempt at storing `batch`; returns the outcomes to try again.
  std::vector<Outcome> store_outcomes(Repository& repo, std::vector<Outcome> batch, bool last) {
    std::vector<RunUpdate> updates;
    updates.reserve(batch.size());
    for (const auto& outcome : batch) updates.push_back(outcome.update);
    std::vector<RunUpdateResult> results(batch.size());
    try {
      results = repo.update_runs(updates);
    } catch (const Error& e) {
      for (auto& result : results) result.error = e;
    } catch (const std::exception& e) {
      for (auto& result : results) result.error = Error(ErrorCode::internal, std::string("update_runs: ") + e.what());
    } catch (...) {
      for (auto& result : results) result.error = Error(ErrorCode::internal, "update_runs: unknown exception");
    }
    std::vector<Outcome> retry;
    std::vector<std::string> finished;  // leave `executing`
    const auto now = Clock::now();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& outcome = batch[i];
      const auto& name = outcome.local->job_name();
      const auto& id = outcome.local->run_id();
      const bool completed = outcome.update.status == Status::completed;
      const auto ended_kind = completed                                      ? SchedulerEvent::Kind::completed
                              : outcome.update.status == Status::interrupted ? SchedulerEvent::Kind::interrupted
                                                                             : SchedulerEvent::Kind::failed;
      if (const auto& run = results[i].run) {
        emit(ended_kind, name, id, outcome.detail, run->message.value_or(""), std::nullopt, outcome.took);
        const std::lock_guard lock(mutex);
        std::optional<Timestamp> due = outcome.update.next_run_at;
        if (run->end_time && outcome.update.next_run_in) due = *run->end_time + *outcome.update.next_run_in;
        if (due && *due > now) known_due.push(*due);
        finished.push_back(id);
        continue;
      }
      const Error& error = *results[i].error;
      const std::string what = std::string(completed                                      ? "complete_run: "
                                           : outcome.update.status == Status::interrupted ? "cancel_run: "
                                                                                          : "fail_run: ") +
                               error.what();
      const auto code = error.code();
      if (outcome.retried && code == ErrorCode::invalid_job_run_state && stored_before(repo, outcome)) {
        // The earlier attempt was committed, its answer lost (a connection
        // that broke after the commit): the outcome is stored.
        emit(ended_kind, name, id, outcome.detail, outcome.update.message.value_or(""), std::nullopt, outcome.took);
        finished.push_back(id);
        continue;
      }
      if (code == ErrorCode::invalid_job_run_state) {
        // Ended elsewhere (a peer, an operator) while the handler ran.
        note_work_end(*outcome.local, outcome.work_end);
      }
      if (transient(code) && !last) {
        if (!outcome.retried)
          emit(SchedulerEvent::Kind::error, name, id, what + "; retrying until it is stored", {}, code);
        outcome.retried = true;
        retry.push_back(std::move(outcome));
      } else if (completed && !transient(code) && code != ErrorCode::record_not_found &&
                 code != ErrorCode::invalid_job_run_state) {
        // The store refused this completion itself: the run must not stay
        // running, so it fails (and the job backs off).
        emit(SchedulerEvent::Kind::error, name, id, what + "; storing the run as failed", {}, code);
        outcome.update.status = Status::failed;
        outcome.update.next_run_in.reset();
        outcome.update.next_run_at.reset();
        outcome.detail = "its completion could not be stored: " + std::string(error.what());
        outcome.update.message = outcome.detail;
        std::string how;
        set_retry(outcome.update, *outcome.local, how);
        retry.push_back(std::move(outcome));
      } else {
        emit(SchedulerEvent::Kind::error, name, id, what + (last && transient(code) ? "; not stored before stop" : ""),
             {}, code);
        finished.push_back(id);
      }
    }
    if (!finished.empty()) {
      {
        const std::lock_guard lock(mutex);
        for (const auto& id : finished) executing.erase(id);
        wake_requested = true;  // their jobs may be due again
      }
      run_finished.notify_all();
      claim_wake.notify_all();
    }
    return retry;
  }

  // Whether the run is final in the status this outcome gives it (only its
  // owner, this server, completes or fails a run; peers only interrupt).
  bool stored_before(Repository& repo, const Outcome& outcome) noexcept {
    try {
      const auto run = repo.lookup_run(outcome.local->run_id());
      return run && run->status == outcome.update.status;
    } catch (...) {
      return false;
    }
  }

  // --- the monitor: heartbeats and peers' stale runs ------------------------

  void monitor_loop() {
    Repository repo = repository();
    std::unique_lock lock(mutex);
    while (!loops_stopping) {
      monitor_tick.store(SteadyClock::now().time_since_epoch().count());
      lock.unlock();
      guarded("heartbeat", [&] { heartbeat(repo); });
      guarded("record_server", [&] {
        record_server(repo);
        store_answered.store(SteadyClock::now().time_since_epoch().count());
      });
      guarded("interrupt_runs", [&] { interrupt_stale(repo); });
      lock.lock();
      loops_wake.wait_for(lock, options.monitor_interval, [&] { return loops_stopping; });
    }
  }

  // Interrupts the runs of servers that stopped reporting. A run is stale
  // when its update_time is older than the threshold by the database's
  // clock and this process has read that same update_time for the threshold
  // on its own monotonic clock: a step of the database's clock (NTP) alone
  // never makes a live run look stale. Runs whose handlers run here are
  // never interrupted here.
  void interrupt_stale(Repository& repo) {
    const auto runs = repo.list_runs({.status = Status::running, .limit = -1});
    const auto read_at = SteadyClock::now();  // no update seen now can be younger
    std::set<std::string> local;
    {
      const std::lock_guard lock(mutex);
      for (const auto& [id, run] : executing) {
        if (!run->returned()) local.insert(id);
      }
    }
    std::map<std::string, Observation> now_observed;
    std::vector<ObservedRun> stale;
    for (const auto& run : runs) {
      const auto before = observed.find(run.private_id);
      const Observation seen = before != observed.end() && before->second.update_time == run.update_time
                                   ? before->second
                                   : Observation{run.update_time, read_at};
      now_observed.emplace(run.private_id, seen);
      if (read_at - seen.since >= options.interrupt_threshold && local.count(run.private_id) == 0) {
        stale.push_back({run.private_id, run.update_time});
      }
    }
    observed = std::move(now_observed);
    if (stale.empty()) return;
    const auto interrupted =
        repo.interrupt_runs(options.interrupt_threshold, {.message = "its server stopped reporting (no heartbeat for " +
                                                                     duration_text(options.interrupt_threshold) + ")",
                                                          .runs = std::move(stale)});
    for (const auto& run : interrupted) {
      observed.erase(run.private_id);
      emit(SchedulerEvent::Kind::interrupted_peer, run.job_name, run.private_id, "no heartbeat from " + run.server_id,
           run.message.value_or(""));
    }
    if (!interrupted.empty()) wake_claimer();
  }

  // One transaction refreshes every local run that has not ended; a run
  // that is gone or final in the store was interrupted by a peer.
  void heartbeat(Repository& repo) {
    std::vector<std::shared_ptr<LocalRun>> live;
    {
      const std::lock_guard lock(mutex);
      for (const auto& [id, local] : executing) {
        if (!local->ended) live.push_back(local);
      }
    }
    if (live.empty()) return;
    std::vector<RunUpdate> updates;
    for (const auto& local : live) {
      const auto [completed, total] = local->counts();
      updates.push_back(RunUpdate{.run_id = local->run_id(), .completed_count = completed, .total_count = total});
    }
    const auto sent = SteadyClock::now();
    const auto results = repo.update_runs(updates);  // what it throws, the monitor reports
    const auto received = SteadyClock::now();
    for (std::size_t i = 0; i < live.size(); ++i) {
      const auto& local = live[i];
      if (results[i].run) {
        local->heartbeat_sent_at(sent);
        local->anchor(results[i].run->update_time, received);
        if (results[i].run->cancel_requested && !local->cancelled()) {
          local->cancel(CancelReason::operator_request);
          emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(), "cancelled by operator");
        }
      } else if (const auto code = results[i].error->code();
                 code == ErrorCode::record_not_found || code == ErrorCode::invalid_job_run_state) {
        local->cancel(CancelReason::interrupted);
      } else {
        emit(SchedulerEvent::Kind::error, local->job_name(), local->run_id(),
             std::string("heartbeat: ") + results[i].error->what(), {}, results[i].error->code());
      }
    }
  }

  // --- what the cluster knows of this server ---------------------------------

  // This server's proof of life, every monitor interval, and after each
  // (un)registration the jobs it serves with their fingerprints; then the
  // servers that define a job otherwise are looked for.
  void record_server(Repository& repo) {
    std::optional<std::vector<ServedJob>> served;
    int version = 0;
    {
      const std::lock_guard lock(mutex);
      version = jobs_version;
      if (version != recorded_version) {
        served.emplace();
        for (const auto& [name, job] : jobs) served->push_back(ServedJob{name, job.fingerprint});
      }
    }
    const auto lease = repo.record_server(server_id, options.interrupt_threshold,
                                          {.instance = identity.first, .address = identity.second, .jobs = served});
    if (!lease.held) {
      // Another instance took the id over after this one's records had
      // failed for the threshold: its runs here go on (heartbeated), but it
      // claims nothing more.
      if (!lease_lost.exchange(true)) {
        emit(SchedulerEvent::Kind::error, "", "",
             "record_server: server id " + quote_text(server_id) + " was taken over by " +
                 (lease.address.empty() ? std::string("another server") : lease.address) +
                 " while this server could not renew its lease: this server claims no more runs; restart it "
                 "with an id of its own");
      }
      return;
    }
    const bool check = served.has_value() || !last_drift_check ||
                       SteadyClock::now() - *last_drift_check >= options.interrupt_threshold;
    {
      const std::lock_guard lock(mutex);
      if (served) recorded_version = version;
    }
    if (check) check_drift(repo);
  }

  // --- the server id's lease -------------------------------------------------

  // Takes the lease of the server id for this instance (see start()).
  // Returns the leftover runs of this server id that may be interrupted now:
  // empty (nullopt) for all of them, when their owner is known to be gone;
  // else those observed unchanged while waiting. Throws not_unique when the
  // holder proved alive; returns an empty list with stop_requested set when
  // stop() came meanwhile.
  std::optional<std::vector<ObservedRun>> take_lease(Repository& repo) {
    const auto record = [&](bool take_over) {
      return repo.record_server(server_id, options.interrupt_threshold,
                                {.instance = identity.first, .address = identity.second, .take_over = take_over});
    };
    for (;;) {
      auto lease = record(false);
      if (lease.held) return std::nullopt;  // free: its last holder stopped cleanly, or none
      const auto holder = lease.address.empty() ? std::string("an unknown server") : lease.address;
      if (instance_gone(lease.instance)) {
        // A process of this machine that is gone: its handlers with it.
        if (!record(true).held) continue;
        emit(SchedulerEvent::Kind::warning, "", "",
             "start: server id " + quote_text(server_id) + " was held by " + holder +
                 ", a process of this machine that is gone: taken over");
        return std::nullopt;
      }
      emit(SchedulerEvent::Kind::warning, "", "",
           "start: server id " + quote_text(server_id) + " is held by " + holder + ": waiting up to " +
               duration_text(options.interrupt_threshold) + " for it to renew its lease (then it is alive) or not");
      // The holder's runs as they are now: a heartbeat of any proves it alive.
      const auto own_runs = [&] {
        std::map<std::string, Timestamp> runs;
        for (const auto& run : repo.list_runs({.status = Status::running, .limit = -1})) {
          if (run.server_id == server_id) runs.emplace(run.private_id, run.update_time);
        }
        return runs;
      };
      const auto runs = own_runs();
      const auto since = SteadyClock::now();
      for (;;) {
        {
          std::unique_lock lock(mutex);
          const auto pause = std::min<microseconds>(options.monitor_interval, options.interrupt_threshold / 8);
          if (loops_wake.wait_for(lock, pause, [&] { return stop_requested; })) return std::vector<ObservedRun>{};
        }
        const auto now_lease = record(false);
        if (now_lease.held) return std::nullopt;  // it stopped cleanly meanwhile
        const bool renewed = now_lease.instance != lease.instance || now_lease.seen_time != lease.seen_time;
        bool heartbeat = false;
        if (!renewed) {
          const auto now_runs = own_runs();
          for (const auto& [id, updated] : now_runs) {
            const auto found = runs.find(id);
            heartbeat = heartbeat || found == runs.end() || found->second != updated;
          }
        }
        if (renewed || heartbeat) {
          throw Error(ErrorCode::not_unique,
                      "start: server id " + quote_text(server_id) +
                          " is in use by a live server: " + (now_lease.address.empty() ? holder : now_lease.address) +
                          " (it " + (renewed ? "renewed its lease" : "heartbeated a run") +
                          " while this one waited); give every server an id of its own");
        }
        if (instance_gone(lease.instance) || SteadyClock::now() - since >= options.interrupt_threshold) {
          if (!record(true).held) break;  // taken by a third meanwhile: look again
          emit(SchedulerEvent::Kind::warning, "", "",
               "start: server id " + quote_text(server_id) + " taken over from " + holder + ", silent for " +
                   duration_text(std::chrono::duration_cast<microseconds>(SteadyClock::now() - since)));
          if (instance_gone(lease.instance)) return std::nullopt;
          std::vector<ObservedRun> observed_runs;
          for (const auto& [id, updated] : runs) observed_runs.push_back({id, updated});
          return observed_runs;
        }
      }
    }
  }

  // A `warning` event, once per job, when live servers serve a job of this
  // server with another definition.
  void check_drift(Repository& repo) {
    last_drift_check = SteadyClock::now();
    std::map<std::string, std::string, std::less<>> mine;
    {
      const std::lock_guard lock(mutex);
      for (const auto& [name, job] : jobs) mine.emplace(name, job.fingerprint);
    }
    std::map<std::string, std::vector<std::string>, std::less<>> others;  // job -> servers that differ
    for (const auto& serving : repo.list_servings()) {
      const auto found = mine.find(serving.job_name);
      if (found == mine.end() || !serving.live || serving.server_id == server_id) continue;
      if (serving.fingerprint != found->second) others[serving.job_name].push_back(serving.server_id);
    }
    // Jobs no longer registered here are forgotten (the monitor loop alone
    // touches warned_drift, after start()).
    std::erase_if(warned_drift, [&](const std::string& name) { return mine.count(name) == 0; });
    for (const auto& [name, fingerprint] : mine) {
      const auto differ = others.find(name);
      if (differ == others.end()) {
        warned_drift.erase(name);
        continue;
      }
      if (!warned_drift.insert(name).second) continue;
      std::string servers;
      for (const auto& id : differ->second) servers += (servers.empty() ? "" : ", ") + quote_text(id);
      emit(SchedulerEvent::Kind::warning, name, "",
           "servers " + servers +
               " define this job otherwise than this server: their runs and this server's will "
               "alternate (see jobctl jobs)");
    }
  }

  // --- fencing and deadlines: no I/O here, so a hung database cannot delay them

  void fence_loop() {
    const auto period = fence_check_period(options);
    const auto fence = fence_after(options);
    // A handler still running this long after its run's last successful
    // heartbeat may meet a peer's run of the job (the fence rule).
    const auto lapse = fenced_run_ends_after(options);
    std::unique_lock lock(mutex);
    while (!loops_stopping) {
      fence_tick.store(SteadyClock::now().time_since_epoch().count());
      std::vector<std::shared_ptr<LocalRun>> running;
      for (const auto& [id, local] : executing) {
        if (!local->ended) running.push_back(local);
      }
      lock.unlock();
      const auto now = SteadyClock::now();
      auto next = now + period;
      for (const auto& local : running) {
        if (local->returned()) continue;
        if (!local->cancelled() && local->deadline() <= now) local->cancel(CancelReason::deadline);
        if (local->cancel_reason() == CancelReason::deadline && !local->deadline_reported) {
          local->deadline_reported = true;
          emit(SchedulerEvent::Kind::error, local->job_name(), local->run_id(),
               "timed out after " + duration_text(local->timeout()) +
                   ": the handler is cancelled, and its run fails when it returns");
        }
        if (!local->cancelled() && now - local->last_heartbeat() >= fence) {
          local->cancel(CancelReason::fenced);
          emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(),
               "fenced: no successful heartbeat for 3/4 of the interrupt threshold");
        }
        const auto lease_end = local->last_heartbeat() + lapse;
        if (local->started() && now >= lease_end && !local->late_reported) {
          overrun(*local, now - local->last_heartbeat());
        }
        // Wake exactly when the next of this run's moments comes.
        if (!local->cancelled()) next = std::min({next, local->deadline(), local->last_heartbeat() + fence});
        if (local->started() && !local->late_reported) next = std::min(next, lease_end);
      }
      lock.lock();
      loops_wake.wait_until(lock, std::max(next, now), [&] { return loops_stopping; });
    }
  }

  // A handler still runs although its run's lease lapsed (fence_overrun).
  void overrun(LocalRun& local, SteadyClock::duration since) noexcept {
    const auto since_us = std::chrono::duration_cast<microseconds>(since);
    if (options.fence_overrun == FenceOverrun::end_process) {
      try {
        const std::string line = "jobrepo: Scheduler " + quote_text(server_id) +
                                 ": ending the process (SchedulerOptions::fence_overrun): the handler of job " +
                                 quote_text(local.job_name()) + " run " + local.run_id() + " still runs " +
                                 duration_text(since_us) +
                                 " after the run's last successful heartbeat, and another server may take the job " +
                                 duration_text(options.interrupt_threshold) + " after it\n";
        (void)!::write(STDERR_FILENO, line.data(), line.size());
      } catch (...) {
        constexpr char line[] = "jobrepo: Scheduler: ending the process: a handler outlived its run's lease\n";
        (void)!::write(STDERR_FILENO, line, sizeof line - 1);
      }
      // exit_group directly: no exit handler, no sanitizer's interceptor,
      // nothing between here and the end of every thread.
      ::syscall(SYS_exit_group, 70);
      ::_exit(70);
    }
    local.late_reported = true;
    emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(),
         "the handler still runs " + duration_text(since_us) + " after the run's last successful heartbeat (" +
             std::string(to_string(local.cancel_reason())) + ", grace " + duration_text(options.grace) +
             "): another server may run the job at the same time");
  }
};

Scheduler::Scheduler(std::string server_id, Store& store, SchedulerOptions options) {
  // The rule of run_jobs: a server id its claims would be refused for must
  // not start a claim loop that fails forever.
  if (const auto problem = text_problem(TextKind::server_id, server_id)) {
    throw Error(problem->code, "Scheduler: server_id " + problem->message);
  }
  if (const auto problem = scheduler_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "Scheduler: " + problem);
  }
  // The Repository's rule for its plugin id, named as the caller knows it.
  if (const auto problem = text_problem(TextKind::plugin_id, options.plugin_id)) {
    throw Error(problem->code, "Scheduler: plugin_id " + problem->message);
  }
  state_ = std::make_unique<State>(std::move(server_id), store, std::move(options));
}

Scheduler::~Scheduler() {
  try {
    state_->halt(std::nullopt);
  } catch (...) {
    // halt() reports what fails as events; nothing may leave a destructor.
  }
}

const std::string& Scheduler::server_id() const noexcept { return state_->server_id; }

void Scheduler::register_job(std::shared_ptr<JobHandler> handler, RegisterJobOptions options) {
  if (!handler) throw Error(ErrorCode::invalid_parameter, "register_job: missing handler");
  auto& s = *state_;
  const std::string name = handler->name();
  if (options.timeout.count() < 0 || options.timeout > max_offset) {
    throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) + ": timeout " +
                                                  duration_text(options.timeout) + " is not between 0 and 100 years");
  }
  if (options.every && (options.every->count() < 0 || *options.every > max_offset)) {
    throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) + ": every " +
                                                  duration_text(*options.every) + " is not between 0 and 100 years");
  }
  const BackoffOptions backoff = options.backoff.value_or(s.options.backoff);
  if (const auto problem = backoff_problem(backoff); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) + ": " + problem);
  }
  {
    const std::lock_guard lock(s.mutex);
    if (!options.replace && s.jobs.count(name) != 0) {
      throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) +
                                                    " is registered already (RegisterJobOptions::replace replaces it)");
    }
  }
  try {
    CreateJobOptions job{.next_run_in = options.next_run_in, .schedule = options.schedule_text};
    if (options.schedule) {
      if (options.next_run_in.count() != 0) {
        throw Error(ErrorCode::invalid_parameter,
                    "register_job: " + quote_text(name) + ": give a calendar schedule or next_run_in, not both");
      }
      // The first run: the next fire time after now, as the database tells it.
      auto repo = s.repository();
      const auto first = options.schedule->next_after(repo.database_time());
      job.next_run_at = std::min(first.value_or(latest_time), latest_time);
      if (job.schedule.empty()) {
        job.schedule = options.schedule->to_string();
        if (options.misfire == Misfire::skip) job.schedule += ", missed fire times skipped";
      }
      // A job that was scheduled otherwise until now (another expression, a
      // duration) is due at this schedule's next fire time, not at the old one.
      const auto existing = repo.lookup_job(name);
      repo.ensure_job(name, handler->description(), job);
      if (existing && existing->schedule != job.schedule) repo.update_job_next_run(name, *job.next_run_at);
    } else {
      s.repository().ensure_job(name, handler->description(), job);
    }
  } catch (const Error& e) {
    throw for_operation(e, "register_job");
  }
  std::string definition = options.definition;
  if (definition.empty()) {
    definition = "schedule=" + (options.schedule ? options.schedule->to_string() : std::string()) +
                 ";misfire=" + (options.misfire == Misfire::skip ? "skip" : "run_once") +
                 ";every=" + (options.every ? duration_text(*options.every) : std::string()) +
                 ";timeout=" + duration_text(options.timeout) + ";backoff=" + duration_text(backoff.initial) + "," +
                 duration_text(backoff.max) + "," + std::to_string(backoff.multiplier) + "," +
                 std::to_string(backoff.max_attempts);
  }
  {
    const std::lock_guard lock(s.mutex);
    s.jobs[name] = State::Registered{std::move(handler),
                                     options.timeout,
                                     options.schedule,
                                     options.misfire,
                                     options.every,
                                     backoff,
                                     definition_fingerprint(definition)};
    ++s.jobs_version;
  }
  s.wake_claimer();
}

bool Scheduler::unregister_job(std::string_view job_name) {
  auto& s = *state_;
  const std::lock_guard lock(s.mutex);
  const auto found = s.jobs.find(job_name);
  if (found == s.jobs.end()) return false;
  s.jobs.erase(found);
  ++s.jobs_version;
  return true;
}

void Scheduler::start() {
  auto& s = *state_;
  {
    const std::lock_guard lock(s.mutex);
    if (s.started || s.starting || s.stop_requested) return;
    s.starting = true;
  }
  struct Starting {
    State& s;
    explicit Starting(State& state) : s(state) {}
    Starting(const Starting&) = delete;
    Starting& operator=(const Starting&) = delete;
    ~Starting() {
      const std::lock_guard lock(s.mutex);
      s.starting = false;
    }
  } starting{s};
  auto repo = s.repository();
  // The server id is this instance's from now on (or start() throws).
  const auto leftovers = s.take_lease(repo);
  {
    const std::lock_guard lock(s.mutex);
    if (s.stop_requested) {
      s.guarded("stop", [&] { repo.remove_server(s.server_id, s.identity.first); });
      return;
    }
  }
  // Runs this server id left behind (a crash, or a stop whose outcomes
  // could not be stored) whose work is known to be over.
  InterruptRunsOptions left{.server_id = s.server_id,
                            .message = "left over by its server, which stopped without ending it (restarted)",
                            .runs = leftovers};
  for (const auto& run : repo.interrupt_runs(leftovers ? s.options.interrupt_threshold : microseconds(0), left)) {
    s.emit(SchedulerEvent::Kind::interrupted_peer, run.job_name, run.private_id, "left over by this server",
           run.message.value_or(""));
  }
  // The cluster learns what this server serves before it claims anything.
  s.guarded("record_server", [&] { s.record_server(repo); });
  // Changes elsewhere that make jobs due wake the claim loop at once, when
  // the store can push them; otherwise it polls every claim_interval.
  auto subscription = s.store.subscribe_due(s.options.plugin_id, [&s] { s.wake_claimer(); });
  const std::lock_guard lock(s.mutex);
  s.subscription = std::move(subscription);
  s.started = true;
  for (int i = 0; i < s.options.worker_threads; ++i) s.workers.emplace_back([&s] { s.worker_loop(); });
  s.writer = std::thread([&s] { s.writer_loop(); });
  s.monitor = std::thread([&s] { s.monitor_loop(); });
  s.fence = std::thread([&s] { s.fence_loop(); });
  s.claimer = std::thread([&s] { s.claim_loop(); });
}

bool Scheduler::stop() { return state_->halt(state_->options.stop_timeout); }

void Scheduler::run_now(std::string_view job_name) {
  try {
    state_->repository().run_now(job_name);
  } catch (const Error& e) {
    throw for_operation(e, "run_now");
  }
  state_->wake_claimer();
}

SchedulerHealth Scheduler::health() const {
  const auto& s = *state_;
  const auto at = [](const std::atomic<SteadyClock::rep>& tick) {
    return SteadyClock::time_point(SteadyClock::duration(tick.load()));
  };
  SchedulerHealth health;
  {
    const std::lock_guard lock(s.mutex);
    health.started = s.started;
    health.stopping = s.stopping;
  }
  health.lease_lost = s.lease_lost.load();
  health.claim_loop = at(s.claim_tick);
  health.monitor_loop = at(s.monitor_tick);
  health.fence_loop = at(s.fence_tick);
  if (s.store_answered.load() != 0) health.store_answered = at(s.store_answered);
  return health;
}

std::vector<ExecutingRun> Scheduler::executing() const {
  std::vector<ExecutingRun> out;
  for (const auto& local : state_->local_runs()) {
    const auto [completed, total] = local->counts();
    out.push_back(ExecutingRun{local->run_id(), local->job_name(), local->run().create_time, completed, total,
                               local->cancel_reason()});
  }
  return out;
}

}  // namespace jobrepo
