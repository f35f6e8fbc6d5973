// The Scheduler on SQLite or PostgreSQL (see backend.hpp): the Boundary
// workflow, progress, stop, interruption, recovery of a dead server's run,
// back-off, fencing, timeouts, and two scheduler processes sharing jobs.
#include "error_of.hpp"
#include "fault_store.hpp"
#include "support.hpp"

#include <jobrepo/jobrepo.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using jobrepo::CancelReason;
using jobrepo::ErrorCode;
using jobrepo::SchedulerEvent;
using jobrepo::test::code_of;
using Steady = std::chrono::steady_clock;

using namespace jobrepo::test::scheduler;

TEST_CASE("scheduler: the failed job reruns after its back-off, the completed one waits; run_now") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> a_runs{0}, b_runs{0};
  scheduler.register_job(
      jobrepo::make_job("a-fails", "always fails", [&](jobrepo::JobContext&) -> std::chrono::microseconds {
        ++a_runs;
        throw std::runtime_error("boom");
      }));
  scheduler.register_job(jobrepo::make_job("b-completes", "completes hourly", [&](jobrepo::JobContext&) {
    ++b_runs;
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return a_runs >= 3; }, 10s));
  INFO(f.recorder.dump());
  CHECK(b_runs == 1);
  CHECK(f.recorder.count(SchedulerEvent::Kind::completed, "b-completes") == 1);
  CHECK(f.recorder.count(SchedulerEvent::Kind::failed, "a-fails") >= 2);
  // b is due in an hour; run_now makes it run again at once.
  const auto asked = Steady::now();
  scheduler.run_now("b-completes");
  REQUIRE(wait_until([&] { return b_runs == 2; }, 3s));
  CHECK(Steady::now() - asked < 1s);
  CHECK(code_of([&] { scheduler.run_now("no-such-job"); }) == ErrorCode::record_not_found);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: progress is stored with the heartbeat; executing() shows the run") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("slow", reason));
  scheduler.start();
  REQUIRE(wait_until([&] { return scheduler.executing().size() == 1; }, 5s));
  const auto local = scheduler.executing().front();
  CHECK(local.job_name == "slow");
  REQUIRE(wait_until(
      [&] {
        const auto run = f.repo.lookup_run(local.run_id);
        return run && run->completed_count == 3 && run->total_count == 10;
      },
      2s));
  CHECK(scheduler.executing().front().completed_count == 3);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: stop() cancels a blocked handler and leaves its run interrupted") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("blocked", reason));
  scheduler.start();
  REQUIRE(wait_until([&] { return handler_started(scheduler); }, 5s));
  const std::string run_id = scheduler.executing().front().run_id;
  const auto asked = Steady::now();
  CHECK(scheduler.stop());
  CHECK(Steady::now() - asked < 2s);
  CHECK(reason == static_cast<int>(CancelReason::stopping));
  CHECK(f.repo.lookup_run(run_id)->status == jobrepo::Status::interrupted);
  CHECK(f.repo.run_jobs("s2").size() == 1);  // a peer may take the job at once
}

TEST_CASE("scheduler: a run interrupted in the store is cancelled here within a monitor interval") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("victim", reason));
  scheduler.start();
  REQUIRE(wait_until([&] { return handler_started(scheduler); }, 5s));
  const auto interrupted_at = Steady::now();
  REQUIRE(f.repo.interrupt_runs(0s).size() == 1);  // as a peer would
  REQUIRE(wait_until([&] { return reason >= 0; }, 2s));
  const auto took = Steady::now() - interrupted_at;
  CHECK(reason == static_cast<int>(CancelReason::interrupted));
  CHECK(took < 100ms + 150ms);  // one monitor interval, plus scheduling slack
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: a dead server's run is interrupted after the threshold and run here") {
  Fixture f;
  f.repo.create_job("orphan", "d");
  const auto dead = f.repo.run_jobs("dead-server");  // claimed, then never heard of again
  REQUIRE(dead.size() == 1);
  const auto claimed_at = Steady::now();
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("orphan", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  const auto took = Steady::now() - claimed_at;
  INFO(f.recorder.dump());
  CHECK(took >= 1s);                 // never before the threshold
  CHECK(took < 1s + 100ms + 300ms);  // threshold + one monitor interval, plus slack
  CHECK(f.repo.lookup_run(dead.front().private_id)->status == jobrepo::Status::interrupted);
  CHECK(f.recorder.count(SchedulerEvent::Kind::interrupted_peer, "orphan") == 1);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: back-off grows with each failure and resets after a success") {
  Fixture f;
  auto options = fast_options(f.recorder);
  options.backoff.initial = 100ms;
  options.backoff.multiplier = 2.0;
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  std::atomic<int> calls{0};
  // Fails three times, succeeds once (due again at once), then fails.
  scheduler.register_job(jobrepo::make_job("flaky", "d", [&](jobrepo::JobContext&) -> std::chrono::microseconds {
    const int call = ++calls;
    if (call == 4) return std::chrono::microseconds(0);
    throw std::runtime_error("failure " + std::to_string(call));
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::failed, "flaky") >= 4; }, 10s));
  CHECK(scheduler.stop());
  const auto failed = f.recorder.of(SchedulerEvent::Kind::failed, "flaky");
  std::vector<long> retry_ms;
  for (const auto& e : failed) {
    const auto at = e.event.detail.find("retry in ");
    REQUIRE(at != std::string::npos);
    retry_ms.push_back(std::stol(e.event.detail.substr(at + 9)));
  }
  INFO(f.recorder.dump());
  CHECK(retry_ms[0] == 100);
  CHECK(retry_ms[1] == 200);
  CHECK(retry_ms[2] == 400);
  CHECK(retry_ms[3] == 100);  // reset by the success
  CHECK(f.recorder.count(SchedulerEvent::Kind::completed, "flaky") == 1);
  // The gaps between failures follow the back-off (the store reschedules).
  CHECK(failed[1].at - failed[0].at >= 100ms - 20ms);
  CHECK(failed[2].at - failed[1].at >= 200ms - 20ms);
}

