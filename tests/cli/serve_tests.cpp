// jobctl serve and the processes of its runs, observed from the kernel, not
// from the database: every process a command starts ends with its server
// (kill -9 included), a fenced command is gone before a peer may take its
// job, a restarted server waits for its old runs' processes, signals, and
// the output of commands. The "[kill]" cases kill serve 20 times under load
// and audit real overlaps with flock(1). On SQLite or PostgreSQL
// (JOBREPO_TEST_BACKEND, see ../scheduler/backend.hpp).
#include "cli_support.hpp"
#include "read_only.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <sys/prctl.h>

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

using jobrepo::test::Cli;
using jobrepo::test::describe;
using jobrepo::test::micros_of;
using jobrepo::test::Process;
using jobrepo::test::processes_of_serve;
using jobrepo::test::run_processes;
using jobrepo::test::runs_of;
using jobrepo::test::slurp;
using jobrepo::test::wait_until;
using jobrepo::test::write_config;

// The runs of the database in a given status.
json runs_in(Cli& cli, const std::string& status) {
  return cli({"runs", "--status", status, "--limit", "-1", "--json"}).parsed();
}

long long to_ms(Steady::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// The peak resident memory of a live process, in KiB (VmHWM).
long peak_kib(pid_t pid) {
  std::istringstream status(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The supervisor processes (argv[0] "jobrepo-run") of the serve with that tag.
std::vector<pid_t> supervisors_of(const fs::path& dir, const std::string& tag) {
  std::vector<pid_t> out;
  for (const auto& p : processes_of_serve(dir, tag)) {
    if (p.command.rfind("jobrepo-run ", 0) == 0) out.push_back(p.pid);
  }
  return out;
}

}  // namespace

TEST_CASE("serve: kill -9 of serve ends every process of its runs within 1 s, whatever the commands did") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "pipeline", "command": ["sh", "-c", "sleep 20 | cat; echo done"], "every": "1h"},
    {"name": "setsid", "command": ["sh", "-c", "setsid sleep 20; echo done"], "every": "1h"},
    {"name": "setsid-fork", "command": ["sh", "-c", "setsid -f sleep 20; sleep 20"], "every": "1h"},
    {"name": "double-fork", "command": ["sh", "-c", "(sleep 20 &); sleep 20"], "every": "1h"},
    {"name": "background", "command": ["sh", "-c", "sleep 20 & sleep 20"], "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  // Each command is a shell with two sleeps or a sleep and a cat below it.
  REQUIRE(wait_until([&] { return runs_in(cli, "running").size() == 5; }, 10s));
  REQUIRE(wait_until([&] { return processes_of_serve(cli.dir.path, "node-1").size() >= 14; }, 5s));
  INFO(describe(processes_of_serve(cli.dir.path, "node-1")));
  kill(serve->pid, SIGKILL);
  serve->wait();
  const auto killed = Steady::now();
  const bool all_gone = wait_until([&] { return processes_of_serve(cli.dir.path, "node-1").empty(); }, 1s);
  INFO("alive " << to_ms(Steady::now() - killed) << " ms after the kill:\n"
                << describe(processes_of_serve(cli.dir.path, "node-1")));
  CHECK(all_gone);
}

TEST_CASE("serve: the processes a command leaves behind end before its run ends") {
  Cli cli;
  const auto marker = cli.dir.path / "leftover-stopped";
  const auto ready = cli.dir.path / "leftover-ready";
  // The command leaves a shell behind, once that shell has set its trap.
  const std::string leftover =
      "trap \\\"touch " + marker.string() + "; exit 0\\\" TERM; touch " + ready.string() + "; sleep 30 & wait";
  const auto config = write_config(cli.dir.path, R"([
    {"name": "leaves-one", "command": ["sh", "-c", "sh -c ')" +
                                                     leftover + R"(' & while [ ! -e )" + ready.string() +
                                                     R"( ]; do sleep 0.01; done; echo left"],
     "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return cli.last_run("leaves-one")["status"] == "completed"; }, 10s));
  // The leftover got SIGTERM (its trap ran) and is gone.
  CHECK(fs::exists(marker));
  CHECK(processes_of_serve(cli.dir.path, "node-1").empty());
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  CHECK(result.status == 0);
  CHECK(result.out.find("[leaves-one] left") != std::string::npos);
}

TEST_CASE("serve: a grace that does not fit in the interrupt threshold is refused, naming the fields") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([{"name": "x", "command": ["true"], "every": "1s"}])",
                                   R"("interrupt_threshold": "4s",)");
  const auto result =
      Process({"--db", cli.url, "serve", "--config", config.string()}, cli.dir.path, "serve").wait_at_most(5s);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(result.err.find("grace") != std::string::npos);
  CHECK(result.err.find("interrupt_threshold") != std::string::npos);
  CHECK(result.err.find("5s") != std::string::npos);
  CHECK(result.err.find("4s") != std::string::npos);
  CHECK(cli({"jobs", "--json"}).status != 0);  // the database was not touched (not migrated)
}

TEST_CASE("serve: a command ignoring SIGTERM under a hung serve is gone before a peer may take its job") {
  Cli cli;
  // T = 2 s: fenced 1.5 s after the last heartbeat, SIGKILL 250 ms later.
  const auto config = write_config(cli.dir.path, R"([
    {"name": "stubborn", "command": ["sh", "-c", "trap '' TERM; sleep 60 | cat"], "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return runs_in(cli, "running").size() == 1; }, 10s));
  REQUIRE(wait_until([&] { return processes_of_serve(cli.dir.path, "node-1").size() >= 3; }, 5s));
  std::this_thread::sleep_for(600ms);  // a few heartbeats
  // serve hangs (as a deadlocked or swapped-out process would): no more heartbeats.
  kill(serve->pid, SIGSTOP);
  const auto stopped = Steady::now();
  const bool gone = wait_until([&] { return processes_of_serve(cli.dir.path, "node-1").empty(); }, 4s);
  const auto took = Steady::now() - stopped;
  kill(serve->pid, SIGCONT);
  INFO("gone " << to_ms(took) << " ms after serve stopped:\n" << describe(processes_of_serve(cli.dir.path, "node-1")));
  REQUIRE(gone);
  // The last heartbeat was at most 250 ms before the stop; a peer may take the
  // job 2 s after it: the processes must be gone by then.
  CHECK(took < 2s);
  CHECK(took >= 1500ms - 250ms - 50ms);  // not before the fence
  kill(serve->pid, SIGTERM);
  serve->wait();
}

TEST_CASE("serve: a restarted serve with the same server id waits until its old runs' processes are gone") {
  // The old supervisor is stopped below, as a stuck one would be. Orphaned,
  // a stopped process group gets SIGHUP and SIGCONT from the kernel; as a
  // subreaper this test keeps it from being orphaned (and reaps it).
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  struct Reap {
    ~Reap() {
      prctl(PR_SET_CHILD_SUBREAPER, 0);
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
  } reap;
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "long", "command": ["sh", "-c", "sleep 30 | cat"], "every": "1h"}
  ])");
  auto first = cli.serve(config, "node-1", "first");
  REQUIRE(wait_until([&] { return runs_in(cli, "running").size() == 1; }, 10s));
  REQUIRE(wait_until([&] { return supervisors_of(cli.dir.path, "first").size() == 1; }, 5s));
  const std::string old_run = runs_in(cli, "running")[0]["private_id"];
  // Its supervisor cannot end the old run's processes for now.
  const pid_t supervisor = supervisors_of(cli.dir.path, "first").front();
  kill(supervisor, SIGSTOP);
  kill(first->pid, SIGKILL);
  first->wait();
  auto second = cli.serve(config, "node-1", "second");
  std::this_thread::sleep_for(1500ms);
  INFO(second->errors());
  // The old run's processes still live: the new server has not touched the job.
  CHECK(!processes_of_serve(cli.dir.path, "first").empty());
  CHECK(cli({"run", "show", old_run, "--json"}).parsed()["status"] == "running");
  CHECK(processes_of_serve(cli.dir.path, "second").empty());
  CHECK(second->errors().find("waiting") != std::string::npos);
  kill(supervisor, SIGCONT);
  // Now they end, and the new server runs the job again.
  REQUIRE(wait_until([&] { return processes_of_serve(cli.dir.path, "first").empty(); }, 2s));
  REQUIRE(wait_until([&] { return !processes_of_serve(cli.dir.path, "second").empty(); }, 5s));
  CHECK(cli({"run", "show", old_run, "--json"}).parsed()["status"] == "interrupted");
  kill(second->pid, SIGTERM);
  CHECK(second->wait().status == 0);
}

TEST_CASE("serve: SIGHUP reloads the config; a bad one is logged and the old one kept") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "kept", "command": ["true"], "every": "100ms"},
    {"name": "removed", "command": ["true"], "every": "100ms"},
    {"name": "busy", "command": ["sleep", "2"], "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return cli.last_run("removed")["status"] == "completed"; }, 10s));
  REQUIRE(wait_until([&] { return cli.last_run("busy")["status"] == "running"; }, 5s));
  const std::string busy_run = cli.last_run("busy")["private_id"];
  write_config(cli.dir.path, R"([
    {"name": "kept", "command": ["true"], "every": "100ms"},
    {"name": "added", "command": ["true"], "every": "100ms"},
    {"name": "busy", "command": ["sleep", "2"], "every": "1h"}
  ])");
  kill(serve->pid, SIGHUP);
  REQUIRE(wait_until([&] { return cli.last_run("added")["status"] == "completed"; }, 5s));
  const auto removed_runs = cli({"runs", "--job", "removed", "--limit", "-1", "--json"}).parsed().size();
  std::this_thread::sleep_for(600ms);
  // The removed job is not claimed here any more; the running run went on.
  CHECK(cli({"runs", "--job", "removed", "--limit", "-1", "--json"}).parsed().size() == removed_runs);
  REQUIRE(wait_until([&] { return cli.last_run("busy")["status"] == "completed"; }, 5s));
  CHECK(cli.last_run("busy")["private_id"] == busy_run);

  std::ofstream(config) << R"({"jobs": [{"name": "x", "command": ["true"], "every": "10x"}]})";
  kill(serve->pid, SIGHUP);
  const auto added_runs = cli({"runs", "--job", "added", "--limit", "-1", "--json"}).parsed().size();
  REQUIRE(wait_until(
      [&] {
        return cli({"runs", "--job", "added", "--limit", "-1", "--json"}).parsed().size() > added_runs + 2;
      },
      5s));
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.err.find("reloaded") != std::string::npos);
  CHECK(result.err.find("jobs[0].every: \"10x\" is not a duration") != std::string::npos);
  CHECK(result.err.find("keeping the current config") != std::string::npos);
}

