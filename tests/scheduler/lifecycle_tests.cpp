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
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
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
  jobrepo::Repository repo =
      (store->set_time_source([this] { return runtime.wall_now(); }), store->migrate(), jobrepo::Repository(*store));
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

TEST_CASE(
    "lifecycle: concurrent and repeated start() and stop() from 8 threads: every call returns, as the table says") {
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
  REQUIRE(
      jobrepo::test::scheduler::wait_until([&] { return waiting.phase() == jobrepo::SchedulerPhase::starting; }, 5s));
  m.advance(1s);
  CHECK(!returned);
  CHECK(waiting.stop());
  starter.join();
  CHECK(returned);
  CHECK(waiting.phase() == jobrepo::SchedulerPhase::stopped);
  CHECK(m.recorder.count(SchedulerEvent::Kind::warning, "") >=
        1);  // "start: server id "held" is held by elsewhere pid 1 ..."
}