TEST_CASE("scheduler: only registered jobs are claimed") {
  Fixture f;
  f.repo.create_job("foreign", "a job of another server's code");
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("mine", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  std::this_thread::sleep_for(400ms);
  CHECK(scheduler.stop());
  CHECK(f.recorder.count(SchedulerEvent::Kind::claimed, "foreign") == 0);
  const auto others = f.repo.run_jobs("s2", {.limit = -1});
  REQUIRE(others.size() == 1);
  CHECK(others.front().job_name == "foreign");
}

TEST_CASE("scheduler: serving every job, claims name none; a job created elsewhere meanwhile is handed back once") {
  Fixture f;
  auto options = fast_options(f.recorder);
  options.claim_interval = 1h;  // one scan of the jobs, at the first sleep
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("mine", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  std::this_thread::sleep_for(200ms);  // asleep: the scan found only "mine"
  // A job this server does not run, due now: the wake-up makes it claim
  // without names and take it; it hands the run back before anything ran.
  f.repo.create_job("stranger", "another server's job");
  const auto handed_back = [&] {
    return f.repo.list_runs({.job_name = "stranger", .status = jobrepo::Status::interrupted}).size();
  };
  REQUIRE(wait_until([&] { return handed_back() == 1; }, 5s));
  const auto run = f.repo.list_runs({.job_name = "stranger"}).front();
  CHECK(run.message.value_or("") == "claimed by s1, which does not run this job; handed back");
  // Claims name the jobs again: another wake-up leaves the job alone.
  f.repo.update_job_next_run("mine", 0s);
  REQUIRE(wait_until([&] { return runs == 2; }, 5s));
  std::this_thread::sleep_for(200ms);
  CHECK(handed_back() == 1);
  CHECK(scheduler.stop());
  CHECK(f.recorder.count(SchedulerEvent::Kind::error, "stranger") == 0);
  const auto others = f.repo.run_jobs("s2", {.limit = -1});  // still due, for the servers that run it
  REQUIRE(others.size() == 1);
  CHECK(others.front().job_name == "stranger");
}

TEST_CASE("scheduler: a run that cannot heartbeat is fenced before a peer may interrupt it") {
  Fixture f;
  struct HeartbeatsFail : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> failing{false};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (failing && c.size() == 1 && c.front().to == jobrepo::Status::running) {
        throw jobrepo::Error(ErrorCode::unavailable, "update_run: injected outage");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("fenced", reason));
  scheduler.start();
  REQUIRE(wait_until([&] { return handler_started(scheduler); }, 5s));
  std::this_thread::sleep_for(250ms);  // a few good heartbeats first
  const auto outage = Steady::now();
  store.failing = true;
  REQUIRE(wait_until([&] { return reason >= 0; }, 3s));
  const auto took = Steady::now() - outage;
  CHECK(reason == static_cast<int>(CancelReason::fenced));
  CHECK(took < 1s);                     // before the threshold: before any peer could interrupt
  CHECK(took >= 750ms - 100ms - 20ms);  // 3/4 of it after the last good heartbeat
  store.failing = false;
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: an outcome that meets busy or unavailable is stored later, never lost") {
  Fixture f;
  // The first completions fail as a lock conflict or an outage would.
  struct OutcomesFail : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<int> failures{0};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      const bool ends = std::any_of(c.begin(), c.end(), [](const auto& t) { return jobrepo::is_final(t.to); });
      if (ends && failures < 4) {
        ++failures;
        throw jobrepo::Error(failures % 2 ? ErrorCode::busy : ErrorCode::unavailable, "update_run: injected");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("once", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::completed, "once") == 1; }, 5s));
  CHECK(store.failures == 4);
  const auto stored = f.repo.list_runs({.job_name = "once"});
  REQUIRE(stored.size() == 1);
  CHECK(stored.front().status == jobrepo::Status::completed);
  CHECK(f.repo.lookup_job("once")->next_scheduled_run > jobrepo::Clock::now() + 50min);
  CHECK(scheduler.stop());
  CHECK(runs == 1);
  CHECK(f.repo.lookup_run(stored.front().private_id)->status == jobrepo::Status::completed);
}

