// The Scheduler's lifecycle (scheduler.hpp, "Lifecycle") on a ManualRuntime:
// concurrent and repeated start() and stop(), and a stop() during start()'s
// wait for a lease. The store is SQLite in memory whose clock is the
// runtime's (Store::set_time_source); nothing here sleeps for time to pass.
// The Scheduler's behaviour on a manual clock is in the conformance suite
// (tests/conformance/src/scheduler_cases.cpp).
#include "support.hpp"

#include <jobrepo/jobrepo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
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

  jobrepo::SchedulerOptions options() {
    auto o = jobrepo::test::scheduler::fast_options(recorder);
    o.runtime = &runtime;
    // A test that moves time too far at once must fail, not end the test
    // program (the watchdog has a test of its own, edge_tests.cpp).
    o.fence_overrun = jobrepo::FenceOverrun::report;
    return o;
  }
  void settle() { REQUIRE(runtime.settle()); }
  void advance(std::chrono::microseconds by) { REQUIRE(runtime.advance_and_settle(by)); }
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
  // It warns before it starts to wait. Half the interrupt threshold later
  // (1 s), whether its wait began before the clock moved or after, the
  // holder is not yet silent for long enough to be taken over.
  REQUIRE(jobrepo::test::scheduler::wait_until([&] { return m.recorder.count(SchedulerEvent::Kind::warning, "") >= 1; },
                                               5s));
  CHECK(waiting.phase() == jobrepo::SchedulerPhase::starting);
  m.advance(500ms);
  CHECK(!returned);
  CHECK(waiting.stop());
  starter.join();
  CHECK(returned);
  CHECK(waiting.phase() == jobrepo::SchedulerPhase::stopped);
  CHECK(m.recorder.count(SchedulerEvent::Kind::warning, "") >=
        1);  // "start: server id "held" is held by elsewhere pid 1 ..."
}
