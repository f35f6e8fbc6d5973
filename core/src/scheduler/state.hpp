// Internal to the Scheduler: its state, as small parts that each guard
// themselves, and the loops that work on them (each defined in its own
// file: claimer.cpp, workers.cpp, writer.cpp, monitor.cpp, fence.cpp,
// lifecycle.cpp).
//
//   claim loop  --runs-->  RunQueue  --> workers --outcomes--> OutcomeQueue --> writer
//        ^                                                                        |
//        +------------------------- ClaimSignal (wake-ups) <----------------------+
//   monitor loop: heartbeats, the server id's lease, peers' stale runs
//   fence loop:   timeouts, fences, the watchdog (no I/O)
//
// Every wait goes through the Runtime (runtime.hpp), with a deadline and a
// "ready" condition, so that a ManualRuntime can move time for tests.
#pragma once

#include "local_run.hpp"
#include "policy.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/repository.hpp>
#include <jobrepo/runtime.hpp>
#include <jobrepo/scheduler.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace jobrepo {

namespace scheduling {

// A wake-up with a "stop" that outlasts it: the claim loop's (raised by
// run_now, a free worker, a peer's run interrupted, a push from the store)
// and the monitor and fence loops' (only stop).
class Signal {
 public:
  explicit Signal(Runtime& runtime) : runtime_(runtime) {}
  void raise();
  void stop();
  void reset();  // for a new start: not raised, not stopped
  bool stopped() const;
  // Waits until raised or stopped or the deadline; clears the raise.
  // Returns whether it was stopped.
  bool wait(SteadyTime deadline);

 private:
  Runtime& runtime_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool raised_ = false, stopped_ = false;
};

// Claimed runs waiting for a worker, in claim order; a run of a job whose
// handler runs here waits until that handler returned (a job's work never
// runs twice at once here, even when the store ended the earlier run).
class RunQueue {
 public:
  explicit RunQueue(Runtime& runtime) : runtime_(runtime) {}
  void push(std::shared_ptr<LocalRun> run);
  // The next run a worker may start, taken, its job marked running; or
  // nullptr once closed.
  std::shared_ptr<LocalRun> pop();
  // The handler of `job` returned.
  void finished(const std::string& job);
  std::vector<std::shared_ptr<LocalRun>> take_all();
  void close();
  void reopen();
  // Places taken: runs waiting plus handlers running.
  int taken() const;

 private:
  std::deque<std::shared_ptr<LocalRun>>::iterator runnable();  // under mutex_
  Runtime& runtime_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<LocalRun>> waiting_;
  std::multiset<std::string> running_;
  bool closed_ = false;
};

// What to store of a run whose handler ended.
struct Outcome {
  std::shared_ptr<LocalRun> local;
  RunUpdate update;
  std::string detail;    // for the event
  bool retried = false;  // a transient error was reported for it
  microseconds took{0};  // how long the handler ran
  Timestamp work_end{};  // when the handler returned, on the database's clock as reckoned here
};

// The event of a run that ended here: its outcome, with the run's attempt
// and why it was cancelled, if it was.
inline SchedulerEvent ended_event(SchedulerEvent::Kind kind, const Outcome& outcome, std::string message) {
  SchedulerEvent event{kind,           outcome.local->job_name(), outcome.local->run_id(),
                       outcome.detail, std::move(message),        outcome.took};
  event.attempt = outcome.local->run().attempt;
  event.cancel_reason = outcome.local->cancel_reason();
  return event;
}

// Outcomes waiting for the writer.
class OutcomeQueue {
 public:
  explicit OutcomeQueue(Runtime& runtime) : runtime_(runtime) {}
  void push(Outcome outcome);
  // Waits until there are outcomes, it is closed, or the deadline; takes them.
  std::vector<Outcome> take(SteadyTime deadline);
  void close();
  void reopen();
  bool closed() const;

 private:
  Runtime& runtime_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Outcome> outcomes_;
  bool closed_ = false;
};

// The runs executing here: queued, running, or waiting for their outcome
// to be stored. A run leaves when its outcome is stored (or given up), or
// at once when there is nothing to store.
class Executing {
 public:
  explicit Executing(Runtime& runtime) : runtime_(runtime) {}
  void add(const std::shared_ptr<LocalRun>& run);
  void remove(const std::string& run_id);
  void remove(const std::vector<std::string>& run_ids);
  // Marks the run's handler returned (LocalRun::set_returned), telling the
  // waits below.
  void returned(LocalRun& run);
  std::vector<std::shared_ptr<LocalRun>> all() const;
  // Those whose handler has not returned (queued ones too).
  std::vector<std::shared_ptr<LocalRun>> live() const;
  // How many have returned, their outcomes not stored yet.
  std::size_t returned_count() const;
  bool empty() const;
  // Waits until no handler runs here (every one returned; queued runs were
  // handed back), or the deadline; returns whether none runs.
  bool wait_handlers_returned(SteadyTime deadline);
  // Waits until it is empty, or the deadline.
  bool wait_empty(SteadyTime deadline);