TEST_CASE("scheduler: a handler returning microseconds::max() means 'not again', and loses no other outcome") {
  Fixture f;
  auto options = fast_options(f.recorder);
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  // Both handlers return at the same moment, so that their outcomes share a batch.
  std::atomic<int> arrived{0};
  const auto together = [&] {
    ++arrived;
    while (arrived < 2) std::this_thread::sleep_for(1ms);
  };
  std::atomic<int> never_runs{0};
  scheduler.register_job(jobrepo::make_job("never", "d", [&](jobrepo::JobContext&) {
    ++never_runs;
    together();
    return std::chrono::microseconds::max();
  }));
  scheduler.register_job(jobrepo::make_job("hourly", "d", [&](jobrepo::JobContext&) {
    together();
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::completed, "hourly") == 1; }, 5s));
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::completed, "never") == 1; }, 5s));
  std::this_thread::sleep_for(500ms);
  CHECK(scheduler.stop());
  INFO(f.recorder.dump());
  CHECK(never_runs == 1);
  CHECK(f.recorder.count(SchedulerEvent::Kind::error, "hourly") == 0);
  CHECK(f.repo.lookup_job("never")->next_scheduled_run > jobrepo::Clock::now() + std::chrono::hours(24 * 365 * 50));
  CHECK(f.repo.list_runs({.job_name = "hourly"}).front().status == jobrepo::Status::completed);
}

TEST_CASE("scheduler: a run past its timeout is cancelled and failed") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("slowpoke", reason), {.timeout = 300ms});
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::failed, "slowpoke") >= 1; }, 5s));
  CHECK(reason == static_cast<int>(CancelReason::deadline));
  CHECK(f.recorder.of(SchedulerEvent::Kind::failed, "slowpoke").front().event.detail.find("timed out") !=
        std::string::npos);
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler: a local queue claims ahead of the workers; its runs time out from their start; stop hands "
    "them back at once") {
  Fixture f;
  auto options = fast_options(f.recorder);
  options.worker_threads = 1;
  options.local_queue = 3;
  options.backoff.initial = options.backoff.max = 1h;  // a job that timed out stays away
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  // Each handler blocks until it times out: the one worker holds the first
  // run, the queue the next three, the fifth job waits for a place.
  std::array<std::atomic<int>, 5> reasons{};
  const auto name = [](std::size_t i) { return "q" + std::to_string(i); };
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    reasons[i] = -1;
    scheduler.register_job(blocking_job(name(i), reasons[i]), {.timeout = 600ms});
  }
  scheduler.start();
  const auto running = [&] { return f.repo.list_runs({.job_name = "", .status = jobrepo::Status::running}).size(); };
  REQUIRE(wait_until([&] { return running() == 4; }, 5s));
  std::this_thread::sleep_for(200ms);  // a claim for more would have come by now
  CHECK(running() == 4);
  // Runs end one after another, 600 ms apart: each queued run's timeout
  // counts from its start, not from the claim that took it with the first.
  const auto failed = [&] {
    std::vector<Steady::time_point> at;
    for (std::size_t i = 0; i < reasons.size(); ++i) {
      for (const auto& e : f.recorder.of(SchedulerEvent::Kind::failed, name(i))) at.push_back(e.at);
    }
    std::sort(at.begin(), at.end());
    return at;
  };
  REQUIRE(wait_until([&] { return failed().size() >= 2; }, 5s));
  // Stop: the two queued runs (the third and the fifth job) end at once,
  // interrupted, their jobs due for a peer; the worker's run is cancelled.
  const auto asked = Steady::now();
  CHECK(scheduler.stop());
  CHECK(Steady::now() - asked < 2s);
  const auto times = failed();
  REQUIRE(times.size() == 2);
  CHECK(times[1] - times[0] >= 550ms);
  int handed_back = 0;
  for (const auto& run : f.repo.list_runs({.job_name = "", .status = std::nullopt, .limit = -1})) {
    CHECK(run.status != jobrepo::Status::running);
    if (run.message && *run.message == "its server stopped before it started") ++handed_back;
  }
  CHECK(handed_back == 2);
  INFO(f.recorder.dump());
  CHECK(f.recorder.count(SchedulerEvent::Kind::error, "") == 0);
  CHECK(f.repo.run_jobs("s2", {.limit = 10}).size() == 3);  // a peer may take them (and the cancelled one) at once
}

