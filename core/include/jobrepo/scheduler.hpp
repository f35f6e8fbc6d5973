// jobrepo: Scheduler, the runtime that runs registered jobs on this server,
// one instance per job across the cluster.
//
// Register a JobHandler per job on every server; start() the Scheduler. It
// claims due jobs that this server can run, runs each on a worker thread,
// reports progress as the run's heartbeat, completes or fails the run,
// interrupts runs of servers that stopped reporting, and cancels a local run
// that another server interrupted or that it could not keep alive itself.
// See docs/scheduler.md (usage) and docs/architecture.md (timing).
//
// The promise: a run this server owns is recorded ended only once its
// handler has returned. stop(), a timeout or a cancel asks the handler to
// stop; until it returns, its run stays running here and is heartbeated,
// so no peer takes the job. A handler that cannot be kept alive (its
// heartbeats fail until a peer may take the job) ends the process unless
// SchedulerOptions::fence_overrun says otherwise.
//
// Thread-safety: every public method may be called from any thread.
// Handlers run on the scheduler's worker threads; on_event is called from
// several scheduler threads, possibly at the same time.
//
// Lifetime: the Store must outlive the Scheduler (the destructor stops it
// and waits for every handler).
//
// No scheduler thread ends because of an exception: whatever a store, a
// handler or an observer throws is reported as an error event (or fails the
// run, for a handler).
#pragma once

#include <jobrepo/cron.hpp>
#include <jobrepo/repository.hpp>
#include <jobrepo/runtime.hpp>
#include <jobrepo/store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace jobrepo {

// Why a running handler was asked to stop.
enum class CancelReason {
  none,
  stopping,          // Scheduler::stop()
  interrupted,       // the run is final or gone in the store (interrupted by a peer)
  fenced,            // heartbeats failed for too long: a peer may soon take the job
  deadline,          // the job's timeout passed
  operator_request,  // an operator cancelled the run (Repository::cancel_run)
};
std::string_view to_string(CancelReason reason) noexcept;

// Thrown by JobContext::throw_if_cancelled().
class Cancelled : public std::runtime_error {
 public:
  explicit Cancelled(CancelReason reason);
  CancelReason reason() const noexcept { return reason_; }

 private:
  CancelReason reason_;
};

// What a handler sees of its run. Owned by the scheduler; valid during run().
class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual const std::string& run_id() const = 0;
  virtual const std::string& job_name() const = 0;
  // When the run is cancelled for its timeout (time_point::max() when none).
  virtual std::chrono::steady_clock::time_point deadline() const = 0;
  // When the run is fenced (cancelled, see SchedulerOptions::grace) unless a
  // heartbeat succeeds before: 3/4 of interrupt_threshold after the last
  // successful one. Moves on with every heartbeat. Work that the handler
  // runs outside this process (a child process) must be stopped by then,
  // and gone within grace, even when this process hangs.
  virtual std::chrono::steady_clock::time_point fence_deadline() const = 0;
  // Requested when the handler should stop; check it, or wait on it.
  virtual std::stop_token stop_token() const = 0;
  virtual CancelReason cancel_reason() const = 0;
  bool cancelled() const { return stop_token().stop_requested(); }
  // Throws jobrepo::Cancelled when cancelled: the way for a handler to stop
  // early (returning normally means "done": the run is completed).
  void throw_if_cancelled() const;
  // Sleeps for `duration` or until cancelled; false when cancelled.
  virtual bool sleep_for(std::chrono::microseconds duration) const = 0;
  // Records progress; the scheduler stores it with the next heartbeat.
  // Throws invalid_parameter for negative counts or completed > total
  // (progress_problem).
  virtual void report_progress(std::int64_t completed, std::int64_t total) = 0;
  // The run's arguments (Run::payload): the JSON text given to run_now for
  // this run, byte for byte, or empty (a scheduled run, a retry, a run_now
  // without one). Valid while run() runs. Not pure, so that contexts written
  // before it existed still compile: the default has no arguments.
  virtual const std::optional<std::string>& payload() const;
};

