// Conformance cases: the Scheduler in real time, in processes of its own
// (children of the suite's executable, started with scheduler_flag), on a
// database the harness shares across processes: what only real processes,
// real time and this backend's own clock show. Every backend runs them,
// PostgreSQL included; a harness whose databases no other process reaches
// skips them.
#include "support.hpp"
#include "workers.hpp"

#include <jobrepo/jobrepo.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo::conformance {

void link_scheduler_process_cases() {}

namespace {

using Steady = std::chrono::steady_clock;

// Why these cases cannot run against the harness, or empty.
std::string no_processes(const Fixture& f) {
  if (!capabilities().shares_across_processes) return "the harness's databases cannot be shared across processes";
  if (f.db.url.empty()) return "the database has no url for another process";
  return {};
}

// A temporary directory, removed with what is in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/jobrepo-conformance-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    const std::string command = "rm -rf '" + path_ + "'";
    if (std::system(command.c_str()) != 0) std::fprintf(stderr, "conformance: could not remove %s\n", path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A scheduler process: this executable with scheduler_flag.
class SchedulerProcess {
 public:
  // mode "churn": jobs churn0..churn3, each run takes 20 ms and asks to run
  // again at once, for `seconds`; then the process stops its scheduler and
  // exits. mode "hold": job "held", whose handler never returns, until the
  // process is killed.
  SchedulerProcess(const std::string& url, const std::string& server, const std::string& mode, int seconds,
                   const std::string& dir)
      : output_(dir + "/" + server) {
    std::vector<std::string> args = {"/proc/self/exe", scheduler_flag, url, server, mode, std::to_string(seconds), dir,
                                     output_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) pid_ = 0;
  }
  SchedulerProcess(const SchedulerProcess&) = delete;
  SchedulerProcess& operator=(const SchedulerProcess&) = delete;
  ~SchedulerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  // Waits (at most `limit`) for the scheduler to have started.
  bool ready(std::chrono::seconds limit) const {
    const auto end = Steady::now() + limit;
    while (!exists(output_ + ".ready")) {
      if (Steady::now() > end) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  void kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  // Waits (at most `limit`) for the process to exit; its exit status, or -1.
  int wait(std::chrono::seconds limit) {
    const auto end = Steady::now() + limit;
    int status = 0;
    while (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0) {
      if (Steady::now() > end) {
        kill9();
        return -1;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // What the process reported: its scheduler's error events, one a line.
  std::string report() const {
    std::ifstream in(output_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  std::string output_;
  pid_t pid_ = 0;
};

SchedulerOptions process_options() {
  SchedulerOptions options;
  options.worker_threads = 2;
  options.claim_interval = 200ms;
  options.monitor_interval = 250ms;
  options.interrupt_threshold = 2s;
  options.stop_timeout = 10s;
  return options;
}

// A job whose handler holds an exclusive, non-blocking flock(2) on a file of
// its own while it works: a second copy of the job's work anywhere on this
// machine at the same time fails to take it, and its run fails "overlap".
std::shared_ptr<JobHandler> churn_job(const std::string& name, const std::string& dir) {
  return make_job(name, "runs 20 ms, then again at once", [name, dir](JobContext&) -> std::chrono::microseconds {
    const std::string path = dir + "/" + name + ".lock";
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      throw std::runtime_error("overlap: another copy of this job's work was running");
    }
    std::this_thread::sleep_for(20ms);
    flock(fd, LOCK_UN);
    close(fd);
    return 0us;
  });
}

}  // namespace

// The child side: a scheduler process (see SchedulerProcess).
int scheduler_main(Harness& harness, int argc, char* argv[]) {
  if (argc != 6) {
    std::fprintf(stderr, "conformance scheduler: expected 6 arguments, got %d\n", argc);
    return 2;
  }
  const std::string url = argv[0], server = argv[1], mode = argv[2];
  const int seconds = std::atoi(argv[3]);
  const std::string dir = argv[4], output = argv[5];
  std::mutex mutex;
  std::ofstream out(output);
  try {
    auto store = harness.open(url);
    auto options = process_options();
    options.on_event = [&](const SchedulerEvent& e) {
      if (e.kind != SchedulerEvent::Kind::error) return;
      const std::lock_guard lock(mutex);
      out << "error: " << e.job_name << ": " << e.detail << std::endl;
    };
    Scheduler scheduler(server, *store, options);
    if (mode == "hold") {
      scheduler.register_job(make_job("held", "never returns", [](JobContext&) -> std::chrono::microseconds {
        for (;;) std::this_thread::sleep_for(1s);
      }));
    } else {
      for (int i = 0; i < 4; ++i) scheduler.register_job(churn_job("churn" + std::to_string(i), dir));
    }
    scheduler.start();
    std::ofstream(output + ".ready").put('\n');
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    if (!scheduler.stop()) {
      const std::lock_guard lock(mutex);
      out << "error: stop() timed out" << std::endl;
    }
  } catch (const std::exception& e) {
    const std::lock_guard lock(mutex);
    out << "error: " << e.what() << std::endl;
    return 1;
  }
  return out.good() ? 0 : 1;
}

TEST_CASE("scheduler in two processes: each job's work runs on one server at a time; every run is recorded",
          "[conformance][scheduler][process]") {
  Fixture f;
  if (const auto why = no_processes(f); !why.empty()) JR_SKIP(why);
  TempDir dir;
  REQUIRE(!dir.path().empty());
  {
    SchedulerProcess a(f.db.url, "churn-a", "churn", 3, dir.path());
    SchedulerProcess b(f.db.url, "churn-b", "churn", 3, dir.path());
    REQUIRE(a.started());
    REQUIRE(b.started());
    CHECK(a.wait(60s) == 0);
    CHECK(b.wait(60s) == 0);
    INFO("churn-a: " << a.report());
    INFO("churn-b: " << b.report());
    CHECK(a.report().empty());
    CHECK(b.report().empty());
  }
  std::map<std::string, int> by_server;
  std::map<std::string, std::vector<Run>> by_job;
  for (auto& run : f.repo.list_runs({.limit = -1})) {
    INFO("run " << run.private_id << " of " << run.job_name << " by " << run.server_id << ": "
                << run.message.value_or(""));
    CHECK(is_final(run.status));
    // No "overlap" failed a run; the only other end is a run claimed as its
    // server stopped, handed back before anything ran.
    CHECK((run.status == Status::completed ||
           (run.status == Status::interrupted && run.message == "its server stopped before it started")));
    ++by_server[run.server_id];
    by_job[run.job_name].push_back(std::move(run));
  }
  CHECK(by_job.size() == 4);
  CHECK(by_server["churn-a"] > 0);
  CHECK(by_server["churn-b"] > 0);
  // The store's record agrees: a job's runs never overlap in time.
  for (auto& [job, runs] : by_job) {
    std::sort(runs.begin(), runs.end(), [](const Run& x, const Run& y) { return x.create_time < y.create_time; });
    for (std::size_t i = 1; i < runs.size(); ++i) {
      INFO(job << ": run " << runs.at(i).private_id << " began before " << runs.at(i - 1).private_id << " ended");
      REQUIRE(runs.at(i - 1).end_time.has_value());
      CHECK(*runs.at(i - 1).end_time <= runs.at(i).create_time);
    }
  }
}

TEST_CASE(
    "scheduler in two processes: after kill -9 of the one running a job, the other runs it once the run was "
    "silent for the threshold",
    "[conformance][scheduler][process]") {
  Fixture f;
  if (const auto why = no_processes(f); !why.empty()) JR_SKIP(why);
  TempDir dir;
  REQUIRE(!dir.path().empty());
  SchedulerProcess holder(f.db.url, "holder", "hold", 600, dir.path());
  REQUIRE(holder.started());
  REQUIRE(holder.ready(60s));
  const auto held = [&] { return f.repo.list_runs({.job_name = "held", .status = Status::running}); };
  const auto deadline = Steady::now() + 30s;
  while (held().empty() && Steady::now() < deadline) std::this_thread::sleep_for(10ms);
  const auto before = held();
  REQUIRE(before.size() == 1);
  CHECK(before.at(0).server_id == "holder");
  // This process serves the job too; it must wait for the holder's silence.
  std::atomic<int> runs{0};
  Scheduler taker("taker", f.store, process_options());
  taker.register_job(make_job("held", "completes at once", [&](JobContext&) {
    ++runs;
    return std::chrono::microseconds(1h);
  }));
  taker.start();
  std::this_thread::sleep_for(1s);
  CHECK(runs == 0);  // the holder lives: its run is not taken
  holder.kill9();
  const auto killed = Steady::now();
  // The holder's last heartbeat (it is dead: its run changes no more until
  // the taker interrupts it).
  const auto last_heartbeat = f.repo.lookup_run(before.at(0).private_id)->update_time;
  while (runs == 0 && Steady::now() - killed < 30s) std::this_thread::sleep_for(10ms);
  const auto took = Steady::now() - killed;
  CHECK(runs == 1);
  CHECK(taker.stop());
  // Within the threshold (2 s) + a monitor interval (250 ms) + a claim, with
  // room for a slow machine.
  CHECK(took < 10s);
  const auto old = *f.repo.lookup_run(before.at(0).private_id);
  CHECK(old.status == Status::interrupted);
  const auto all = f.repo.list_runs({.job_name = "held", .limit = -1});
  REQUIRE(all.size() == 2);
  CHECK(all.at(0).server_id == "taker");
  CHECK(all.at(0).status == Status::completed);
  // Never before the run was silent for the threshold, by the database's
  // clock (the last heartbeat may have come more than a monitor interval
  // before the kill on a loaded machine: the time from the kill is no bound).
  INFO("taken over "
       << std::chrono::duration_cast<std::chrono::milliseconds>(all.at(0).create_time - last_heartbeat).count()
       << " ms after the last heartbeat");
  CHECK(all.at(0).create_time - last_heartbeat >= process_options().interrupt_threshold);
}

}  // namespace jobrepo::conformance