TEST_CASE("scheduler: start() interrupts this server's own leftover runs, and the job runs again") {
  Fixture f;
  f.repo.create_job("left", "d");
  const auto leftover = f.repo.run_jobs("s1").at(0);  // as if s1 had crashed mid-run
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("left", "d", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  const auto started = Steady::now();
  scheduler.start();
  CHECK(f.repo.lookup_run(leftover.private_id)->status == jobrepo::Status::interrupted);
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  CHECK(Steady::now() - started < 1s);  // no waiting for the threshold
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: the claim loop wakes when a job becomes due, not at the next interval") {
  Fixture f;
  auto options = fast_options(f.recorder);
  options.claim_interval = 10s;
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("soon", "d",
                                           [&](jobrepo::JobContext&) {
                                             ++runs;
                                             return std::chrono::microseconds(1h);
                                           }),
                         {.next_run_in = 700ms});
  const auto started = Steady::now();
  scheduler.start();
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  const auto took = Steady::now() - started;
  CHECK(took >= 600ms);
  CHECK(took < 700ms + 300ms);  // far from the 10 s claim interval
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: a job made due elsewhere wakes an idle scheduler at once, not at the next interval") {
  Fixture f;
  auto options = fast_options(f.recorder);
  options.claim_interval = 30s;
  jobrepo::Scheduler scheduler("s1", *f.store, options);
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("later", "d",
                                           [&](jobrepo::JobContext&) {
                                             ++runs;
                                             return std::chrono::microseconds(1h);
                                           }),
                         {.next_run_in = 1h});
  scheduler.start();
  std::this_thread::sleep_for(300ms);  // the claim loop is asleep for 30 s now
  REQUIRE(runs == 0);
  // Another store, as another process has: PostgreSQL's NOTIFY reaches
  // every listener; SQLite's commit watcher sees the other connection's
  // commit.
  const auto other = jobrepo::open_store(f.url);
  jobrepo::Repository elsewhere(*other);
  for (int i = 1; i <= 3; ++i) {
    const auto asked = Steady::now();
    elsewhere.update_job_next_run("later", 0s);
    REQUIRE(wait_until([&] { return runs == i; }, 5s));
    INFO("wake-up " << i << " took "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - asked).count() << " ms");
    CHECK(Steady::now() - asked < 1s);
    std::this_thread::sleep_for(100ms);
  }
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: bad options are refused") {
  Fixture f;
  jobrepo::SchedulerOptions options;
  CHECK(code_of([&] { jobrepo::Scheduler("", *f.store); }) == ErrorCode::invalid_parameter);
  options.worker_threads = 0;
  CHECK(code_of([&] { jobrepo::Scheduler("s", *f.store, options); }) == ErrorCode::invalid_parameter);
  options = {};
  options.monitor_interval = 10s;  // more than threshold / 4
  CHECK(code_of([&] { jobrepo::Scheduler("s", *f.store, options); }) == ErrorCode::invalid_parameter);
  options = {};
  options.claim_interval = 0s;
  CHECK(code_of([&] { jobrepo::Scheduler("s", *f.store, options); }) == ErrorCode::invalid_parameter);
  // Each of these was accepted once, and misbehaved later.
  const std::vector<std::pair<std::string, std::function<void(jobrepo::SchedulerOptions&)>>> bad = {
      {"interrupt_threshold", [](auto& o) { o.interrupt_threshold = std::chrono::microseconds::max(); }},
      {"grace", [](auto& o) { o.grace = -1s; }},
      {"claim_limit", [](auto& o) { o.claim_limit = -1; }},
      {"local_queue", [](auto& o) { o.local_queue = -1; }},
      {"stop_timeout", [](auto& o) { o.stop_timeout = -1s; }},
      {"backoff.initial", [](auto& o) { o.backoff.initial = -1s; }},
      {"backoff.max", [](auto& o) { o.backoff.max = 1ms; }},
      {"backoff.multiplier", [](auto& o) { o.backoff.multiplier = 0.5; }},
      {"backoff.jitter", [](auto& o) { o.backoff.jitter = 1.0; }},
      {"backoff.jitter", [](auto& o) { o.backoff.jitter = -0.1; }},
  };
  for (const auto& [field, change] : bad) {
    options = {};
    change(options);
    std::string message;
    CHECK(code_of([&] { jobrepo::Scheduler("s", *f.store, options); }, &message) == ErrorCode::invalid_parameter);
    CHECK(message.find(field) != std::string::npos);
  }
  // A job registered twice is a mistake, unless it says it replaces.
  jobrepo::Scheduler scheduler("s", *f.store, fast_options(f.recorder));
  const auto job = [] { return jobrepo::make_job("twice", "d", [](jobrepo::JobContext&) { return 1s; }); };
  scheduler.register_job(job());
  std::string message;
  CHECK(code_of([&] { scheduler.register_job(job()); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message.find("twice") != std::string::npos);
  scheduler.register_job(job(), {.replace = true});
  CHECK(code_of([&] {
          scheduler.register_job(jobrepo::make_job("t", "d", [](auto&) { return 1s; }), {.timeout = -1s});
        }) == ErrorCode::invalid_parameter);
}

TEST_CASE("scheduler: whatever a store throws, no scheduler thread dies") {
  Fixture f;
  // A third-party store that throws what it should not, for a while.
  struct Throwing : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<int> left{0};  // set after start(), which throws what the store throws
    void misbehave() {
      if (--left >= 0) {
        if (left % 2 == 0) throw std::runtime_error("not a jobrepo::Error");
        throw 42;
      }
    }
    std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest& r) override {
      misbehave();
      return StoreWrapper::claim_runs(r);
    }
    std::vector<jobrepo::Job> list_jobs(const jobrepo::JobQuery& q) override {
      misbehave();
      return StoreWrapper::list_jobs(q);
    }
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      misbehave();
      return StoreWrapper::transition_runs(c);
    }
    std::vector<jobrepo::Run> interrupt_stale_runs(const jobrepo::StaleRunQuery& q) override {
      misbehave();
      return StoreWrapper::interrupt_stale_runs(q);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("steady", "d", [&](jobrepo::JobContext& c) {
    ++runs;
    c.sleep_for(150ms);
    return std::chrono::microseconds(100ms);
  }));
  scheduler.start();
  store.left = 12;
  REQUIRE(wait_until([&] { return store.left < 0 && f.recorder.count(SchedulerEvent::Kind::completed, "steady") >= 2; },
                     10s));
  CHECK(scheduler.stop());
  const auto log = f.recorder.dump();
  INFO(log);
  CHECK(log.find("not a jobrepo::Error") != std::string::npos);
  CHECK(log.find("unknown exception") != std::string::npos);
}