// Why report_progress refuses the counts, in one line ("counts 5/3 must be
// non-negative with completed <= total"), or empty.
std::string progress_problem(std::int64_t completed, std::int64_t total);

// The code of one job.
class JobHandler {
 public:
  virtual ~JobHandler() = default;
  virtual std::string name() const = 0;         // 1-127 characters
  virtual std::string description() const = 0;  // 1-1023 characters
  // Does the work. Returns when the job should run next (from the end of this
  // run), at most max_offset (100 years) either way: microseconds::max()
  // means "not again" (100 years). Throwing fails the run; the job is retried
  // after a back-off.
  virtual std::chrono::microseconds run(JobContext& context) = 0;
};

// A JobHandler from a name, a description and a function.
std::shared_ptr<JobHandler> make_job(std::string name, std::string description,
                                     std::function<std::chrono::microseconds(JobContext&)> run);

struct BackoffOptions {
  std::chrono::microseconds initial = std::chrono::seconds(1);  // after the first failure
  std::chrono::microseconds max = std::chrono::minutes(5);
  double multiplier = 2.0;
  double jitter = 0.2;  // +-20% at random, so that servers do not retry in step
  // After this many failed attempts in a row the job is not retried: it
  // waits for its next regular time (RegisterJobOptions::every or its
  // calendar schedule; without either, backoff.max), and a failure there
  // starts a new round of retries. 0: no limit.
  int max_attempts = 0;
  // After max_attempts failed attempts in a row, the job gives up: it is
  // due `never` (repository.hpp; jobrepo::due_state says DueState::gave_up)
  // until run_now asks again (an operator, the API), which starts a new
  // round. Needs max_attempts > 0. An on-demand job always gives up.
  bool give_up = false;
};

struct RegisterJobOptions {
  std::chrono::microseconds next_run_in{0};  // first run, when the job is new
  std::chrono::microseconds timeout{0};      // 0: none; else the run is cancelled after it
  // A calendar schedule: the job runs at its fire times, first at the next
  // one after registration (when the job is new; next_run_in must be 0), and
  // the handler's return value is ignored. After a run the job is due at the
  // next fire time after the run's start (the claim's database time), or,
  // with Misfire::skip, at the next one still to come; a failed run is
  // retried after the back-off, but never later than that next fire time.
  std::optional<CronSchedule> schedule{};
  Misfire misfire = Misfire::run_once;
  // Job::schedule, for people; empty: the calendar schedule's own words.
  std::string schedule_text{};
  // Replace a job registered here already (its handler and timeout, for
  // the runs that start from then on); without it that is invalid_parameter.
  bool replace = false;
  // The job's regular interval, when it has one: its next time when a run
  // ends without the handler's answer (cancelled by an operator) or after
  // backoff.max_attempts failures. The handler's return value still sets
  // the next time after a run that returns.
  std::optional<std::chrono::microseconds> every{};
  // This job's back-off after failed runs; empty: SchedulerOptions::backoff.
  // The failures are counted in the store (Job::consecutive_failures), so
  // every server backs off the same.
  std::optional<BackoffOptions> backoff{};
  // How this server runs the job (its command, schedule, timeout...), as
  // text: servers whose definitions of one job differ are reported (a
  // `warning` event, once) and shown by jobctl jobs. Empty: the schedule,
  // timeout and back-off given here.
  std::string definition{};
  // The job runs only when asked (run_now, jobctl job run-now): it is due
  // `never` otherwise, after every run too (a failed one is retried after
  // the back-off until max_attempts, then it gives up). Not with a calendar
  // schedule or `every`; the handler's answer is ignored. A job registered
  // under another schedule (Job::schedule) than its stored one is due at
  // that schedule's first time: on demand, `never`; a calendar schedule, its
  // next fire time; otherwise, when it was due `never` (on demand, or given
  // up), next_run_in from now.
  bool on_demand = false;
};

