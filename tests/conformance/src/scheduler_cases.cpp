// Conformance cases: the Scheduler on this backend, on a ManualRuntime
// (runtime.hpp): time moves only when a case says so (advance) and the case
// waits until the scheduler has done what that time asks for (settle). The
// store's clock must be the runtime's (Store::set_time_source), so every time
// a case asserts is exact: no case sleeps and none takes more than a few
// milliseconds. A store whose clock is its database server's (PostgreSQL)
// cannot follow a manual clock: these cases are skipped there, and the
// real-time cases (scheduler_process_cases.cpp) cover it.
#include "support.hpp"

#include <jobrepo/jobrepo.hpp>
#include <jobrepo/runtime.hpp>
#include <jobrepo/store_wrapper.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace jobrepo::conformance {

void link_scheduler_cases() {}

namespace {

// Events seen.
struct Recorder {
  mutable std::mutex mutex;
  std::vector<SchedulerEvent> events;

  std::function<void(const SchedulerEvent&)> callback() {
    return [this](const SchedulerEvent& e) {
      const std::lock_guard lock(mutex);
      events.push_back(e);
    };
  }
  int count(SchedulerEvent::Kind kind, const std::string& job) const {
    const std::lock_guard lock(mutex);
    return static_cast<int>(std::count_if(
        events.begin(), events.end(), [&](const SchedulerEvent& e) { return e.kind == kind && e.job_name == job; }));
  }
  std::vector<SchedulerEvent> of(SchedulerEvent::Kind kind, const std::string& job) const {
    const std::lock_guard lock(mutex);
    std::vector<SchedulerEvent> out;
    for (const auto& e : events) {
      if (e.kind == kind && e.job_name == job) out.push_back(e);
    }
    return out;
  }
};

// The code of the jobrepo::Error `call` throws; fails the case when it throws none.
ErrorCode code_of(const std::function<void()>& call, std::string* message = nullptr) {
  const auto error = error_of(call);
  if (!error) {
    FAIL("no jobrepo::Error was thrown");
    return ErrorCode::internal;
  }
  if (message) *message = error->what();
  return error->code();
}

// Polls `condition` in real time (for a phase another thread reaches).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

constexpr const char* not_manual =
    "the store's clock does not follow Store::set_time_source (its clock is its database server's): the "
    "Scheduler's manual-clock cases need a store whose clock this process sets; the real-time scheduler "
    "cases cover this backend";

// A case's database whose clock is a ManualRuntime's, a Repository on it,
// the events of its schedulers.
struct Manual {
  ManualRuntime runtime;
  CaseDatabase database{};
  Store* store = &database.store();
  Repository repo = (store->migrate(), Repository(*store));
  // Whether the store reads its time from the runtime (else JR_MANUAL skips).
  const bool follows = [this] {
    store->set_time_source([this] { return runtime.wall_now(); });
    return store->now() == runtime.wall_now() + store->clock_offset();
  }();
  Recorder recorder;
  const Timestamp start = runtime.wall_now();

  ~Manual() { store->set_time_source({}); }

  // Threshold 4 s, monitor 1 s: fenced 3 s after the last good heartbeat.
  SchedulerOptions options() {
    SchedulerOptions o;
    o.runtime = &runtime;
    o.worker_threads = 2;
    o.claim_interval = 1s;
    o.monitor_interval = 1s;
    o.interrupt_threshold = 4s;
    o.stop_timeout = 5s;
    o.backoff.initial = 200ms;
    o.backoff.jitter = 0.0;
    o.on_event = recorder.callback();
    // A case that moves time too far at once must fail, not end the suite.
    o.fence_overrun = FenceOverrun::report;
    return o;
  }
  void settle() { REQUIRE(runtime.settle()); }
  void advance(std::chrono::microseconds by) { REQUIRE(runtime.advance_and_settle(by)); }
  // Moves time in steps of at most `step`, settling after each (so that
  // each monitor round and fence check happens at its time).
  void advance_in_steps(std::chrono::microseconds by, std::chrono::microseconds step = 100ms) {
    while (by.count() > 0) {
      const auto now = std::min(by, step);
      advance(now);
      by -= now;
    }
  }
  Timestamp at(std::chrono::microseconds since_start) const { return start + since_start; }
  std::vector<Run> runs(const std::string& job) {
    auto all = repo.list_runs({.job_name = job, .limit = -1});
    std::reverse(all.begin(), all.end());  // oldest first
    return all;
  }
};

#define JR_MANUAL(m) \
  Manual m;          \
  if (!m.follows) JR_SKIP(not_manual)

std::chrono::microseconds answer(std::chrono::microseconds d) { return d; }

// A handler that blocks (on the runtime's clock) until cancelled, records
// why, and throws.
std::shared_ptr<JobHandler> until_cancelled(const std::string& name, std::atomic<int>& reason,
                                            std::atomic<int>* started = nullptr) {
  return make_job(name, "blocks until cancelled", [&reason, started](JobContext& c) {
    if (started) ++*started;
    c.report_progress(3, 10);
    while (c.sleep_for(1h)) {
    }
    reason = static_cast<int>(c.cancel_reason());
    c.throw_if_cancelled();
    return answer(1h);
  });
}

}  // namespace

