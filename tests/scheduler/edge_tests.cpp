// The Scheduler at the edges of "one and only one": a run is recorded ended
// only when its handler has returned. stop() that times out, a handler that
// overruns its timeout, a second scheduler with the same server id, and a
// step of the database's clock, each checked for what a peer could do
// meanwhile. On SQLite or PostgreSQL (backend.hpp).
#include "error_of.hpp"
#include "support.hpp"

#include <jobrepo/jobrepo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>

#include <unistd.h>

using namespace std::chrono_literals;
using jobrepo::CancelReason;
using jobrepo::ErrorCode;
using jobrepo::Status;
using jobrepo::test::code_of;
using namespace jobrepo::test::scheduler;

namespace {

// A handler that ignores cancellation: it works until `release` is set.
std::shared_ptr<jobrepo::JobHandler> stubborn_job(const std::string& name, std::atomic<bool>& working,
                                                  std::atomic<bool>& release) {
  return jobrepo::make_job(name, "ignores cancellation", [&working, &release](jobrepo::JobContext&) {
    working = true;
    while (!release) std::this_thread::sleep_for(2ms);
    working = false;
    return std::chrono::microseconds(0);
  });
}

}  // namespace

TEST_CASE("scheduler: stop() that times out hands no run back while its handler works; 20 times, no peer claims") {
  Fixture f;
  int overlaps = 0, timed_out = 0, completed = 0, told = 0;
  for (int i = 0; i < 20; ++i) {
    Recorder recorder;
    auto options = fast_options(recorder);
    options.stop_timeout = 100ms;
    std::atomic<bool> working{false}, release{false};
    std::string run_id;
    {
      jobrepo::Scheduler owner("owner-" + std::to_string(i), *f.store, options);
      owner.register_job(stubborn_job("stubborn", working, release));
      owner.start();
      REQUIRE(wait_until([&] { return working.load(); }, 5s));
      run_id = owner.executing().at(0).run_id;
      bool returned = true;
      std::thread stopper([&] { returned = owner.stop(); });
      // A peer tries to claim the job while the handler works on.
      const auto until = Steady::now() + 300ms;
      while (Steady::now() < until) {
        for (const auto& run : f.repo.run_jobs("peer")) {
          if (working) ++overlaps;
          f.repo.complete_run(run.private_id, 0s);
        }
        std::this_thread::sleep_for(10ms);
      }
      stopper.join();
      timed_out += returned ? 0 : 1;
      told += recorder.count(SchedulerEvent::Kind::error, "") > 0 ? 1 : 0;
      release = true;
    }  // the destructor waits for the handler and stores its outcome
    const auto run = f.repo.lookup_run(run_id);
    REQUIRE(run);
    completed += run->status == Status::completed ? 1 : 0;
  }
  CHECK(timed_out == 20);
  CHECK(overlaps == 0);
  CHECK(told == 20);       // an error event said that the handler did not return
  CHECK(completed == 20);  // it returned normally at last: done
}

TEST_CASE("scheduler: a handler that overruns its timeout is failed, with an error event at the deadline") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<bool> working{false};
  scheduler.register_job(jobrepo::make_job("overrun", "ignores its timeout",
                                           [&](jobrepo::JobContext&) {
                                             working = true;
                                             std::this_thread::sleep_for(700ms);
                                             working = false;
                                             return std::chrono::microseconds(1h);
                                           }),
                         {.timeout = 200ms});
  const auto started = Steady::now();
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::failed, "overrun") == 1; }, 5s));
  const auto run = f.repo.list_runs({.job_name = "overrun"}).at(0);
  CHECK(run.status == Status::failed);
  CHECK(run.message == "timed out after 200ms");
  INFO(f.recorder.dump());
  const auto errors = f.recorder.of(SchedulerEvent::Kind::error, "overrun");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].event.detail.find("timed out after 200ms") != std::string::npos);
  CHECK(errors[0].at - started < 600ms);  // at the deadline, not when the handler returned
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: a scheduler with the server id of a live one refuses to start and leaves its runs alone") {
  Fixture f;
  auto second_store = jobrepo::open_store(f.url);
  jobrepo::Scheduler first("same-id", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  first.register_job(blocking_job("held", reason));
  first.start();
  REQUIRE(wait_until([&] { return handler_started(first); }, 5s));
  const std::string run_id = first.executing().at(0).run_id;

  Recorder recorder;
  jobrepo::Scheduler second("same-id", *second_store, fast_options(recorder));
  std::atomic<int> second_reason{-1};
  second.register_job(blocking_job("held", second_reason));
  std::string message;
  CHECK(code_of([&] { second.start(); }, &message) == ErrorCode::not_unique);
  INFO(message);
  CHECK(message.find("same-id") != std::string::npos);
  CHECK(message.find("pid " + std::to_string(getpid())) != std::string::npos);  // where the live one runs
  std::this_thread::sleep_for(300ms);
  CHECK(f.repo.lookup_run(run_id)->status == Status::running);
  CHECK(reason == -1);  // not cancelled
  CHECK(second_reason == -1);
  CHECK(first.stop());
}

TEST_CASE("scheduler: a forward step of the database clock by twice the threshold interrupts no live run") {
  Fixture f;
  auto second_store = jobrepo::open_store(f.url);
  jobrepo::Scheduler a("a", *f.store, fast_options(f.recorder));
  Recorder recorder;
  jobrepo::Scheduler b("b", *second_store, fast_options(recorder));
  std::atomic<int> reason{-1}, b_reason{-1};
  a.register_job(blocking_job("held", reason));
  b.register_job(blocking_job("held", b_reason));
  a.start();
  REQUIRE(wait_until([&] { return handler_started(a); }, 5s));
  b.start();
  std::this_thread::sleep_for(300ms);  // b sees a's run heartbeat
  // The database's clock jumps 2 s ahead (threshold 1 s), as after an NTP step.
  f.store->set_clock_offset(2s);
  second_store->set_clock_offset(2s);
  std::this_thread::sleep_for(1500ms);
  INFO(f.recorder.dump() << recorder.dump());
  CHECK(reason == -1);  // a's handler goes on
  CHECK(b_reason == -1);
  CHECK(b.executing().empty());
  CHECK(f.repo.list_runs({.job_name = "held"}).size() == 1);
  CHECK(f.recorder.count(SchedulerEvent::Kind::interrupted_peer, "held") == 0);
  CHECK(recorder.count(SchedulerEvent::Kind::interrupted_peer, "held") == 0);
  CHECK(b.stop());
  CHECK(a.stop());
}