// Something that happened, for logs and metrics (called on scheduler threads).
struct SchedulerEvent {
  // skipped: a job with Misfire::skip missed a fire time, which is dropped.
  // interrupted: a run this server ended without a result (cancelled by an
  // operator, its server stopping, fenced). warning: something an operator
  // should know that is not an error (servers disagree about a job's
  // definition; start() waits for the server id's lease). error: a store
  // call failed, a job's timeout passed, stop() left handlers running, a
  // handler outlived its run's lease (FenceOverrun::report), another
  // instance took the server id over.
  enum class Kind {
    claimed,
    started,
    completed,
    failed,
    cancelled,
    interrupted_peer,
    error,
    skipped,
    interrupted,
    warning
  };
  Kind kind;
  std::string job_name;  // empty for errors not tied to a job
  std::string run_id;
  std::string detail;  // error message, cancel reason, duration...
  // failed, interrupted, interrupted_peer: the run's message as stored
  // (Run::message: "exit 7", "timed out after 1m", "cancelled by operator").
  std::string message{};
  // completed, failed, interrupted: how long the handler ran (from its start
  // on a worker to its return), for a run-duration histogram.
  std::chrono::microseconds duration{0};
  // error: the code of the jobrepo::Error behind it, when there is one (a
  // store call that failed: unavailable, busy...).
  std::optional<ErrorCode> code{};
  // completed, failed, interrupted (of this server's runs): the run's
  // attempt (Run::attempt: 1 + the job's failures in a row when it was
  // claimed), and why it was cancelled, when it was (an operator's cancel,
  // a timeout, stop()...); 0 and none otherwise.
  std::int64_t attempt = 0;
  CancelReason cancel_reason = CancelReason::none;
};
std::string_view to_string(SchedulerEvent::Kind kind) noexcept;

// The fence rule's allowance for a cancelled run's work to end once its
// grace is over: signals delivered and processes gone, or a handler seeing
// its stop token and returning.
inline constexpr std::chrono::milliseconds kill_allowance{100};

// What the scheduler does with a handler that is still running when its
// run's lease lapses: the last successful heartbeat was fenced after + grace
// + kill_allowance ago (see SchedulerOptions::grace), so a peer may take the
// job at any moment. A thread cannot be killed.
enum class FenceOverrun {
  // The process ends itself at once (one line on stderr, then _exit(70)),
  // as a failed liveness probe would end it: the handler's work cannot
  // outlive the run's lease, and the promise holds.
  end_process,
  // An error event, and the handler runs on: a peer may run the job at the
  // same time. For applications whose handlers are fenced otherwise (jobctl
  // serve: each command's supervisor ends it at the lease on its own) or
  // that accept the risk.
  report,
};

struct SchedulerOptions {
  std::string plugin_id = std::string(default_plugin_id);
  int worker_threads = 4;
  int claim_limit = 0;  // per claim; 0: as many as free workers and queue places (>= 0)
  // Claimed runs that may wait here for a free worker (>= 0). With short
  // handlers a claim then takes up to worker_threads + local_queue runs, so
  // that a few workers never sit idle while the next claim is on its way.
  // Queued runs are heartbeated like running ones; stop() hands those not
  // started back at once (interrupted, so that a peer may take them). A
  // handler's timeout counts from its start. 0: claims only for free workers.
  int local_queue = 0;
  // The longest the claim loop sleeps; it wakes earlier when a known job
  // becomes due, on run_now(), and when a worker becomes free.
  std::chrono::microseconds claim_interval = std::chrono::seconds(1);
  // Heartbeats of local runs and interruption of stale runs, this often.
  std::chrono::microseconds monitor_interval = std::chrono::seconds(1);
  // A run not updated for this long is interrupted by any server. A local run
  // whose heartbeats failed for 3/4 of it is cancelled here first (fencing).
  std::chrono::microseconds interrupt_threshold = std::chrono::seconds(30);
  // How long a cancelled handler may take to end its work (for jobctl
  // serve: from SIGTERM to SIGKILL). A fenced run must be over before a peer
  // may take its job, so the scheduler requires
  //   3/4 interrupt_threshold + fence check + grace + kill_allowance
  //     < interrupt_threshold,
  // the fence check being every min(monitor_interval / 2, 100 ms). A handler
  // that goes on longer after cancellation may overlap the peer's run: that
  // is the handler's choice (see docs/scheduler.md).
  std::chrono::microseconds grace{0};
  // How long stop() waits for cancelled handlers (their runs stay running
  // and heartbeated while they run, however long; see stop()).
  std::chrono::microseconds stop_timeout = std::chrono::seconds(10);
  // A handler still running when its run's lease lapses (FenceOverrun).
  FenceOverrun fence_overrun = FenceOverrun::end_process;
  // The clocks, waits and threads (runtime.hpp); nullptr: system_runtime().
  // A test passes a ManualRuntime and moves time itself. Must outlive the
  // Scheduler.
  Runtime* runtime = nullptr;
  BackoffOptions backoff{};
  std::function<void(const SchedulerEvent&)> on_event{};
};