 private:
  Runtime& runtime_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<LocalRun>> runs_;
};

// The database's clock, as this process reckons it: the latest database
// time a store call answered (a claim's create_time, a heartbeat's
// update_time, the lease's seen_time) plus the time since that answer
// arrived, on the runtime's monotonic clock. Never later than the truth
// (the database took the time before it answered), and it follows a step
// of the database's clock at the next answer. Before the first answer: the
// runtime's wall clock.
class DatabaseClock {
 public:
  explicit DatabaseClock(Runtime& runtime) : runtime_(runtime) {}
  void observe(Timestamp database, SteadyTime received);
  Timestamp now() const;

 private:
  Runtime& runtime_;
  mutable std::mutex mutex_;
  std::optional<std::pair<Timestamp, SteadyTime>> anchor_;
};

// Future due times of jobs registered here (from the last read of the jobs
// and from this server's own outcomes), earliest on top. A read of the jobs
// races with the outcomes stored meanwhile: it takes a mark() before it
// reads, and its replace() keeps the times added after that mark (an
// outcome stored after the read began may be missing from what it read).
class DueTimes {
 public:
  std::uint64_t mark();
  void replace(std::vector<Timestamp> times, std::uint64_t mark);
  void add(Timestamp due);
  // The earliest still to come after `now` (older ones are dropped).
  std::optional<Timestamp> next(Timestamp now);
  void clear();

 private:
  std::mutex mutex_;
  // Each time with the number of the add() that gave it (0: a read's).
  std::multimap<Timestamp, std::uint64_t> times_;
  std::uint64_t added_ = 0;  // add() calls so far
};

}  // namespace scheduling

struct Scheduler::State {
  using SteadyTime = Runtime::SteadyTime;
  using LocalRun = scheduling::LocalRun;
  using Outcome = scheduling::Outcome;
  using microseconds = std::chrono::microseconds;

  struct Registered {
    std::shared_ptr<JobHandler> handler;
    microseconds timeout{0};
    scheduling::JobTiming timing{};
    std::string fingerprint{};  // definition_fingerprint() of its definition
  };

  State(std::string id, Store& s, SchedulerOptions o);

  // --- fixed --------------------------------------------------------------
  const std::string server_id;
  Store& store;
  const SchedulerOptions options;
  Runtime& runtime;
  // This Scheduler's instance token (ServerRecord::instance) and where it runs.
  const std::pair<std::string, std::string> identity;

  // --- the lifecycle (the Scheduler's lock) -------------------------------
  mutable std::mutex lifecycle_mutex;
  std::condition_variable lifecycle_changed;
  SchedulerPhase phase = SchedulerPhase::idle;
  bool stop_requested = false;  // stop() was called since the last start()
  bool driving = false;         // run_due() runs handlers on its caller's thread
  int life = 0;                 // counts start()s: a stop() ends the life it was called in
  bool stopper_active = false;  // a stop() does the stopping work; others wait for it
  bool stop_begun = false;      // this life's claims stopped and handlers cancelled (by the stopper)
  std::thread claimer;
  std::vector<std::thread> threads;  // workers, writer, monitor, fence
  std::unique_ptr<DueSubscription> subscription;

  // --- the jobs registered here -------------------------------------------
  mutable std::mutex jobs_mutex;
  using JobMap = std::map<std::string, Registered, std::less<>>;
  JobMap jobs;
  // What registered() hands out: a copy of `jobs` as of jobs_version, made
  // once per change (a claim loop that copied 10,000 jobs per claim spent
  // 4% of a busy Scheduler's CPU on it).
  mutable std::shared_ptr<const JobMap> jobs_snapshot;
  mutable int snapshot_version = -1;
  int jobs_version = 0;  // changes with every (un)registration

  // --- the runs here and between the loops --------------------------------
  scheduling::Executing executing;
  scheduling::RunQueue queue;
  scheduling::OutcomeQueue outcomes;
  scheduling::Signal claim_signal;
  scheduling::Signal loops_signal;  // monitor and fence: stop only
  scheduling::DatabaseClock database_clock;
  scheduling::DueTimes known_due;
  // Another instance took the server id over: no more claims.
  std::atomic<bool> lease_lost{false};
  // SchedulerHealth's times, as steady-clock ticks of the runtime.
  std::atomic<SteadyTime::rep> claim_tick{0}, monitor_tick{0}, fence_tick{0}, store_answered{0};
  // The writer's store call in flight: when it began (0: none) and its
  // outcomes; the fence loop reports one that runs past write_stall_after
  // (a `warning`, counted in write_stalls), the writer says when it ended.
  std::atomic<SteadyTime::rep> write_began{0};
  std::atomic<std::size_t> write_rows{0};
  std::atomic<std::int64_t> write_stalls{0};
  std::atomic<SteadyTime::rep> write_stalled{0};  // write_began of the call reported
  SteadyTime::rep stall_reported_for = 0;         // the fence loop's own
  void check_write_stall(SteadyTime now) noexcept;

