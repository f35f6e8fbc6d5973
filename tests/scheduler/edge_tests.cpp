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
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using jobrepo::CancelReason;
using jobrepo::ErrorCode;
using jobrepo::Status;
using jobrepo::test::code_of;
using namespace jobrepo::test::scheduler;

namespace {

std::string slurp_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

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
  // Within seconds; 20 s only so that a loaded test machine cannot fail it.
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::failed, "overrun") == 1; }, 20s));
  // The failed run by its id: the job's retry may already have made a newer one.
  const auto failed = f.recorder.of(SchedulerEvent::Kind::failed, "overrun");
  REQUIRE(failed.size() == 1);
  const auto run = f.repo.lookup_run(failed[0].event.run_id).value();
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

TEST_CASE("scheduler: 10 forward steps of the database clock by twice the threshold interrupt no live run") {
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
  // The database's clock jumps 2 s ahead (threshold 1 s), as after an NTP
  // step, 10 times; the last step is followed by more than the threshold.
  for (int step = 1; step <= 10; ++step) {
    f.store->set_clock_offset(step * 2s);
    second_store->set_clock_offset(step * 2s);
    std::this_thread::sleep_for(step < 10 ? 300ms : 1500ms);
  }
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

namespace {

// jobrepo_scheduler_node (node_main.cpp) in mode "stubborn": its handler
// ignores cancellation; its store fails while `outage` exists.
struct StubbornNode {
  pid_t pid = 0;
  std::string err;
  StubbornNode(const std::string& url, const std::string& outage, const std::string& err_path) : err(err_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args = {JOBREPO_NODE_PATH, url, "stubborn-node", "stubborn", "60"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env = {"JOBREPO_NODE_OUTAGE_FILE=" + outage};
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, JOBREPO_NODE_PATH, &actions, nullptr, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  StubbornNode(const StubbornNode&) = delete;
  StubbornNode& operator=(const StubbornNode&) = delete;
  // The exit status, once it ended within `timeout`.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) {
    const auto until = Steady::now() + timeout;
    while (Steady::now() < until) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }
  ~StubbornNode() {
    if (pid != 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    std::remove(err.c_str());
  }
};

}  // namespace

TEST_CASE(
    "scheduler: a handler still running when its run's lease lapses ends the process, before a peer may take "
    "the job") {
  Fixture f;
  const auto dir = std::filesystem::temp_directory_path();
  const std::string outage = (dir / ("jobrepo-outage-" + std::to_string(getpid()))).string();
  std::remove(outage.c_str());
  StubbornNode node(f.url, outage, (dir / ("jobrepo-stubborn-" + std::to_string(getpid()))).string());
  REQUIRE(wait_until([&] { return f.repo.list_runs({.status = Status::running}).size() == 1; }, 10s));
  // A peer with the node's timing (threshold 2 s, monitor 250 ms) serves
  // the job; its handler notes whether the node's process still lives.
  auto options = fast_options(f.recorder);
  options.interrupt_threshold = 2s;
  options.monitor_interval = 250ms;
  jobrepo::Scheduler peer("peer", *f.store, options);
  std::atomic<int> peer_runs{0}, overlaps{0};
  const pid_t node_pid = node.pid;
  peer.register_job(jobrepo::make_job("stubborn", "ignores cancellation", [&](jobrepo::JobContext&) {
    siginfo_t info{};
    if (waitid(P_PID, node_pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0) ++overlaps;
    ++peer_runs;
    return std::chrono::microseconds(1h);
  }));
  peer.start();
  std::this_thread::sleep_for(600ms);  // a few good heartbeats
  // The node's database is out of reach from now on; its handler ignores the fence.
  std::ofstream(outage) << "down\n";
  const auto down = Steady::now();
  const auto status = node.wait_for(10s);
  const auto took = Steady::now() - down;
  const auto ended = std::chrono::system_clock::now();
  std::remove(outage.c_str());
  const auto err = slurp_text(node.err);
  INFO(err);
  REQUIRE(status.has_value());
  CHECK(*status == 70);
  // The lease lapses 1.7 s after the last successful heartbeat (fenced at
  // 1.5 s, + 100 ms check + grace 0 + 100 ms): never earlier. The last
  // heartbeat is the run's update_time (the node wrote nothing after the
  // outage; SQLite's clock is this machine's), read rather than assumed a
  // monitor interval before the outage: on a loaded machine a heartbeat
  // comes late. 250 ms for the heartbeat's own statement: the node counts
  // from before it, the database's time is taken while it runs.
  std::optional<jobrepo::Timestamp> heartbeat;
  for (const auto& run : f.repo.list_runs({.job_name = "stubborn"})) {
    if (run.server_id == "stubborn-node") heartbeat = run.update_time;
  }
  REQUIRE(heartbeat);
  INFO(
      "last heartbeat to the end: " << std::chrono::duration_cast<std::chrono::milliseconds>(ended - *heartbeat).count()
                                    << " ms; outage to the end: "
                                    << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(ended - *heartbeat >= 1700ms - 250ms);
  CHECK(err.find("ending the process (SchedulerOptions::fence_overrun): the handler of job \"stubborn\"") !=
        std::string::npos);
  // The peer takes the job over once it has seen the run silent for the
  // threshold: only after the node's process was gone.
  REQUIRE(wait_until([&] { return peer_runs == 1; }, 10s));
  CHECK(overlaps == 0);
  CHECK(peer.stop());
}

TEST_CASE("scheduler: with FenceOverrun::report, a handler outliving its run's lease is reported and failed") {
  Fixture f;
  struct HeartbeatsFail : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> failing{false};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (failing && c.size() == 1 && c.front().to == Status::running) {
        throw jobrepo::Error(ErrorCode::unavailable, "update_run: injected outage");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  auto options = fast_options(f.recorder);
  options.fence_overrun = jobrepo::FenceOverrun::report;
  jobrepo::Scheduler scheduler("s1", store, options);
  std::atomic<bool> working{false}, release{false};
  scheduler.register_job(stubborn_job("overrun", working, release));
  scheduler.start();
  REQUIRE(wait_until([&] { return working.load(); }, 5s));
  std::this_thread::sleep_for(250ms);
  store.failing = true;
  // Threshold 1 s: fenced at 750 ms, the lease lapses 100 + 100 ms later.
  REQUIRE(wait_until(
      [&] {
        for (const auto& e : f.recorder.of(SchedulerEvent::Kind::error, "overrun")) {
          if (e.event.detail.find("another server may run the job at the same time") != std::string::npos) return true;
        }
        return false;
      },
      3s));
  store.failing = false;
  release = true;
  const bool stored = wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::failed, "overrun") == 1; }, 20s);
  INFO(f.recorder.dump());
  REQUIRE(stored);
  // The failed run by its id: the job's retry may already have made a newer one.
  const auto failed = f.recorder.of(SchedulerEvent::Kind::failed, "overrun");
  REQUIRE(failed.size() == 1);
  const auto run = f.repo.lookup_run(failed[0].event.run_id).value();
  CHECK(run.status == Status::failed);
  CHECK(run.message.value_or("").find("after it was fenced") != std::string::npos);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: a writer's store call that does not return is reported as a stall, and its end") {
  Fixture f;
  // The writer's calls (the final statuses) hang for 1.5 s while `hanging`.
  struct SlowWrites : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> hanging{false};
    std::atomic<int> hung{0};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (hanging && !c.empty() && c.front().to != Status::running) {
        ++hung;
        std::this_thread::sleep_for(1500ms);
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  std::atomic<int> runs{0};
  scheduler.register_job(jobrepo::make_job("quick", "returns at once", [&](jobrepo::JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  store.hanging = true;
  const auto started = Steady::now();
  scheduler.start();
  const auto stall_warning = [&] {
    for (const auto& e : f.recorder.of(SchedulerEvent::Kind::warning, "")) {
      if (e.event.detail.find("the writer's store call has not returned for") != std::string::npos) return true;
    }
    return false;
  };
  REQUIRE(wait_until(stall_warning, 5s));
  // Said while the call hangs: health shows it, and the outcome waiting.
  const auto health = scheduler.health();
  INFO(f.recorder.dump());
  CHECK(store.hung == 1);
  REQUIRE(health.write_call.has_value());
  CHECK(health.write_call_outcomes == 1);
  CHECK(health.outcomes_waiting == 1);
  CHECK(health.write_stalls == 1);
  CHECK(f.recorder.count(SchedulerEvent::Kind::completed, "quick") == 0);
  // Not before max(1 s, monitor_interval) of the call.
  const auto warned = f.recorder.of(SchedulerEvent::Kind::warning, "").at(0).at;
  CHECK(warned - started >= 1s);
  store.hanging = false;
  // Then the outcome is stored, and the end of the stall said.
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::completed, "quick") == 1; }, 5s));
  bool ended = false;
  for (const auto& e : f.recorder.of(SchedulerEvent::Kind::warning, "")) {
    ended = ended || e.event.detail.find("the writer's store call returned after 1.") != std::string::npos;
  }
  CHECK(ended);
  const auto after = scheduler.health();
  CHECK_FALSE(after.write_call.has_value());
  CHECK(after.outcomes_waiting == 0);
  CHECK(after.write_stalls == 1);
  CHECK(scheduler.stop());
}

TEST_CASE("scheduler: a run whose outcome waits to be stored is not interrupted by its own server") {
  Fixture f;
  // The writer's first call (the run's completion) takes 2.5 s: longer than
  // the threshold (1 s) since the run's last update. The run is this
  // server's, its outcome known here: its own monitor must not end it as
  // "its server stopped reporting".
  struct SlowFirstWrite : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<int> writes{0};
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (!c.empty() && c.front().to != Status::running && writes++ == 0) std::this_thread::sleep_for(2500ms);
      return StoreWrapper::transition_runs(c);
    }
  } store(*f.store);
  jobrepo::Scheduler scheduler("s1", store, fast_options(f.recorder));
  scheduler.register_job(jobrepo::make_job("quick", "returns at once",
                                           [](jobrepo::JobContext&) { return std::chrono::microseconds(1h); }));
  scheduler.start();
  REQUIRE(wait_until([&] { return f.recorder.count(SchedulerEvent::Kind::completed, "quick") == 1; }, 10s));
  INFO(f.recorder.dump());
  CHECK(f.recorder.count(SchedulerEvent::Kind::interrupted_peer, "quick") == 0);
  const auto runs = f.repo.list_runs({.job_name = "quick"});
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == Status::completed);
  CHECK(scheduler.stop());
}