// A run executing on this server.
struct ExecutingRun {
  std::string run_id;
  std::string job_name;
  Timestamp started;
  std::int64_t completed_count = 0;
  std::int64_t total_count = 0;
  CancelReason cancel_reason = CancelReason::none;
};

// Why `options` cannot run a Scheduler, in one line naming the options and
// their values, or empty: worker_threads < 1, an interval not in
// (0, 100 years], a negative claim_limit, local_queue, stop_timeout or grace, back-off
// settings out of range (backoff_problem()), monitor_interval > interrupt_threshold / 4, or
// grace breaking the fence rule (see SchedulerOptions::grace).
std::string scheduler_options_problem(const SchedulerOptions& options);

// Why `backoff` cannot be used, in one line naming the setting (after
// `prefix`, e.g. "backoff."), or empty: initial <= max <= 100 years, 1 <=
// multiplier <= 1000, 0 <= jitter < 1, max_attempts >= 0, and give_up only
// with max_attempts > 0.
std::string backoff_problem(const BackoffOptions& backoff, std::string_view prefix = "backoff.");

// Where a Scheduler is in its life (see Scheduler, "Lifecycle").
enum class SchedulerPhase { idle, starting, running, stopping, stopped };
std::string_view to_string(SchedulerPhase phase) noexcept;

// How the scheduler's loops are doing (Scheduler::health()), for health checks.
struct SchedulerHealth {
  SchedulerPhase phase = SchedulerPhase::idle;
  bool started = false;   // phase running or stopping
  bool stopping = false;  // phase stopping
  // Another instance took this server's id over (its records failed for
  // longer than interrupt_threshold): this server claims nothing more.
  bool lease_lost = false;
  // When each loop last went round, on the steady clock: the claim loop at
  // least every claim_interval (unless a store call hangs), the monitor
  // loop every monitor_interval, the fence loop every min(monitor_interval
  // / 2, 100 ms).
  std::chrono::steady_clock::time_point claim_loop{}, monitor_loop{}, fence_loop{};
  // When the monitor loop's last store call succeeded (its proof of life,
  // every monitor_interval); empty before the first.
  std::optional<std::chrono::steady_clock::time_point> store_answered{};
  // The writer's store call of ended runs' outcomes, while one is in
  // flight: when it began and how many outcomes it stores.
  std::optional<std::chrono::steady_clock::time_point> write_call{};
  std::size_t write_call_outcomes = 0;
  // Outcomes of handlers that returned here, not stored yet.
  std::size_t outcomes_waiting = 0;
  // Writer calls that ran past max(1 s, monitor_interval), since start
  // (each also a `warning` event).
  std::int64_t write_stalls = 0;
};