TEST_CASE("serve: commands start with SIGPIPE at its default action") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "pipe", "command": ["sh", "-c", "kill -PIPE $$; echo survived"], "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  REQUIRE(wait_until(
      [&] { return cli.last_run("pipe")["status"].is_string() && cli.last_run("pipe")["status"] != "running"; }, 10s));
  CHECK(cli.last_run("pipe")["status"] == "failed");
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  CHECK(result.out.find("survived") == std::string::npos);
  CHECK(result.err.find("killed by signal 13") != std::string::npos);
}

TEST_CASE("serve: a command's output is read to the end; long lines are cut; memory stays bounded") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "many-lines", "command": ["sh", "-c", "seq 1 20000; echo progress 7/9"], "every": "1h"},
    {"name": "no-newline", "command": ["head", "-c", "300000000", "/dev/zero"], "every": "1h"}
  ])");
  auto serve = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return cli.last_run("many-lines")["status"] == "completed"; }, 20s));
  REQUIRE(wait_until([&] { return cli.last_run("no-newline")["status"] == "completed"; }, 30s));
  const long peak = peak_kib(serve->pid);
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  const auto run = cli.last_run("many-lines");
  CHECK(run["completed_count"] == 7);
  CHECK(run["total_count"] == 9);
  std::istringstream out(result.out);
  int numbered = 0;
  std::string cut;
  for (std::string line; std::getline(out, line);) {
    // TIME run=RUN [JOB] LINE
    if (line.find(" [many-lines] ") != std::string::npos) ++numbered;
    if (line.find(" [no-newline] ") != std::string::npos) cut = line;
  }
  CHECK(numbered == 20000);
  CHECK(result.out.find("[many-lines] 20000\n") != std::string::npos);
  CHECK(cut.size() < 70 * 1024);
  CHECK(cut.find("bytes cut") != std::string::npos);
  INFO("serve's peak RSS " << peak << " KiB");
  CHECK(peak > 0);
  CHECK(peak < 128 * 1024);  // of 300 MB written (ASan's shadow memory included)
}