TEST_CASE("scheduler on a manual clock: a job due at once runs at once; it runs again exactly its answer after its end",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(make_job("hourly", "d", [&](JobContext&) {
    ++runs;
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  REQUIRE(runs == 1);
  auto history = m.runs("hourly");
  REQUIRE(history.size() == 1);
  CHECK(history[0].status == Status::completed);
  CHECK(history[0].create_time == m.at(0s));
  CHECK(history[0].end_time == m.at(0s));
  CHECK(m.repo.lookup_job("hourly")->next_scheduled_run == m.at(1h));
  m.advance(1h - 1ms);
  CHECK(runs == 1);
  m.advance(1ms);
  CHECK(runs == 2);
  history = m.runs("hourly");
  REQUIRE(history.size() == 2);
  CHECK(history[1].create_time == m.at(1h));
  CHECK(scheduler.stop());
  CHECK(scheduler.phase() == SchedulerPhase::stopped);
}

TEST_CASE("scheduler on a manual clock: back-off after failures is exact: 200, 400, 800 ms, then a success resets it",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> calls{0};
  scheduler.register_job(make_job("flaky", "d", [&](JobContext&) -> std::chrono::microseconds {
    if (++calls <= 3) throw std::runtime_error("exit 1");
    return 1h;
  }));
  scheduler.start();
  m.settle();
  CHECK(calls == 1);
  for (const auto& [wait, expected] : {std::pair{200ms, 2}, std::pair{400ms, 3}, std::pair{800ms, 4}}) {
    m.advance(wait - 1ms);
    CHECK(calls == expected - 1);
    m.advance(1ms);
    CHECK(calls == expected);
  }
  const auto history = m.runs("flaky");
  REQUIRE(history.size() == 4);
  CHECK(history[0].create_time == m.at(0ms));
  CHECK(history[1].create_time == m.at(200ms));
  CHECK(history[2].create_time == m.at(600ms));
  CHECK(history[3].create_time == m.at(1400ms));
  CHECK(history[3].status == Status::completed);
  CHECK(history[2].attempt == 3);
  CHECK(m.repo.lookup_job("flaky")->consecutive_failures == 0);
  CHECK(scheduler.stop());
}

// The claimer's scan of the jobs (list_jobs) and the writer's storing of an
// outcome race: a scan that read the job before the outcome was stored, and
// returned after the writer had noted the job's next due time, must not make
// the scheduler forget that time (the job ran at the next scan, a
// claim_interval late, instead of at its back-off).
TEST_CASE("scheduler on a manual clock: a scan of the jobs that overlaps an outcome's write keeps the job's due time",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  struct SlowScan : StoreWrapper {
    SlowScan(Store& target, Recorder& events) : StoreWrapper(target), recorder(events) {}
    Recorder& recorder;
    std::vector<Job> list_jobs(const JobQuery& query) override {
      auto jobs = StoreWrapper::list_jobs(query);
      // Returns once the writer has stored the failure and noted the job's
      // next due time (its event comes after).
      wait_until([&] { return recorder.count(SchedulerEvent::Kind::failed, "flaky") > 0; }, 5s);
      return jobs;
    }
  } store(*m.store, m.recorder);
  Scheduler scheduler("s1", store, m.options());
  std::atomic<int> calls{0};
  scheduler.register_job(make_job("flaky", "d", [&](JobContext&) -> std::chrono::microseconds {
    if (++calls == 1) throw std::runtime_error("exit 1");
    return 1h;
  }));
  scheduler.start();
  m.settle();
  REQUIRE(calls == 1);
  REQUIRE(m.recorder.count(SchedulerEvent::Kind::failed, "flaky") == 1);
  m.advance(199ms);
  CHECK(calls == 1);
  m.advance(1ms);
  CHECK(calls == 2);  // at its back-off, 200 ms, not at the next scan (1 s)
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler on a manual clock: a job's timeout cancels its handler at the exact deadline; the run fails then",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(make_job("slow", "d",
                                  [&](JobContext& c) {
                                    c.sleep_for(1h);  // waits on the runtime's clock
                                    reason = static_cast<int>(c.cancel_reason());
                                    c.throw_if_cancelled();
                                    return answer(1h);
                                  }),
                         {.timeout = 300ms});
  scheduler.start();
  m.settle();
  m.advance(299ms);
  CHECK(reason == -1);
  m.advance(1ms);
  CHECK(reason == static_cast<int>(CancelReason::deadline));
  const auto run = m.runs("slow").at(0);
  CHECK(run.status == Status::failed);
  CHECK(run.message == "timed out after 300ms");
  CHECK(run.end_time == m.at(300ms));
  CHECK(m.recorder.count(SchedulerEvent::Kind::error, "slow") == 1);  // at the deadline
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: a run that cannot heartbeat is fenced exactly 3/4 of the threshold after its last "
    "good one",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  struct HeartbeatsFail : StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> failing{false};
    std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> c) override {
      if (failing && c.size() == 1 && c.front().to == Status::running) {
        throw Error(ErrorCode::unavailable, "update_run: injected outage");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*m.store);
  Scheduler scheduler("s1", store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(make_job("held", "d", [&](JobContext& c) {
    while (c.sleep_for(1h)) {
    }
    reason = static_cast<int>(c.cancel_reason());
    c.throw_if_cancelled();
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  m.advance(1s);  // one good heartbeat, at 1 s
  store.failing = true;
  m.advance(1s);  // at 2 s: fails
  m.advance(1s);  // at 3 s: fails
  m.advance(999ms);
  CHECK(reason == -1);
  m.advance(1ms);  // 1 s + 3 s
  CHECK(reason == static_cast<int>(CancelReason::fenced));
  store.failing = false;
  m.advance(1s);
  const auto run = m.runs("held").at(0);
  CHECK(run.status == Status::interrupted);
  CHECK(run.message == "fenced: no heartbeat reached the database for 3s");
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: a dead server's run is interrupted once it was seen silent for the threshold, and "
    "run here",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  m.repo.create_job("orphan", "d");
  const auto dead = m.repo.run_jobs("dead-server").at(0);  // claimed at 0, then never heard of again
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(make_job("orphan", "d", [&](JobContext&) {
    ++runs;
    return answer(1h);
  }));
  scheduler.start();
  m.settle();  // the monitor saw the run at 0
  m.advance(3s);
  m.advance(999ms);
  CHECK(runs == 0);
  m.advance(1ms);  // seen silent for 4 s: interrupted, and claimed here at once
  CHECK(runs == 1);
  const auto old = *m.repo.lookup_run(dead.private_id);
  CHECK(old.status == Status::interrupted);
  CHECK(old.end_time == m.at(4s));
  CHECK(m.runs("orphan").at(1).create_time == m.at(4s));
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler on a manual clock: a step of the database's wall clock by 10 thresholds interrupts no live run",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler a("a", *m.store, m.options());
  Scheduler b("b", *m.store, m.options());
  std::atomic<int> reason{-1};
  const auto held = [&] {
    return make_job("held", "d", [&](JobContext& c) {
      while (c.sleep_for(1h)) {
      }
      reason = static_cast<int>(c.cancel_reason());
      return answer(1h);
    });
  };
  a.register_job(held());
  a.start();
  m.settle();
  b.register_job(held());
  b.start();
  m.settle();
  m.advance(2s);
  m.runtime.step_wall(40s);  // the database's clock (this store's) jumps; the monotonic clock does not
  m.advance_in_steps(10s, 1s);
  CHECK(reason == -1);
  CHECK(m.runs("held").size() == 1);
  CHECK(m.runs("held")[0].status == Status::running);
  CHECK(m.recorder.count(SchedulerEvent::Kind::interrupted_peer, "held") == 0);
  CHECK(b.stop());
  CHECK(a.stop());
}

TEST_CASE(
    "scheduler on a manual clock: stop() that times out returns false at the exact timeout; the run stays running",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  // A handler that ignores cancellation: it waits (on the runtime, so that
  // settle() knows it waits) until the test releases it.
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  scheduler.register_job(make_job("stubborn", "d", [&](JobContext&) {
    std::unique_lock lock(mutex);
    m.runtime.wait_until(lock, released, Runtime::SteadyTime::max(), [&] { return release; });
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  std::atomic<int> result{-1};
  std::thread stopper([&] { result = scheduler.stop() ? 1 : 0; });
  REQUIRE(wait_until([&] { return scheduler.phase() == SchedulerPhase::stopping; }, 5s));
  m.settle();
  m.advance_in_steps(4999ms, 500ms);  // heartbeats go on meanwhile
  CHECK(result == -1);
  m.advance(1ms);
  stopper.join();
  CHECK(result == 0);
  CHECK(m.recorder.count(SchedulerEvent::Kind::error, "") == 1);  // "stop: 1 handler did not return ..."
  CHECK(m.runs("stubborn").at(0).status == Status::running);
  CHECK(m.repo.run_jobs("peer").empty());
  m.advance_in_steps(10s, 500ms);  // still heartbeated: no peer takes it
  CHECK(m.runs("stubborn").at(0).status == Status::running);
  {
    const std::lock_guard lock(mutex);
    release = true;
  }
  m.runtime.notify_all(released);
  m.settle();
  CHECK(scheduler.stop());
  CHECK(m.runs("stubborn").at(0).status == Status::completed);
  CHECK(m.runs("stubborn").at(0).end_time == m.at(15s));
}

TEST_CASE("scheduler on a manual clock: run_due() runs what is due on the calling thread, for tests",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::thread::id ran_on;
  scheduler.register_job(make_job("daily", "d", [&](JobContext&) {
    ran_on = std::this_thread::get_id();
    return answer(24h);
  }));
  auto ran = scheduler.run_due();
  REQUIRE(ran.size() == 1);
  CHECK(ran[0].status == Status::completed);
  CHECK(ran_on == std::this_thread::get_id());
  CHECK(scheduler.run_due().empty());
  m.runtime.advance(24h);
  ran = scheduler.run_due();
  REQUIRE(ran.size() == 1);
  CHECK(ran[0].create_time == m.at(24h));
  scheduler.start();
  std::string message;
  CHECK(code_of([&] { scheduler.run_due(); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message.find("run_due: the scheduler is running") != std::string::npos);
  CHECK(scheduler.stop());
  CHECK(scheduler.run_due().empty());  // stopped: drivable again
}

TEST_CASE(
    "scheduler on a manual clock: a failing job reruns after its back-off, a completed one waits; run_now runs it at "
    "once",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> a_runs{0}, b_runs{0};
  scheduler.register_job(make_job("a-fails", "d", [&](JobContext&) -> std::chrono::microseconds {
    ++a_runs;
    throw std::runtime_error("boom");
  }));
  scheduler.register_job(make_job("b-completes", "d", [&](JobContext&) {
    ++b_runs;
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  m.advance(200ms);
  m.advance(400ms);
  CHECK(a_runs == 3);
  CHECK(b_runs == 1);
  CHECK(m.runs("a-fails").at(2).message == "boom");
  scheduler.run_now("b-completes");  // due in an hour: run_now runs it now, with no time passing
  m.settle();
  CHECK(b_runs == 2);
  CHECK(m.runs("b-completes").at(1).create_time == m.at(600ms));
  CHECK(code_of([&] { scheduler.run_now("no-such-job"); }) == ErrorCode::record_not_found);
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: run_now with a payload: the handler reads it from its context; the runs by "
    "schedule before and after it have none",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::mutex mutex;
  std::vector<std::optional<std::string>> seen;
  scheduler.register_job(make_job("args", "d", [&](JobContext& c) {
    const std::lock_guard lock(mutex);
    seen.push_back(c.payload());
    return answer(1h);
  }));
  scheduler.start();
  m.settle();     // due at once: a run by schedule, without arguments
  m.advance(1s);  // (so that each run has its own create_time, the order of the history)
  const std::string payload = R"({"full": true, "since": "2026-12-01"})";
  scheduler.run_now("args", payload);
  m.settle();
  m.advance(1h);  // an hour after that run: due by schedule again
  {
    const std::lock_guard lock(mutex);
    REQUIRE(seen.size() == 3);
    CHECK(!seen.at(0));
    CHECK(seen.at(1) == std::optional(payload));
    CHECK(!seen.at(2));
  }
  const auto history = m.runs("args");
  REQUIRE(history.size() == 3);
  CHECK(!history[0].payload);
  CHECK(history[1].payload == std::optional(payload));
  CHECK(history[0].create_time == m.at(0s));
  CHECK(history[1].create_time == m.at(1s));
  CHECK(!history[2].payload);
  CHECK(history[2].create_time == m.at(1s + 1h));
  CHECK(!m.repo.lookup_job("args")->requested_payload);
  // The library's rules, named by the scheduler's operation; nothing is written.
  std::string message;
  CHECK(code_of([&] { scheduler.run_now("args", "{\"full\": tru}"); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message.rfind("run_now: payload of job \"args\" is not valid JSON", 0) == 0);
  CHECK(!m.repo.lookup_job("args")->requested_payload);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler on a manual clock: progress is stored with the next heartbeat; executing() shows the run",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(until_cancelled("slow", reason));
  scheduler.start();
  m.settle();
  REQUIRE(scheduler.executing().size() == 1);
  CHECK(scheduler.executing().at(0).completed_count == 3);
  const auto run_id = scheduler.executing().at(0).run_id;
  m.advance(1s);
  const auto run = *m.repo.lookup_run(run_id);
  CHECK(run.completed_count == 3);
  CHECK(run.total_count == 10);
  CHECK(run.update_time == m.at(1s));
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: stop() cancels a blocked handler and leaves its run interrupted; a peer may take it "
    "at once",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(until_cancelled("blocked", reason));
  scheduler.start();
  m.settle();
  const std::string run_id = scheduler.executing().at(0).run_id;
  CHECK(scheduler.stop());  // no time passes
  CHECK(reason == static_cast<int>(CancelReason::stopping));
  const auto run = *m.repo.lookup_run(run_id);
  CHECK(run.status == Status::interrupted);
  CHECK(run.message == "its server stopped before the run ended");
  CHECK(m.repo.run_jobs("s2").size() == 1);
  CHECK(m.recorder.count(SchedulerEvent::Kind::interrupted, "blocked") == 1);
}

TEST_CASE(
    "scheduler on a manual clock: a run ended in the store is cancelled here at the next heartbeat, and its work end "
    "recorded",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1}, started{0};
  scheduler.register_job(until_cancelled("victim", reason, &started));
  scheduler.start();
  m.settle();
  m.advance(500ms);
  REQUIRE(m.repo.interrupt_runs(0s).size() == 1);  // as an operator would, by hand
  m.advance(499ms);
  CHECK(reason == -1);
  // The job is due again and this server may claim it, but a second copy of
  // its work never starts while the first still runs here.
  CHECK(started == 1);
  m.advance(1ms);  // the heartbeat at 1 s finds it final
  CHECK(reason == static_cast<int>(CancelReason::interrupted));
  const auto run = m.runs("victim").at(0);
  CHECK(run.end_time == m.at(500ms));
  CHECK(run.work_end_time == m.at(1s));
  CHECK(started == 2);  // the next run, once the first's work ended
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: claims name no job: the store claims the served set, kept current as jobs come and "
    "go",
    "[conformance][scheduler][manual-clock]") {
  // Sees every claim the scheduler sends.
  struct Claims : StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::mutex mutex;
    std::vector<ClaimRequest> seen;
    std::vector<Run> claim_runs(const ClaimRequest& request) override {
      {
        const std::lock_guard lock(mutex);
        seen.push_back(request);
      }
      return StoreWrapper::claim_runs(request);
    }
    std::vector<ClaimRequest> take() {
      const std::lock_guard lock(mutex);
      return std::exchange(seen, {});
    }
  };
  JR_MANUAL(m);
  Claims claims(*m.store);
  m.repo.create_job("foreign", "a job of another server's code");
  Scheduler scheduler("s1", claims, m.options());
  std::map<std::string, int> runs;
  std::mutex runs_mutex;
  const auto job = [&](const std::string& name) {
    return make_job(name, "d", [&, name](JobContext&) {
      const std::lock_guard lock(runs_mutex);
      ++runs[name];
      return answer(1h);
    });
  };
  const auto count = [&](const std::string& name) {
    const std::lock_guard lock(runs_mutex);
    return runs[name];
  };
  scheduler.register_job(job("mine"));
  scheduler.start();
  m.settle();
  m.advance_in_steps(3s, 1s);
  CHECK(count("mine") == 1);
  CHECK(m.recorder.count(SchedulerEvent::Kind::claimed, "foreign") == 0);
  auto seen = claims.take();
  REQUIRE_FALSE(seen.empty());
  for (const auto& request : seen) {
    CHECK(request.served_only);
    CHECK_FALSE(request.only_jobs);
  }
  // A job registered while running is in the served set before the next
  // claim, which runs it at once; one unregistered leaves the set first.
  scheduler.register_job(job("added"));
  m.settle();
  CHECK(count("added") == 1);
  CHECK(m.repo.list_servings("added").size() == 1);
  CHECK(scheduler.unregister_job("mine"));
  m.repo.update_job_next_run("mine", 0s);
  scheduler.run_now("added");
  m.settle();
  CHECK(count("added") == 2);
  CHECK(count("mine") == 1);
  CHECK(m.repo.list_servings("mine").empty());
  for (const auto& request : claims.take()) CHECK(request.served_only);
  CHECK(scheduler.stop());
  // Still due, for the servers that run them.
  const auto others = m.repo.run_jobs("s2", {.limit = -1});
  REQUIRE(others.size() == 2);
  CHECK(others[0].job_name == "foreign");
  CHECK(others[1].job_name == "mine");
  for (const auto* name : {"", "mine", "added", "foreign"})
    CHECK(m.recorder.count(SchedulerEvent::Kind::error, name) == 0);
}

TEST_CASE("scheduler on a manual clock: an outcome that meets busy or unavailable is stored later, never lost",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  struct OutcomesFail : StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<int> failures{0};
    std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> c) override {
      const bool ends = std::any_of(c.begin(), c.end(), [](const auto& t) { return is_final(t.to); });
      if (ends && failures < 4) {
        ++failures;
        throw Error(failures % 2 ? ErrorCode::busy : ErrorCode::unavailable, "update_run: injected");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*m.store);
  Scheduler scheduler("s1", store, m.options());
  scheduler.register_job(make_job("once", "d", [&](JobContext&) { return answer(1h); }));
  scheduler.start();
  m.settle();
  // The writer tries again 20, 40, 80 and 160 ms after each failure.
  m.advance_in_steps(299ms, 1ms);
  CHECK(store.failures == 4);
  CHECK(m.runs("once").at(0).status == Status::running);
  m.advance(1ms);
  const auto stored = m.runs("once");
  REQUIRE(stored.size() == 1);
  CHECK(stored.at(0).status == Status::completed);
  CHECK(stored.at(0).end_time == m.at(300ms));
  CHECK(m.repo.lookup_job("once")->next_scheduled_run == m.at(300ms + 1h));
  CHECK(m.recorder.count(SchedulerEvent::Kind::completed, "once") == 1);
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: microseconds::max() means never; on-demand jobs run only when asked, and give up",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> never_runs{0}, asked_runs{0};
  scheduler.register_job(make_job("once-ever", "d", [&](JobContext&) {
    ++never_runs;
    return std::chrono::microseconds::max();
  }));
  BackoffOptions backoff{.initial = 1s, .max = 1s, .multiplier = 1.0, .jitter = 0.0, .max_attempts = 2};
  scheduler.register_job(make_job("asked", "d",
                                  [&](JobContext&) -> std::chrono::microseconds {
                                    ++asked_runs;
                                    throw std::runtime_error("exit 1");
                                  }),
                         {.backoff = backoff, .on_demand = true});
  CHECK(m.repo.lookup_job("asked")->next_scheduled_run == never);
  CHECK(m.repo.lookup_job("asked")->schedule == "on demand");
  CHECK(due_state(*m.repo.lookup_job("asked")) == DueState::on_demand);
  scheduler.start();
  m.settle();
  CHECK(never_runs == 1);
  CHECK(asked_runs == 0);
  CHECK(m.repo.lookup_job("once-ever")->next_scheduled_run == never);
  CHECK(due_state(*m.repo.lookup_job("once-ever")) == DueState::on_demand);
  scheduler.run_now("asked");
  m.settle();
  CHECK(asked_runs == 1);
  m.advance(1s);  // retried once (attempt 2 of 2), then it gives up
  CHECK(asked_runs == 2);
  const auto job = *m.repo.lookup_job("asked");
  CHECK(job.next_scheduled_run == never);
  CHECK(job.consecutive_failures == 2);
  CHECK(due_state(job) == DueState::gave_up);
  m.advance(24h);
  CHECK(asked_runs == 2);
  const auto asked_failures = m.recorder.of(SchedulerEvent::Kind::failed, "asked");
  REQUIRE(!asked_failures.empty());
  CHECK(asked_failures.back().detail == "exit 1; attempt 2 of 2; gave up (run-now retries it)");
  scheduler.run_now("asked");  // asked again: a new round
  m.settle();
  CHECK(asked_runs == 3);
  CHECK(m.repo.lookup_job("asked")->next_scheduled_run == m.at(24h + 1s + 1s));
  CHECK(due_state(*m.repo.lookup_job("asked")) == DueState::scheduled);  // retrying
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: a job on demand until now, registered with an interval, is due at once; one whose "
    "handler said never stays so",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  std::atomic<int> runs{0}, once_runs{0};
  const auto report = [&] {
    return make_job("report", "d", [&](JobContext&) {
      ++runs;
      return answer(1h);
    });
  };
  const auto once_ever = [&] {
    return make_job("once-ever", "d", [&](JobContext&) {
      ++once_runs;
      return std::chrono::microseconds::max();
    });
  };
  {
    Scheduler scheduler("s1", *m.store, m.options());
    scheduler.register_job(report(), {.on_demand = true});
    scheduler.register_job(once_ever(), {.schedule_text = "once"});
    scheduler.start();
    m.settle();
    CHECK(runs == 0);
    CHECK(once_runs == 1);
    CHECK(scheduler.stop());
  }
  // The servers restart with report on an interval now; once-ever as before.
  Scheduler scheduler("s1", *m.store, m.options());
  scheduler.register_job(report(), {.schedule_text = "every 1h", .every = 1h});
  scheduler.register_job(once_ever(), {.schedule_text = "once"});
  CHECK(m.repo.lookup_job("report")->next_scheduled_run == m.at(0s));
  CHECK(due_state(*m.repo.lookup_job("report")) == DueState::scheduled);
  CHECK(m.repo.lookup_job("once-ever")->next_scheduled_run == never);
  scheduler.start();
  m.settle();
  CHECK(runs == 1);
  CHECK(once_runs == 1);
  CHECK(m.repo.lookup_job("report")->next_scheduled_run == m.at(1h));
  // Registered again as it is now: nothing moves.
  scheduler.register_job(report(), {.schedule_text = "every 1h", .replace = true, .every = 1h});
  CHECK(m.repo.lookup_job("report")->next_scheduled_run == m.at(1h));
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: a local queue claims ahead; its runs time out from their start; stop hands them back",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  auto options = m.options();
  options.worker_threads = 1;
  options.local_queue = 3;
  options.backoff.initial = options.backoff.max = 1h;
  Scheduler scheduler("s1", *m.store, options);
  std::array<std::atomic<int>, 5> reasons{};
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    reasons[i] = -1;
    scheduler.register_job(until_cancelled("q" + std::to_string(i), reasons[i]), {.timeout = 600ms});
  }
  scheduler.start();
  m.settle();
  CHECK(m.repo.list_runs({.status = Status::running}).size() == 4);  // 1 running + 3 queued
  m.advance(600ms);                                                  // the first times out; the next starts now
  m.advance(600ms);                                                  // and times out 600 ms after its start
  std::vector<Timestamp> failed;
  for (const auto& run : m.repo.list_runs({.status = Status::failed, .limit = -1})) failed.push_back(*run.end_time);
  std::sort(failed.begin(), failed.end());
  REQUIRE(failed.size() == 2);
  CHECK(failed[0] == m.at(600ms));
  CHECK(failed[1] == m.at(1200ms));
  m.advance(100ms);  // the third has run 100 ms when stop() comes
  CHECK(scheduler.stop());
  int handed_back = 0;
  std::vector<std::string> handed_back_ids;
  for (const auto& run : m.repo.list_runs({.limit = -1})) {
    CHECK(run.status != Status::running);
    if (run.message == "its server stopped before it started") {
      ++handed_back;
      handed_back_ids.push_back(run.private_id);
    }
  }
  CHECK(handed_back == 2);
  // Every run stop() ended has its outcome event: the handed-back ones ran
  // for no time, the stopped one for its 100 ms.
  std::vector<std::string> stopped_ids;
  std::vector<std::chrono::microseconds> durations;
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    for (const auto& e : m.recorder.of(SchedulerEvent::Kind::interrupted, "q" + std::to_string(i))) {
      if (e.detail == "its server stopped before it started") {
        stopped_ids.push_back(e.run_id);
        CHECK(e.duration == 0us);
      } else {
        durations.push_back(e.duration);
      }
    }
  }
  std::sort(stopped_ids.begin(), stopped_ids.end());
  std::sort(handed_back_ids.begin(), handed_back_ids.end());
  CHECK(stopped_ids == handed_back_ids);
  CHECK(durations == std::vector<std::chrono::microseconds>{100ms});
}

TEST_CASE("scheduler on a manual clock: start() ends this server's own leftover runs at once, and the job runs again",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  m.repo.create_job("left", "d");
  const auto leftover = m.repo.run_jobs("s1").at(0);  // as if s1 had crashed mid-run
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(make_job("left", "d", [&](JobContext&) {
    ++runs;
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  CHECK(m.repo.lookup_run(leftover.private_id)->status == Status::interrupted);
  CHECK(runs == 1);  // no time passed
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler on a manual clock: the claim loop wakes when a job becomes due, not at its next interval",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  auto options = m.options();
  options.claim_interval = 10s;
  Scheduler scheduler("s1", *m.store, options);
  std::atomic<int> runs{0};
  scheduler.register_job(make_job("soon", "d",
                                  [&](JobContext&) {
                                    ++runs;
                                    return answer(1h);
                                  }),
                         {.next_run_in = 700ms});
  scheduler.start();
  m.settle();
  m.advance(699ms);
  CHECK(runs == 0);
  m.advance(1ms);
  CHECK(runs == 1);
  CHECK(m.runs("soon").at(0).create_time == m.at(700ms));
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: an operator's cancel stops the handler at the next heartbeat; the job keeps its "
    "schedule",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(until_cancelled("victim", reason), {.every = std::chrono::microseconds(1h)});
  scheduler.start();
  m.settle();
  const std::string run_id = scheduler.executing().at(0).run_id;
  m.advance(300ms);
  CHECK(m.repo.cancel_run(run_id).cancel_requested);
  m.advance(699ms);
  CHECK(reason == -1);
  m.advance(1ms);  // the heartbeat at 1 s
  CHECK(reason == static_cast<int>(CancelReason::operator_request));
  const auto run = *m.repo.lookup_run(run_id);
  CHECK(run.status == Status::interrupted);
  CHECK(run.message == "cancelled by operator");
  CHECK(run.end_time == m.at(1s));
  CHECK(m.repo.lookup_job("victim")->next_scheduled_run == m.at(1s + 1h));
  const auto ended = m.recorder.of(SchedulerEvent::Kind::interrupted, "victim");
  REQUIRE(ended.size() == 1);
  CHECK(ended.at(0).message == "cancelled by operator");
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler on a manual clock: run_now during a run makes the job due again as soon as the run ends",
          "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(make_job("r", "d", [&](JobContext& c) {
    ++runs;
    c.sleep_for(2s);
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  CHECK(runs == 1);
  m.advance(500ms);
  scheduler.run_now("r");
  CHECK(m.repo.lookup_job("r")->run_requested);
  m.advance(1500ms);  // the run ends at 2 s; the job is due at once
  CHECK(runs == 2);
  CHECK(m.runs("r").at(1).create_time == m.at(2s));
  CHECK(!m.repo.lookup_job("r")->run_requested);
  m.advance_in_steps(3s, 1s);
  CHECK(runs == 2);  // then its hour
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler on a manual clock: failures are counted in the store, so two servers back off as one; max_attempts "
    "waits",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Scheduler a("a", *m.store, m.options());
  Scheduler b("b", *m.store, m.options());
  std::atomic<int> calls{0};
  const auto failing = [&] {
    return make_job("f", "d", [&](JobContext&) -> std::chrono::microseconds {
      ++calls;
      throw std::runtime_error("exit 1");
    });
  };
  BackoffOptions backoff{.initial = 100ms, .max = 400ms, .multiplier = 2.0, .jitter = 0.0, .max_attempts = 4};
  a.register_job(failing(), {.every = std::chrono::microseconds(1h), .backoff = backoff});
  b.register_job(failing(), {.every = std::chrono::microseconds(1h), .backoff = backoff});
  a.start();
  b.start();
  m.settle();
  m.advance_in_steps(2s, 50ms);
  CHECK(calls == 4);
  const auto runs = m.runs("f");
  REQUIRE(runs.size() == 4);
  std::string seen;  // for the report of a failure
  for (const auto& run : runs)
    seen += run.server_id + "@" +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(run.create_time - m.start).count()) +
            "ms ";
  INFO("runs: " << seen);
  CHECK(runs.at(0).create_time == m.at(0ms));
  CHECK(runs.at(1).create_time == m.at(100ms));
  CHECK(runs.at(2).create_time == m.at(300ms));
  CHECK(runs.at(3).create_time == m.at(700ms));
  for (std::size_t i = 0; i < runs.size(); ++i) CHECK(runs.at(i).attempt == static_cast<std::int64_t>(i + 1));
  const auto job = *m.repo.lookup_job("f");
  CHECK(job.consecutive_failures == 4);
  CHECK(job.next_scheduled_run == m.at(700ms + 1h));  // its regular time
  CHECK(a.stop());
  CHECK(b.stop());
}

TEST_CASE(
    "scheduler on a manual clock: servers record the jobs they serve; a differing definition is warned of once; stop "
    "forgets",
    "[conformance][scheduler][manual-clock]") {
  JR_MANUAL(m);
  Recorder other;
  auto b_options = m.options();
  b_options.on_event = other.callback();
  Scheduler a("a", *m.store, m.options());
  Scheduler b("b", *m.store, b_options);
  const auto job = [] { return make_job("j", "d", [](JobContext&) { return answer(1h); }); };
  a.register_job(job(), {.definition = "every 5s"});
  b.register_job(job(), {.definition = "every 20s"});
  a.start();
  m.settle();
  CHECK(m.repo.list_servings("j").size() == 1);
  b.start();
  m.settle();
  CHECK(other.count(SchedulerEvent::Kind::warning, "j") == 1);
  const auto servings = m.repo.list_servings("j");
  REQUIRE(servings.size() == 2);
  CHECK(servings.at(0).fingerprint == definition_fingerprint("every 5s"));
  CHECK(servings.at(1).fingerprint == definition_fingerprint("every 20s"));
  CHECK(servings.at(0).live);
  m.advance_in_steps(10s, 1s);  // more records, no more warnings
  CHECK(other.count(SchedulerEvent::Kind::warning, "j") == 1);
  CHECK(a.unregister_job("j"));
  m.advance(1s);
  CHECK(m.repo.list_servings("j").size() == 1);
  CHECK(a.stop());
  CHECK(b.stop());
  CHECK(m.repo.list_servings().empty());
}

}  // namespace jobrepo::conformance