// Lifecycle. A Scheduler is in one phase at a time, changed under its lock:
//
//   call \ phase | idle, stopped          | starting                    | running              | stopping
//   start()      | -> starting -> running | waits for that start() (and | nothing              | waits until stopped,
//                |   (back when it throws)|   starts when it failed)    |                      |   then starts
//   stop()       | -> stopped, true       | ends that start()'s wait,   | -> stopping ->       | waits again
//                |                        |   then as in its result     |   stopped (true) or  |   (stop_timeout)
//                |                        |                             |   stays (false)      |
//   run_due()    | runs what is due       | invalid_parameter           | invalid_parameter    | invalid_parameter
//
// Concurrent calls are allowed in every cell; start() after a stop starts
// again (a new lease on the server id). stop() and the destructor never
// throw: what fails in them is reported as an error event.
class Scheduler {
 public:
  // Throws for a server_id that run_jobs refuses or an options.plugin_id
  // that a Repository refuses (text.hpp: invalid_parameter when empty, with a
  // NUL byte or not valid UTF-8; check_constraint when blank or too long),
  // and invalid_parameter for options with a problem
  // (scheduler_options_problem). Messages start with "Scheduler: ".
  Scheduler(std::string server_id, Store& store, SchedulerOptions options = {});
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Stops (as stop()) and waits for every handler to return, however long,
  // heartbeating their runs meanwhile; then stores their outcomes (up to
  // stop_timeout) and gives the server id up. Never throws.
  ~Scheduler();

  // Registers the job's code here and the job in the store (ensure_job: the
  // first server creates it, later ones keep its schedule and update its
  // description). Before or after start(). Throws invalid_parameter for a
  // missing handler, a timeout out of [0, 100 years], or a name registered
  // here already unless options.replace; and what ensure_job throws (then
  // nothing changes here). Messages start with "register_job: ".
  void register_job(std::shared_ptr<JobHandler> handler, RegisterJobOptions options = {});

  // This server stops claiming the job; a run of it executing here goes on
  // to its end. The job stays in the store (other servers may run it).
  // Returns false when the job was not registered here.
  bool unregister_job(std::string_view job_name);

  // Takes the server id's lease in the store (Store::record_server), ends
  // this server's own leftover runs (from a crash), then starts claiming.
  // A server id is held by one live server at a time: when another
  // instance holds it, start() waits until that one is known to be gone
  // (its process is gone from this machine, at once; otherwise its lease
  // not renewed and its runs not heartbeated for interrupt_threshold, on
  // this process's monotonic clock), then takes it over; its old runs are
  // interrupted only then. When that instance renews its lease or
  // heartbeats a run meanwhile, it is alive: start() throws not_unique
  // naming the server id and where the live one runs ("start: server id
  // "web-1" is in use by a live server: web-2 pid 4242 ..."). Also throws
  // what the store throws. Repeated calls do nothing. A stop() meanwhile
  // ends the wait: start() returns without starting.
  void start();

  // Stops claiming, hands runs that no worker started back at once
  // (interrupted), cancels the running handlers and waits up to
  // stop_timeout for them to return. A run is never ended while its handler
  // runs: each handler's outcome is stored when it returns (completed when
  // it returned normally, else interrupted "its server stopped before the
  // run ended"), and until then its run is heartbeated and fenced as
  // before. Returns true when every handler returned in time (the server
  // has left the cluster: its lease is given up); false when some still
  // run: an error event names them, and they go on, heartbeated; call
  // stop() again to wait once more, and the destructor waits for them.
  bool stop();

  // Makes the job due now (in the store, for the whole cluster), or, while
  // a run of it is running, due as soon as that run ends (Repository::
  // run_now), and wakes the claim loop. With a payload, the run it makes
  // gets those arguments (JobContext::payload()). Throws what
  // Repository::run_now throws (record_not_found for an unknown job,
  // invalid_parameter for a payload that is not JSON or over 64 KiB,
  // invalid_job_run_state while another payload waits), its message
  // starting with "run_now: ".
  void run_now(std::string_view job_name, std::optional<std::string> payload = {});

  // For tests and tools that drive a scheduler by hand, while it is not
  // started (idle or stopped): claims the due jobs registered here (at most
  // `limit`; negative: all) and runs each handler on the calling thread,
  // one after another, storing each outcome as the running scheduler would
  // (a handler that outlives its timeout fails "timed out after D"; nothing
  // heartbeats, nothing fences). Returns the runs as stored after. Throws
  // invalid_parameter while the scheduler runs, and what the store throws.
  std::vector<Run> run_due(int limit = -1);

  SchedulerPhase phase() const;
  std::vector<ExecutingRun> executing() const;
  SchedulerHealth health() const;
  const std::string& server_id() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace jobrepo