namespace {}  // namespace

TEST_CASE("serve: a cron job every 2 s on two servers: runs start on the even seconds, one at a time, none missed",
          "[calendar]") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "tick", "cron": "*/2 * * * * *", "command": ["true"]}
  ])");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  std::this_thread::sleep_for(12s);
  kill(a->pid, SIGTERM);
  kill(b->pid, SIGTERM);
  CHECK(a->wait().status == 0);
  CHECK(b->wait().status == 0);
  const auto runs = runs_of(cli, "tick");
  REQUIRE(runs.size() >= 5);
  std::set<long long> fires;
  std::string late;
  for (const auto& run : runs) {
    const auto start = micros_of(run["create_time"]);
    const long long fire = start / 2000000 * 2000000;
    // Within the claim latency of its fire time (claim_interval is 200 ms).
    if (start - fire > 500000) late += std::to_string(start) + " ";
    CHECK(fires.insert(fire).second);  // one run per fire time
    CHECK(run["status"] == "completed");
  }
  INFO("late starts (us since the epoch): " << late);
  CHECK(late.empty());
  // None missed: every fire time between the first and the last has its run.
  CHECK(static_cast<long long>(fires.size()) == (*fires.rbegin() - *fires.begin()) / 2000000 + 1);
  const auto audit = cli({"audit", "--json"}).parsed();
  CHECK(audit["overlaps"].empty());
  // jobs shows the schedule.
  CHECK(cli({"jobs", "--json"}).parsed()[0]["schedule"] == "cron */2 * * * * * in UTC");
}

