// Memory: peak resident set (VmHWM) of a process running the Scheduler, and
// of `jobctl serve`, idle and under load.
#include "common.hpp"

#include <jobrepo/jobrepo.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo_bench {

using namespace std::chrono_literals;

namespace {

// VmHWM of a process in KiB (0 when unreadable).
long peak_rss_kib(const std::string& pid) {
  std::ifstream status("/proc/" + pid + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& output) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("memory: cannot start " + args[0]);
  return pid;
}

std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

json row(const Target& t, const std::string& process, const std::string& state, int jobs, long kib) {
  return json{{"workload", "memory"}, {"backend", t.backend}, {"process", process},
              {"state", state},       {"jobs", jobs},         {"peak_rss_mib", static_cast<double>(kib) / 1024.0}};
}

}  // namespace

// The child of the scheduler measurement: a Scheduler with `jobs` no-op jobs
// for `seconds`; "load": always due (each returns next_run_in 0), else due in
// an hour. Prints its own VmHWM in KiB.
int memory_child_main(const std::string& url, int jobs, double seconds, bool load) {
  auto store = jobrepo::open_store(url);
  jobrepo::Scheduler scheduler("memory", *store, {});
  const auto next = load ? std::chrono::microseconds(0) : std::chrono::microseconds(1h);
  for (int i = 0; i < jobs; ++i) {
    scheduler.register_job(
        jobrepo::make_job("job-" + std::to_string(i), "memory probe", [next](jobrepo::JobContext&) { return next; }),
        {.next_run_in = next});
  }
  scheduler.start();
  std::this_thread::sleep_for(seconds_of(seconds));
  scheduler.stop();
  std::cout << peak_rss_kib("self") << std::endl;
  return 0;
}

json memory_rows(const Target& t, const Options& o) {
  json rows = json::array();
  const auto out =
      (std::filesystem::temp_directory_path() / ("jobrepo-bench-" + std::to_string(getpid()) + ".out")).string();
  const double seconds = std::max(1.0, o.seconds);
  const int load_jobs = std::max(10, o.jobs / 10);
  // The Scheduler in a process of its own (this tool, started again).
  for (const auto& [state, jobs] : std::vector<std::pair<std::string, int>>{{"idle", 10}, {"load", load_jobs}}) {
    reset(t, 0);
    const pid_t pid =
        spawn({o.self, "--memory-child", t.url, std::to_string(jobs), std::to_string(seconds), state}, out);
    int status = 0;
    waitpid(pid, &status, 0);
    const std::string text = slurp(out);
    const long kib = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !text.empty() ? std::stol(text) : 0;
    rows.push_back(row(t, "scheduler", state, jobs, kib));
  }
  // jobctl serve: idle (10 jobs that ran once and are due in an hour) and
  // under load (20 jobs running `true` every millisecond on 4 workers).
  if (!std::filesystem::exists(o.jobctl)) {
    std::cerr << "jobrepo-bench: memory: no jobctl at " << o.jobctl << " (give --jobctl PATH); skipped\n";
    std::remove(out.c_str());
    return rows;
  }
  const auto config = out + ".json";
  for (const auto& [state, jobs] : std::vector<std::pair<std::string, int>>{{"idle", 10}, {"load", 20}}) {
    reset(t, 0);
    json jobs_json = json::array();
    for (int i = 0; i < jobs; ++i) {
      jobs_json.push_back({{"name", "job-" + std::to_string(i)},
                           {"description", "memory probe"},
                           {"command", {"true"}},
                           {"every", state == "idle" ? "1h" : "1ms"}});
    }
    std::ofstream(config) << json{{"worker_threads", 4}, {"jobs", jobs_json}}.dump(2);
    const pid_t pid = spawn({o.jobctl, "--db", t.url, "serve", "--config", config, "--server-id", "memory"}, out);
    std::this_thread::sleep_for(seconds_of(seconds + 1));
    const long kib = peak_rss_kib(std::to_string(pid));
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    rows.push_back(row(t, "jobctl serve", state, jobs, kib));
  }
  std::remove(config.c_str());
  std::remove(out.c_str());
  return rows;
}

}  // namespace jobrepo_bench