TEST_CASE("scheduler: a job's timeout fires on time while the store hangs") {
  Fixture f;
  struct Hanging : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> hang{false};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (hang) std::this_thread::sleep_for(3s);
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  std::atomic<long long> cancelled_after_ms{-1};
  scheduler.register_job(
      jobrepo::make_job("limited", "d",
                        [&](jobrepo::JobContext& c) {
                          const auto started = Steady::now();
                          store.hang = true;  // every heartbeat from now on hangs
                          c.sleep_for(10s);
                          cancelled_after_ms =
                              std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started).count();
                          reason = static_cast<int>(c.cancel_reason());
                          c.throw_if_cancelled();
                          return std::chrono::microseconds(1h);
                        }),
      {.timeout = 300ms});
  scheduler.start();
  REQUIRE(wait_until([&] { return reason >= 0; }, 5s));
  CHECK(reason == static_cast<int>(CancelReason::deadline));
  CHECK(cancelled_after_ms < 300 + 150);  // the fence loop looks every 50 ms here
  store.hang = false;
  scheduler.stop();
}

TEST_CASE("scheduler: under random store faults no outcome is lost, no job overlaps, timeouts fire") {
  Fixture f;
  jobrepo::test::Faults faults{.fail = 0.15, .hang = 0.05, .lose_reply = 0.05, .max_hang = 150ms};
  jobrepo::test::FaultStore store_a(*f.store, faults, 1), store_b(*f.store, faults, 2);
  auto options = fast_options(f.recorder);
  options.worker_threads = 3;
  options.monitor_interval = 250ms;
  options.interrupt_threshold = 2s;
  options.backoff.initial = 50ms;
  options.backoff.max = 200ms;
  std::mutex mutex;
  std::set<std::string> returned, threw;  // run ids, by what their handler did
  std::map<std::string, int> active;      // job -> handlers running it now (both schedulers)
  std::atomic<int> overlaps{0}, late_timeouts{0}, timeouts{0};
  const auto enter = [&](const std::string& job) {
    const std::lock_guard lock(mutex);
    if (++active[job] > 1) ++overlaps;
  };
  const auto leave = [&](const std::string& job) {
    const std::lock_guard lock(mutex);
    --active[job];
  };
  const auto register_all = [&](jobrepo::Scheduler& scheduler) {
    for (int i = 1; i <= 4; ++i) {
      const std::string name = "quick-" + std::to_string(i);
      scheduler.register_job(jobrepo::make_job(name, "d", [&, name](jobrepo::JobContext& c) {
        enter(name);
        c.sleep_for(30ms);
        leave(name);
        c.throw_if_cancelled();
        const std::lock_guard lock(mutex);
        returned.insert(c.run_id());
        return std::chrono::microseconds(20ms);
      }));
    }
    scheduler.register_job(jobrepo::make_job("flaky", "d", [&](jobrepo::JobContext& c) -> std::chrono::microseconds {
      enter("flaky");
      c.sleep_for(20ms);
      leave("flaky");
      c.throw_if_cancelled();
      const std::lock_guard lock(mutex);
      threw.insert(c.run_id());
      throw std::runtime_error("flaky fails");
    }));
    scheduler.register_job(jobrepo::make_job("slow", "d",
                                             [&](jobrepo::JobContext& c) {
                                               enter("slow");
                                               const auto started = Steady::now();
                                               c.sleep_for(5s);
                                               leave("slow");
                                               if (c.cancel_reason() == CancelReason::deadline) {
                                                 ++timeouts;
                                                 if (Steady::now() - started > 300ms + 200ms) ++late_timeouts;
                                               }
                                               c.throw_if_cancelled();
                                               return std::chrono::microseconds(0);
                                             }),
                           {.timeout = 300ms});
  };
  // Registration goes through the faulty store too: retry it as a caller would.
  const auto start = [&](jobrepo::Scheduler& scheduler) {
    for (int attempt = 0;; ++attempt) {
      try {
        register_all(scheduler);
        scheduler.start();
        return;
      } catch (const jobrepo::Error& e) {
        REQUIRE(attempt < 50);
      }
    }
  };
  jobrepo::Scheduler a("a", store_a, options), b("b", store_b, options);
  store_a.set_faults({});
  store_b.set_faults({});
  start(a);
  start(b);
  store_a.set_faults(faults);
  store_b.set_faults(faults);
  std::this_thread::sleep_for(8s);
  store_a.set_faults({});
  store_b.set_faults({});
  a.stop();
  b.stop();
  INFO("faults: failed " << store_a.failed + store_b.failed << ", hung " << store_a.hung + store_b.hung
                         << ", lost replies " << store_a.lost + store_b.lost);
  CHECK(store_a.failed + store_b.failed > 20);
  CHECK(store_a.lost + store_b.lost > 5);
  CHECK(overlaps == 0);
  CHECK(timeouts > 0);
  CHECK(late_timeouts == 0);
  // Every outcome a handler produced is in the store as that outcome.
  std::size_t lost = 0;
  std::string lost_ids;
  for (const auto& [ids, status] :
       {std::pair{&returned, jobrepo::Status::completed}, std::pair{&threw, jobrepo::Status::failed}}) {
    for (const auto& id : *ids) {
      const auto run = f.repo.lookup_run(id);
      if (!run || run->status != status) {
        ++lost;
        lost_ids += id + " " + (run ? std::string(jobrepo::to_string(run->status)) : "missing") + "\n";
      }
    }
  }
  INFO(lost_ids);
  CHECK(returned.size() > 50);
  CHECK(threw.size() > 5);
  CHECK(lost == 0);
  CHECK(jobrepo::find_overlaps(f.repo.list_runs({.limit = -1})).empty());
}