TEST_CASE("serve: after every server was down over fire times, run_once runs once at once and skip waits",
          "[calendar]") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "catch-up", "cron": "*/4 * * * * *", "command": ["true"]},
    {"name": "skipper", "cron": "*/4 * * * * *", "misfire": "skip", "command": ["true"]}
  ])");
  auto first = cli.serve(config, "a");
  REQUIRE(wait_until([&] { return runs_of(cli, "catch-up").size() >= 1 && runs_of(cli, "skipper").size() >= 1; }, 10s));
  kill(first->pid, SIGTERM);
  CHECK(first->wait().status == 0);
  const auto before_catch_up = runs_of(cli, "catch-up").size(), before_skipper = runs_of(cli, "skipper").size();
  std::this_thread::sleep_for(9s);  // two or more fire times pass with no server
  const long long restarted =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  auto second = cli.serve(config, "a");
  std::this_thread::sleep_for(6s);
  kill(second->pid, SIGTERM);
  const auto result = second->wait();
  INFO(result.err);
  const auto catch_up = runs_of(cli, "catch-up"), skipper = runs_of(cli, "skipper");
  REQUIRE(catch_up.size() > before_catch_up);
  REQUIRE(skipper.size() > before_skipper);
  // run_once: one run at once for all the fire times missed, then the fire times again.
  const auto catch_up_start = micros_of(catch_up[before_catch_up]["create_time"]);
  CHECK(catch_up_start - restarted < 1500000);
  const auto next_fire = (catch_up_start / 4000000 + 1) * 4000000;
  if (catch_up.size() > before_catch_up + 1) {
    const auto second_start = micros_of(catch_up[before_catch_up + 1]["create_time"]);
    CHECK(second_start >= next_fire);
    CHECK(second_start - next_fire < 500000);
  }
  // skip: the missed fire times are dropped; the first run after the restart is at a fire time to come.
  const auto skipper_start = micros_of(skipper[before_skipper]["create_time"]);
  CHECK(skipper_start > restarted);
  CHECK(skipper_start % 4000000 < 500000);
  CHECK(result.err.find("skipped skipper") != std::string::npos);
  CHECK(result.err.find("skipped catch-up") == std::string::npos);
}

