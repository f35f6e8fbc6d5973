// The Scheduler on a ManualRuntime: time moves only when a test says so
// (advance), and the test waits until the scheduler has done what that time
// asks for (settle). The store is SQLite in memory whose clock is the
// runtime's wall clock (Store::set_time_source), so every time is exact: no
// test here sleeps, and no assertion is a range.
#include "error_of.hpp"
#include "support.hpp"

#include <jobrepo/jobrepo.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using jobrepo::CancelReason;
using jobrepo::ErrorCode;
using jobrepo::SchedulerEvent;
using jobrepo::Status;
using jobrepo::test::scheduler::Recorder;

namespace {

// A store whose clock is the manual runtime's, a Repository on it, events.
struct Manual {
  jobrepo::ManualRuntime runtime;
  std::unique_ptr<jobrepo::Store> store = jobrepo::open_store("sqlite::memory:");
  jobrepo::Repository repo = (store->set_time_source([this] { return runtime.wall_now(); }), store->migrate(),
                              jobrepo::Repository(*store));
  Recorder recorder;
  const jobrepo::Timestamp start = runtime.wall_now();

  // Threshold 4 s, monitor 1 s: fenced 3 s after the last good heartbeat.
  jobrepo::SchedulerOptions options() {
    jobrepo::SchedulerOptions o;
    o.runtime = &runtime;
    o.worker_threads = 2;
    o.claim_interval = 1s;
    o.monitor_interval = 1s;
    o.interrupt_threshold = 4s;
    o.stop_timeout = 5s;
    o.backoff.initial = 200ms;
    o.backoff.jitter = 0.0;
    o.on_event = recorder.callback();
    // A test that moves time too far at once must fail, not end the test
    // program (the watchdog has a test of its own, edge_tests.cpp).
    o.fence_overrun = jobrepo::FenceOverrun::report;
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
  jobrepo::Timestamp at(std::chrono::microseconds since_start) const { return start + since_start; }
  std::vector<jobrepo::Run> runs(const std::string& job) {
    auto all = repo.list_runs({.job_name = job, .limit = -1});
    std::reverse(all.begin(), all.end());  // oldest first
    return all;
  }
};

std::chrono::microseconds answer(std::chrono::microseconds d) { return d; }

}  // namespace

TEST_CASE("manual clock: a job due at once runs at once; it runs again exactly its answer after its end") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("hourly", "d", [&](jobrepo::JobContext&) {
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
  CHECK(scheduler.phase() == jobrepo::SchedulerPhase::stopped);
}

TEST_CASE("manual clock: back-off after failures is exact: 200, 400, 800 ms, then a success resets it") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> calls{0};
  scheduler.register_job(jobrepo::make_job("flaky", "d", [&](jobrepo::JobContext&) -> std::chrono::microseconds {
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

TEST_CASE("manual clock: a job's timeout cancels its handler at the exact deadline; the run fails then") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(jobrepo::make_job("slow", "d",
                                           [&](jobrepo::JobContext& c) {
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

TEST_CASE("manual clock: a run that cannot heartbeat is fenced exactly 3/4 of the threshold after its last good one") {
  Manual m;
  struct HeartbeatsFail : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> failing{false};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (failing && c.size() == 1 && c.front().to == Status::running) {
        throw jobrepo::Error(ErrorCode::unavailable, "update_run: injected outage");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*m.store);
  jobrepo::Scheduler scheduler("s1", store, m.options());
  std::atomic<int> reason{-1};
  scheduler.register_job(jobrepo::make_job("held", "d", [&](jobrepo::JobContext& c) {
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

TEST_CASE("manual clock: a dead server's run is interrupted once it was seen silent for the threshold, and run here") {
  Manual m;
  m.repo.create_job("orphan", "d");
  const auto dead = m.repo.run_jobs("dead-server").at(0);  // claimed at 0, then never heard of again
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("orphan", "d", [&](jobrepo::JobContext&) {
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

TEST_CASE("manual clock: a step of the database's wall clock by 10 thresholds interrupts no live run") {
  Manual m;
  jobrepo::Scheduler a("a", *m.store, m.options());
  jobrepo::Scheduler b("b", *m.store, m.options());
  std::atomic<int> reason{-1};
  const auto held = [&] {
    return jobrepo::make_job("held", "d", [&](jobrepo::JobContext& c) {
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

TEST_CASE("manual clock: stop() that times out returns false at the exact timeout; the run stays running") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  // A handler that ignores cancellation: it waits (on the runtime, so that
  // settle() knows it waits) until the test releases it.
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  scheduler.register_job(jobrepo::make_job("stubborn", "d", [&](jobrepo::JobContext&) {
    std::unique_lock lock(mutex);
    m.runtime.wait_until(lock, released, jobrepo::Runtime::SteadyTime::max(), [&] { return release; });
    return answer(1h);
  }));
  scheduler.start();
  m.settle();
  std::atomic<int> result{-1};
  std::thread stopper([&] { result = scheduler.stop() ? 1 : 0; });
  REQUIRE(jobrepo::test::scheduler::wait_until(
      [&] { return scheduler.phase() == jobrepo::SchedulerPhase::stopping; }, 5s));
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

TEST_CASE("manual clock: run_due() runs what is due on the calling thread, for tests") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::thread::id ran_on;
  scheduler.register_job(jobrepo::make_job("daily", "d", [&](jobrepo::JobContext&) {
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
  CHECK(jobrepo::test::code_of([&] { scheduler.run_due(); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message.find("run_due: the scheduler is running") != std::string::npos);
  CHECK(scheduler.stop());
  CHECK(scheduler.run_due().empty());  // stopped: drivable again
}

TEST_CASE("lifecycle: concurrent and repeated start() and stop() from 8 threads: every call returns, as the table says") {
  Manual m;
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("j", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return answer(1h);
  }));
  std::atomic<int> errors{0}, stops_false{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        try {
          if ((i + t) % 2 == 0) {
            scheduler.start();
            const auto phase = scheduler.phase();
            // start() returned: it runs, unless another thread stopped it since.
            if (phase != jobrepo::SchedulerPhase::running && phase != jobrepo::SchedulerPhase::stopping &&
                phase != jobrepo::SchedulerPhase::stopped && phase != jobrepo::SchedulerPhase::starting) {
              ++errors;
            }
          } else if (!scheduler.stop()) {
            ++stops_false;
          }
        } catch (...) {
          ++errors;
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  CHECK(errors == 0);
  CHECK(stops_false == 0);  // every handler returns at once
  CHECK(scheduler.stop());
  CHECK(scheduler.phase() == jobrepo::SchedulerPhase::stopped);
  // It still works: started once more, it runs the job when due.
  m.advance(1h);
  scheduler.start();
  m.settle();
  CHECK(runs > 0);
  CHECK(scheduler.stop());
  CHECK(m.repo.list_runs({.status = Status::running}).empty());
  CHECK(m.repo.list_servings().empty());  // the lease given up
}

TEST_CASE("lifecycle: stop() before start(), start() after stop(), stop() while start() waits for a lease") {
  Manual m;
  {
    jobrepo::Scheduler never_started("s1", *m.store, m.options());
    CHECK(never_started.phase() == jobrepo::SchedulerPhase::idle);
    CHECK(never_started.stop());
    CHECK(never_started.phase() == jobrepo::SchedulerPhase::stopped);
  }
  // Started again after a stop: a new life, the job runs again.
  jobrepo::Scheduler scheduler("s1", *m.store, m.options());
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("j", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return answer(1h);  // (0: due again at once, forever, at a clock that stands still)
  }));
  scheduler.start();
  m.settle();
  CHECK(scheduler.stop());
  const int before = runs;
  m.advance(1h);  // due again
  scheduler.start();
  m.settle();
  CHECK(scheduler.phase() == jobrepo::SchedulerPhase::running);
  CHECK(runs > before);
  CHECK(scheduler.stop());
  // A live holder of the id: start() waits to see whether it renews; a
  // stop() meanwhile ends the wait, and nothing starts.
  m.repo.record_server("held", 1h, {.instance = "another instance", .address = "elsewhere pid 1"});
  jobrepo::Scheduler waiting("held", *m.store, m.options());
  std::atomic<bool> returned{false};
  std::thread starter([&] {
    waiting.start();
    returned = true;
  });
  REQUIRE(jobrepo::test::scheduler::wait_until(
      [&] { return waiting.phase() == jobrepo::SchedulerPhase::starting; }, 5s));
  m.advance(1s);
  CHECK(!returned);
  CHECK(waiting.stop());
  starter.join();
  CHECK(returned);
  CHECK(waiting.phase() == jobrepo::SchedulerPhase::stopped);
  CHECK(m.recorder.count(SchedulerEvent::Kind::warning, "") >= 1);  // "start: server id "held" is held by elsewhere pid 1 ..."
}