// --- two scheduler processes -------------------------------------------------

namespace {

struct Node {
  pid_t pid = 0;
  std::string output;
  Node(const std::string& url, const std::string& server, const std::string& mode, int seconds,
       const std::string& output_path)
      : output(output_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args = {JOBREPO_NODE_PATH, url, server, mode, std::to_string(seconds)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, JOBREPO_NODE_PATH, &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  int wait() {
    int status = 0;
    waitpid(pid, &status, 0);
    pid = 0;
    return status;
  }
  ~Node() {
    if (pid != 0) {
      kill(pid, SIGKILL);
      wait();
    }
    std::remove(output.c_str());
  }
  // Lines "<ms> <event> <job> <run> <detail>" printed so far.
  std::vector<std::vector<std::string>> events(const std::string& kind = "") const {
    std::ifstream in(output);
    std::vector<std::vector<std::string>> out;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::vector<std::string> fields(4);
      words >> fields[0] >> fields[1] >> fields[2] >> fields[3];
      if (kind.empty() || fields[1] == kind) out.push_back(fields);
    }
    return out;
  }
};

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid()))).string();
}

}  // namespace

// JOBREPO_CHURN_SECONDS (tests/CMakeLists.txt: 10 s, 6 s in the sanitizer trees), else 20 s.
TEST_CASE("scheduler: two processes churning short jobs never run one job twice at once") {
  const char* seconds_text = std::getenv("JOBREPO_CHURN_SECONDS");
  const int seconds = seconds_text ? std::atoi(seconds_text) : 20;
  const std::string url = databases.make();
  auto store = jobrepo::open_store(url);
  store->migrate();
  jobrepo::Repository repo(*store);
  Node a(url, "node-a", "churn", seconds, temp_file("node-a"));
  Node b(url, "node-b", "churn", seconds, temp_file("node-b"));
  CHECK(a.wait() == 0);
  CHECK(b.wait() == 0);
  std::map<std::string, std::vector<jobrepo::Run>> runs_of;
  std::size_t runs = 0, from_a = 0;
  for (const Node* node : {&a, &b}) {
    for (const auto& e : node->events("completed")) {
      const auto run = repo.lookup_run(e[3]);
      REQUIRE(run.has_value());
      runs_of[run->job_name].push_back(*run);
      ++runs;
      if (node == &a) ++from_a;
    }
  }
  std::vector<jobrepo::Run> all;
  for (const auto& [name, list] : runs_of) all.insert(all.end(), list.begin(), list.end());
  const int overlaps = static_cast<int>(jobrepo::find_overlaps(all).size());
  const auto failures = a.events("failed").size() + b.events("failed").size();
  const auto errors = a.events("error").size() + b.events("error").size();
  std::printf(
      "scheduler churn audit [%s]: 2 processes, %d s: runs %zu (node-a %zu, node-b %zu), jobs %zu, "
      "overlaps %d, failed %zu, errors %zu\n",
      jobrepo::test::scheduler_on_postgres() ? "postgres" : "sqlite", seconds, runs, from_a, runs - from_a,
      runs_of.size(), overlaps, failures, errors);
  CHECK(runs > 100);
  CHECK(from_a > 0);
  CHECK(runs - from_a > 0);
  CHECK(overlaps == 0);
  CHECK(failures == 0);
  CHECK(errors == 0);
}