namespace {

// The test jobs of the kill audit: each run takes flock(1) on its job's lock
// file and keeps the descriptor in every process it starts, so the kernel
// holds the lock exactly as long as any process of the run lives. A run that
// finds the lock taken is a real overlap: it records itself and exits 99.
constexpr const char* job_script = R"(#!/bin/sh
name=$1 mode=$2 dir=$JOBREPO_TEST_DIR
exec 9>>"$dir/locks/$name"
if ! flock -n 9; then echo "$name $JOBREPO_RUN_ID" >> "$dir/overlaps"; exit 99; fi
echo "start $name $JOBREPO_RUN_ID" >> "$dir/events"
t=$(( $(od -An -N1 -tu1 /dev/urandom) % 30 + 1 ))
d=$((t / 10)).$((t % 10))
case $mode in
  pipeline) sleep $d | cat ;;
  setsid) setsid sleep $d ;;
  setsid-fork) setsid -f sleep $d; sleep 0.05 ;;
  double-fork) (sleep $d &); sleep 0.05 ;;
  background) sleep $d & sleep 0.05 ;;
esac
echo "end $name $JOBREPO_RUN_ID" >> "$dir/events"
)";

// Lines of a file that start with `prefix`.
std::size_t lines_of(const fs::path& file, const std::string& prefix = "") {
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

void kill_audit(bool same_id) {
  Cli cli;
  fs::create_directory(cli.dir.path / "locks");
  const auto script = cli.dir.path / "job.sh";
  std::ofstream(script) << job_script;
  fs::permissions(script, fs::perms::owner_all);
  std::string jobs = "[";
  for (const auto* mode : {"pipeline", "setsid", "setsid-fork", "double-fork", "background"}) {
    for (int i = 1; i <= 2; ++i) {
      const std::string name = std::string(mode) + "-" + std::to_string(i);
      jobs += std::string(jobs.size() > 1 ? ", " : "") + R"({"name": ")" + name + R"(", "command": [")" +
              script.string() + R"(", ")" + name + R"(", ")" + mode + R"("], "every": "50ms"})";
    }
  }
  jobs += "]";
  const auto config = write_config(cli.dir.path, jobs, R"("claim_interval": "100ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms", "worker_threads": 10,)");
  REQUIRE(cli({"migrate"}).status == 0);

  std::map<std::string, std::unique_ptr<Process>> servers;  // by server id
  std::map<std::string, std::string> tags;                  // server id -> tag of its current process
  int generation = 0;
  const auto start = [&](const std::string& id) {
    tags[id] = id + "." + std::to_string(++generation);
    servers[id] = cli.serve(config, id, tags[id]);
  };
  start("a");
  start("b");
  std::mt19937 random(std::random_device{}());
  int alive_after_a_second = 0;
  std::string alive_report;
  constexpr int kills = 20;
  for (int k = 0; k < kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 900));
    const std::string victim = random() % 2 == 0 ? "a" : "b";
    const std::string old_tag = tags[victim];
    kill(servers[victim]->pid, SIGKILL);
    servers[victim]->wait();
    const auto killed = Steady::now();
    // Same id: at once. New id: after the check, as a new server.
    if (same_id) start(victim);
    const bool gone = wait_until([&] { return processes_of_serve(cli.dir.path, old_tag).empty(); },
                                 std::chrono::duration_cast<std::chrono::milliseconds>(killed + 1s - Steady::now()));
    if (!gone) {
      ++alive_after_a_second;
      alive_report += describe(processes_of_serve(cli.dir.path, old_tag));
    }
    if (!same_id) start(victim);
  }
  // Peers interrupt the runs of the server killed last (threshold + monitor).
  std::this_thread::sleep_for(2500ms);
  for (auto& [id, server] : servers) kill(server->pid, SIGTERM);
  for (auto& [id, server] : servers) {
    const auto result = server->wait();
    INFO(result.err);
    CHECK(result.status == 0);
  }
  const auto runs = cli({"runs", "--limit", "-1", "--json"}).parsed();
  const auto audit = cli({"audit", "--json"}).parsed();
  const auto overlaps = lines_of(cli.dir.path / "overlaps");
  const auto left_running = runs_in(cli, "running").size();
  std::size_t interrupted = 0;
  for (const auto& run : runs) interrupted += run["status"] == "interrupted" ? 1 : 0;
  std::printf(
      "serve kill audit [%s, %s]: %d kill -9s, runs %zu (interrupted %zu), command starts %zu, real overlaps %zu, "
      "jobctl audit overlaps %zu, processes alive 1 s after a kill %d, left running %zu\n",
      jobrepo::test::scheduler_on_postgres() ? "postgres" : "sqlite", same_id ? "same id" : "new ids", kills,
      runs.size(), interrupted, lines_of(cli.dir.path / "events", "start "), overlaps, audit["overlaps"].size(),
      alive_after_a_second, left_running);
  INFO(alive_report);
  INFO(slurp(cli.dir.path / "overlaps"));
  CHECK(overlaps == 0);
  CHECK(audit["overlaps"].empty());
  CHECK(alive_after_a_second == 0);
  CHECK(left_running == 0);
  CHECK(runs.size() > 100);
  CHECK(interrupted > 0);
  CHECK(run_processes(cli.dir.path).empty());
}

}  // namespace