  mutable std::mutex random_mutex;
  std::minstd_rand random{std::random_device{}()};

  // --- events and guarded steps (scheduler.cpp) ----------------------------
  void emit(SchedulerEvent::Kind kind, const std::string& job, const std::string& run, std::string detail,
            std::string message = {}, std::optional<ErrorCode> code = std::nullopt,
            microseconds duration = microseconds(0)) const noexcept;
  void emit(SchedulerEvent event) const noexcept;
  void emit_error(const char* what, const std::string& message, std::optional<ErrorCode> code) const noexcept;
  // Runs one step of a loop; an exception of any kind becomes an error
  // event, so that no scheduler thread, and with it the process, ends.
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
  Repository repository() const { return Repository(store, {options.plugin_id, 0}); }
  // The jobs registered here, and their version (jobs_version): shared,
  // never changed (a change makes a new one).
  std::shared_ptr<const JobMap> registered(int* version = nullptr) const;
  // A back-off's jitter factor, in [1 - jitter, 1 + jitter].
  double spread(const BackoffOptions& backoff);
  SteadyTime now() const { return runtime.steady_now(); }
  static SteadyTime::rep ticks(SteadyTime t) { return t.time_since_epoch().count(); }

  // --- the claim loop (claimer.cpp) ---------------------------------------
  void claim_loop();
  // Claims up to `limit` due runs of the jobs in `registered` and makes a
  // LocalRun of each; runs of other jobs (claimed without names) are
  // handed back. Returns the new runs.
  std::vector<std::shared_ptr<LocalRun>> claim(Repository& repo, int limit,
                                               const std::map<std::string, Registered, std::less<>>& registered,
                                               int version);
  void skip_missed(Repository& repo);
  void scan_jobs(Repository& repo);
  void hand_back_strangers(Repository& repo, const std::vector<Run>& strangers);
  void wake_claimer() { claim_signal.raise(); }

  // --- the workers (workers.cpp) ------------------------------------------
  void worker_loop();
  std::optional<Outcome> execute(const std::shared_ptr<LocalRun>& local);
  std::optional<Outcome> unstarted(const std::shared_ptr<LocalRun>& local);
  void note_work_end(const LocalRun& local, Timestamp work_end) noexcept;

  // --- the writer (writer.cpp) --------------------------------------------
  void writer_loop();
  std::vector<Outcome> store_outcomes(Repository& repo, std::vector<Outcome> batch, bool last);
  bool stored_before(Repository& repo, const Outcome& outcome) noexcept;

  // --- the monitor (monitor.cpp) ------------------------------------------
  void monitor_loop();
  void heartbeat(Repository& repo);
  // This server's proof of life (its lease) and, after each
  // (un)registration, the jobs it serves; then servers that define a job
  // otherwise are looked for. Serialized by record_mutex.
  void record_server(Repository& repo);
  void check_drift(Repository& repo);
  std::mutex record_mutex;
  int recorded_version = -1;  // the jobs_version the store last heard of
  // recorded_version, read under record_mutex: when it is the version of a
  // claim's jobs, the store's served set is exactly those jobs.
  int recorded_jobs_version() {
    const std::lock_guard lock(record_mutex);
    return recorded_version;
  }
  // Jobs whose servers disagree about the definition, warned of once.
  std::set<std::string, std::less<>> warned_drift;
  std::optional<SteadyTime> last_drift_check;
  struct Observation {
    Timestamp update_time{};
    SteadyTime since{};
  };
  void interrupt_stale(Repository& repo, std::map<std::string, Observation>& observed);
  // The jobs served here, for a record of them.
  std::vector<ServedJob> served_jobs(int* version) const;

  // --- the fence loop (fence.cpp) -----------------------------------------
  void fence_loop();
  void overrun(LocalRun& local, SteadyTime::duration since) noexcept;

  // --- the lifecycle (lifecycle.cpp) --------------------------------------
  void start();
  bool halt(std::optional<microseconds> wait) noexcept;
  // The stopping work of halt(), done by one caller at a time.
  bool stopping_work(SteadyTime deadline, std::optional<microseconds> wait);
  std::optional<std::vector<ObservedRun>> take_lease(Repository& repo);
  void hand_back_queued() noexcept;
  std::vector<Run> run_due(int limit);
};

}  // namespace jobrepo