TEST_CASE("scheduler: after kill -9 of the process running a long job, the other runs it within threshold + monitor") {
  const std::string url = databases.make();
  Node a(url, "node-a", "long", 60, temp_file("long-a"));
  Node b(url, "node-b", "long", 60, temp_file("long-b"));
  REQUIRE(wait_until([&] { return a.events("started").size() + b.events("started").size() == 1; }, 20s));
  std::this_thread::sleep_for(500ms);  // the job is well under way, with heartbeats
  Node& owner = a.events("started").empty() ? b : a;
  Node& other = &owner == &a ? b : a;
  REQUIRE(other.events("started").empty());
  const auto killed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(jobrepo::Clock::now().time_since_epoch()).count();
  kill(owner.pid, SIGKILL);
  owner.wait();
  REQUIRE(wait_until([&] { return !other.events("started").empty(); }, 10s));
  const long long started_ms = std::stoll(other.events("started").front()[0]);
  const long long took = started_ms - killed_ms;
  std::printf(
      "kill -9 recovery [%s]: threshold 2000 ms, monitor 250 ms: the other process started the job %lld ms "
      "after the kill\n",
      jobrepo::test::scheduler_on_postgres() ? "postgres" : "sqlite", took);
  CHECK(took <= 2000 + 250 + 100);  // threshold + one monitor interval (+ claim and clock slack)
  CHECK(other.events("interrupted_peer").size() == 1);
}

TEST_CASE(
    "scheduler: an operator's cancel stops the handler at the next heartbeat; the run ends interrupted and "
    "the job keeps its schedule") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> reason{-1};
  scheduler.register_job(blocking_job("victim", reason), {.every = std::chrono::microseconds(1h)});
  scheduler.start();
  REQUIRE(wait_until([&] { return handler_started(scheduler); }, 5s));
  const std::string run_id = scheduler.executing().front().run_id;
  const auto asked = Steady::now();
  CHECK(f.repo.cancel_run(run_id).cancel_requested);
  REQUIRE(wait_until([&] { return f.repo.lookup_run(run_id)->status != jobrepo::Status::running; }, 3s));
  INFO(f.recorder.dump());
  CHECK(Steady::now() - asked < 100ms + 300ms);  // one monitor interval, plus slack
  CHECK(reason == static_cast<int>(CancelReason::operator_request));
  const auto run = *f.repo.lookup_run(run_id);
  CHECK(run.status == jobrepo::Status::interrupted);
  CHECK(run.message == std::optional<std::string>("cancelled by operator"));
  const auto job = *f.repo.lookup_job("victim");
  CHECK(job.next_scheduled_run > f.repo.database_time() + 50min);
  // The event follows the store's write: wait for it.
  CHECK(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::interrupted, "victim") == 1; }, 3s));
  const auto ended = f.recorder.of(SchedulerEvent::Kind::interrupted, "victim");
  REQUIRE(ended.size() == 1);
  CHECK(ended.front().event.message == "cancelled by operator");
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: run_now during a run makes the job due again as soon as the run ends") {
  Fixture f;
  jobrepo::Scheduler scheduler("s1", *f.store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  std::atomic<bool> release{false};
  scheduler.register_job(jobrepo::make_job("r", "d", [&](jobrepo::JobContext& c) {
    ++runs;
    while (!release && !c.cancelled()) std::this_thread::sleep_for(5ms);
    return std::chrono::microseconds(1h);
  }));
  scheduler.start();
  REQUIRE(wait_until([&] { return runs == 1; }, 5s));
  scheduler.run_now("r");
  CHECK(f.repo.lookup_job("r")->run_requested);
  release = true;
  REQUIRE(wait_until([&] { return runs == 2; }, 3s));
  std::this_thread::sleep_for(500ms);
  CHECK(runs == 2);
  CHECK(!f.repo.lookup_job("r")->run_requested);
  CHECK(scheduler.stop());
}