TEST_CASE("serve: 20 kill -9s under load, new server ids: no real overlap, nothing left alive", "[kill]") {
  kill_audit(false);
}

TEST_CASE("serve: 20 kill -9s under load, restarted at once with the same id: no real overlap", "[kill]") {
  kill_audit(true);
}

namespace {

// Whether the process has not ended yet (an ended one is left to wait()).
bool still_running(const Process& process) {
  siginfo_t info{};
  return process.pid != 0 && waitid(P_PID, process.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

// Waits up to 5 s until serve says it waits for the database, or ends;
// returns what it wrote to stderr 1 s later.
std::string waiting_serve(const Process& serve) {
  wait_until(
      [&] { return serve.errors().find("waiting for the database") != std::string::npos || !still_running(serve); },
      5s);
  std::this_thread::sleep_for(1s);
  return serve.errors();
}

// The file of a "sqlite:PATH" URL.
fs::path sqlite_file(const std::string& url) { return url.substr(std::string("sqlite:").size()); }

// The ids of every run of the database.
std::set<std::string> run_ids(Cli& cli) {
  std::set<std::string> ids;
  for (const auto& run : cli({"runs", "--limit", "-1", "--json"}).parsed()) ids.insert(run["private_id"]);
  return ids;
}

}  // namespace

TEST_CASE(
    "serve: restarted where its SQLite file was moved away, it waits and keeps the WAL; moved back, no run is lost") {
  if (jobrepo::test::scheduler_on_postgres()) {
    SUCCEED("SQLite only: a database file and its WAL");
    return;
  }
  Cli cli;
  const auto path = sqlite_file(cli.url);
  const fs::path wal = path.string() + "-wal", moved = path.string() + ".moved";
  const auto config = write_config(cli.dir.path, R"([{"name": "tick", "command": ["true"], "every": "100ms"}])");
  auto first = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return runs_of(cli, "tick").size() >= 10; }, 10s));
  const auto before = run_ids(cli);
  fs::rename(path, moved);  // mv jobs.db elsewhere, while it serves
  // The first serve now refuses every call; a transaction it had begun
  // before may still commit into the WAL (which belongs to the moved file).
  std::this_thread::sleep_for(500ms);
  // The runs are in the WAL, not yet checkpointed into the moved file.
  REQUIRE(fs::exists(wal));
  const std::string wal_bytes = slurp(wal);
  REQUIRE(!wal_bytes.empty());

  // Another serve at the same path, the first one still running, then gone.
  auto second = cli.serve(config, "node-2");
  const auto waiting = waiting_serve(*second);
  INFO(waiting);
  CHECK(still_running(*second));
  CHECK(waiting.find("waiting for the database") != std::string::npos);
  CHECK(waiting.find("\"" + wal.string() + "\"") != std::string::npos);
  CHECK(waiting.find("moved or deleted") != std::string::npos);
  CHECK(waiting.find("(unavailable)") != std::string::npos);
  kill(first->pid, SIGTERM);
  CHECK(first->wait().status == 0);
  std::this_thread::sleep_for(1s);
  CHECK(still_running(*second));
  CHECK(!fs::exists(path));  // nothing created
  CHECK(fs::file_size(wal) == wal_bytes.size());
  CHECK((slurp(wal) == wal_bytes));  // nothing truncated

  fs::rename(moved, path);
  REQUIRE(wait_until([&] { return second->errors().find("the database is ready after") != std::string::npos; }, 10s));
  const auto after = run_ids(cli);
  for (const auto& id : before) CHECK(after.count(id) == 1);
  REQUIRE(wait_until([&] { return runs_of(cli, "tick").size() > after.size(); }, 5s));  // and it serves
  kill(second->pid, SIGTERM);
  CHECK(second->wait().status == 0);
}

TEST_CASE("serve: started on a read-only SQLite file, it waits; writable again, it serves") {
  if (jobrepo::test::scheduler_on_postgres()) {
    SUCCEED("SQLite only: a read-only database file");
    return;
  }
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  const auto path = sqlite_file(cli.url);
  // chattr +i: file modes do not stop root, who runs these tests.
  jobrepo::test::Immutable read_only(path);
  if (!read_only.problem.empty()) {
    WARN("skipped: cannot make a file read-only for root here: " << read_only.problem);
    return;
  }
  const auto config = write_config(cli.dir.path, R"([{"name": "tick", "command": ["true"], "every": "100ms"}])");
  auto serve = cli.serve(config, "node-1");
  const auto waiting = waiting_serve(*serve);
  INFO(waiting);
  CHECK(still_running(*serve));
  CHECK(waiting.find("waiting for the database") != std::string::npos);
  CHECK(waiting.find("attempt to write a readonly database (unavailable)") != std::string::npos);
  CHECK(waiting.find("\"" + path.string() + "\"") != std::string::npos);
  CHECK(cli.last_run("tick").is_null());

  read_only.release();
  CHECK(wait_until([&] { return cli.last_run("tick")["status"] == "completed"; }, 10s));
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.err.find("the database is ready after") != std::string::npos);
}