TEST_CASE(
    "scheduler: failures are counted in the store, so two servers back off as one; max_attempts waits for the "
    "regular time") {
  Fixture f;
  auto options = fast_options(f.recorder);
  auto other_store = jobrepo::open_store(f.url);
  jobrepo::Scheduler a("a", *f.store, options);
  jobrepo::Scheduler b("b", *other_store, options);
  std::atomic<int> calls{0};
  const auto failing = [&] {
    return jobrepo::make_job("f", "d", [&](jobrepo::JobContext&) -> std::chrono::microseconds {
      ++calls;
      throw std::runtime_error("exit 1");
    });
  };
  jobrepo::BackoffOptions backoff{.initial = 100ms, .max = 400ms, .multiplier = 2.0, .jitter = 0.0, .max_attempts = 4};
  a.register_job(failing(), {.every = std::chrono::microseconds(1h), .backoff = backoff});
  b.register_job(failing(), {.every = std::chrono::microseconds(1h), .backoff = backoff});
  a.start();
  b.start();
  REQUIRE(wait_until([&] { return calls >= 4; }, 10s));
  std::this_thread::sleep_for(1s);
  CHECK(a.stop());
  CHECK(b.stop());
  INFO(f.recorder.dump());
  CHECK(calls == 4);
  const auto runs = f.repo.list_runs({.job_name = "f"});
  REQUIRE(runs.size() == 4);
  // Newest first: attempts 4, 3, 2, 1, whichever server ran each.
  for (std::size_t i = 0; i < runs.size(); ++i) {
    CHECK(runs[i].attempt == static_cast<std::int64_t>(4 - i));
    CHECK(runs[i].message == std::optional<std::string>("exit 1"));
  }
  // The gaps follow one back-off: 100, 200, 400 ms.
  const auto gap = [&](std::size_t newer) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(runs[newer].create_time - *runs[newer + 1].end_time);
  };
  CHECK(gap(2) >= 100ms - 20ms);
  CHECK(gap(1) >= 200ms - 20ms);
  CHECK(gap(0) >= 400ms - 20ms);
  const auto job = *f.repo.lookup_job("f");
  CHECK(job.consecutive_failures == 4);
  CHECK(job.next_scheduled_run > f.repo.database_time() + 50min);
}

TEST_CASE("scheduler: servers record the jobs they serve; a differing definition is warned of once; stop forgets") {
  Fixture f;
  auto other_store = jobrepo::open_store(f.url);
  Recorder other;
  jobrepo::Scheduler a("a", *f.store, fast_options(f.recorder));
  jobrepo::Scheduler b("b", *other_store, fast_options(other));
  const auto job = [] { return jobrepo::make_job("j", "d", [](jobrepo::JobContext&) { return 1h; }); };
  a.register_job(job(), {.definition = "every 5s"});
  b.register_job(job(), {.definition = "every 20s"});
  a.start();
  REQUIRE(wait_until([&] { return f.repo.list_servings("j").size() == 1; }, 3s));
  b.start();
  REQUIRE(wait_until([&] { return other.count(SchedulerEvent::Kind::warning, "j") == 1; }, 3s));
  const auto servings = f.repo.list_servings("j");
  REQUIRE(servings.size() == 2);
  CHECK(servings[0].fingerprint == jobrepo::definition_fingerprint("every 5s"));
  CHECK(servings[1].fingerprint == jobrepo::definition_fingerprint("every 20s"));
  CHECK(servings[0].live);
  std::this_thread::sleep_for(1500ms);  // more heartbeats, no more warnings
  CHECK(other.count(SchedulerEvent::Kind::warning, "j") == 1);
  CHECK(a.unregister_job("j"));
  REQUIRE(wait_until([&] { return f.repo.list_servings("j").size() == 1; }, 3s));
  CHECK(a.stop());
  CHECK(b.stop());
  CHECK(f.repo.list_servings().empty());
}