TEST_CASE("serve: started where the SQLite file's directory is read-only, it waits; writable again, it serves") {
  if (jobrepo::test::scheduler_on_postgres()) {
    SUCCEED("SQLite only: a read-only directory");
    return;
  }
  Cli cli;
  const auto directory = cli.dir.path / "data";
  fs::create_directory(directory);
  const auto path = directory / "jobs.db";
  cli.url = "sqlite:" + path.string();
  REQUIRE(cli({"migrate"}).status == 0);  // closed: no -wal, no -shm
  // SQLite cannot create the -wal and -shm there.
  jobrepo::test::Immutable read_only(directory);
  if (!read_only.problem.empty()) {
    WARN("skipped: cannot make a directory read-only for root here: " << read_only.problem);
    return;
  }
  const auto config = write_config(cli.dir.path, R"([{"name": "tick", "command": ["true"], "every": "100ms"}])");
  auto serve = cli.serve(config, "node-1");
  const auto waiting = waiting_serve(*serve);
  INFO(waiting);
  CHECK(still_running(*serve));
  CHECK(waiting.find("waiting for the database") != std::string::npos);
  CHECK(waiting.find(path.string()) != std::string::npos);
  CHECK(waiting.find("(unavailable)") != std::string::npos);

  read_only.release();
  CHECK(wait_until([&] { return cli.last_run("tick")["status"] == "completed"; }, 10s));
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.err.find("the database is ready after") != std::string::npos);
}

TEST_CASE("serve: restarted after its SQLite file system became read-only, it waits; SIGTERM then exits 0") {
  if (jobrepo::test::scheduler_on_postgres()) {
    SUCCEED("SQLite only: a read-only file system");
    return;
  }
  Cli cli;
  const auto source = cli.dir.path / "data";
  fs::create_directory(source);
  // The database's directory is a mount that can be made read-only, as the
  // kernel does with a file system after I/O errors (errors=remount-ro).
  jobrepo::test::BindMount mount(source, cli.dir.path / "mnt", /*read_only=*/false);
  if (!mount.problem.empty()) {
    WARN("skipped: cannot mount a directory here: " << mount.problem);
    return;
  }
  const auto path = cli.dir.path / "mnt" / "jobs.db";
  cli.url = "sqlite:" + path.string();
  const auto config = write_config(cli.dir.path, R"([{"name": "tick", "command": ["true"], "every": "100ms"}])");
  auto first = cli.serve(config, "node-1");
  REQUIRE(wait_until([&] { return runs_of(cli, "tick").size() >= 5; }, 10s));
  const auto before = run_ids(cli);
  // A crash leaves the -wal and -shm: SQLite then opens the read-only file
  // (instead of failing to create a -shm) and refuses to write it.
  kill(first->pid, SIGKILL);
  first->wait();
  REQUIRE(fs::exists(path.string() + "-shm"));
  REQUIRE(mount.set_read_only(true));

  auto second = cli.serve(config, "node-2");
  const auto waiting = waiting_serve(*second);
  INFO(waiting);
  CHECK(still_running(*second));
  CHECK(waiting.find("waiting for the database") != std::string::npos);
  CHECK(waiting.find("readonly database (unavailable)") != std::string::npos);
  CHECK(waiting.find("\"" + path.string() + "\"") != std::string::npos);
  kill(second->pid, SIGTERM);
  const auto stopped = second->wait_at_most(2s);
  INFO(stopped.err);
  CHECK(stopped.status == 0);
  CHECK(stopped.err.find("stopping on SIGTERM while waiting for the database") != std::string::npos);

  // Restarted once more, it serves when the file system is writable again.
  auto third = cli.serve(config, "node-3");
  REQUIRE(wait_until([&] { return third->errors().find("waiting for the database") != std::string::npos; }, 5s));
  REQUIRE(mount.set_read_only(false));
  REQUIRE(wait_until([&] { return third->errors().find("the database is ready after") != std::string::npos; }, 10s));
  const auto after = run_ids(cli);
  for (const auto& id : before) CHECK(after.count(id) == 1);
  CHECK(wait_until([&] { return runs_of(cli, "tick").size() > after.size(); }, 5s));
  kill(third->pid, SIGTERM);
  CHECK(third->wait().status == 0);
}
