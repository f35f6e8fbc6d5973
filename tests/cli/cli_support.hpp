// Test helpers for jobctl run as a user would: a jobctl process with its
// output in files, a database per test, and what the kernel says of the
// processes that runs started (by their JOBREPO_RUN_ID), so that tests
// observe real processes, not what the database believes.
#pragma once

#include "backend.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo::test {

inline std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The jobctl under test: this build's, or JOBREPO_TEST_JOBCTL (to run the
// tests against another build, e.g. to see a defect the tests reproduce).
inline std::string jobctl_path() {
  const char* other = std::getenv("JOBREPO_TEST_JOBCTL");
  return other != nullptr && *other != '\0' ? other : JOBCTL_PATH;
}

struct Result {
  int status = -1;
  std::string out, err;
  nlohmann::json parsed() const { return nlohmann::json::parse(out); }
};

// A jobctl process with stdout and stderr in files of `dir`.
struct Process {
  pid_t pid = 0;
  std::filesystem::path out, err;
  Process(const std::vector<std::string>& args, const std::filesystem::path& dir, const std::string& tag,
          const std::vector<std::string>& extra_env = {}) {
    static int count = 0;
    out = dir / (tag + std::to_string(++count) + ".out");
    err = dir / (tag + std::to_string(count) + ".err");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all = {jobctl_path()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text = {"JOBREPO_TEST_DIR=" + dir.string()};
    for (char** e = environ; *e; ++e) {
      const std::string entry = *e;
      if (entry.rfind("JOBREPO_DATABASE_URL=", 0) != 0 && entry.rfind("JOBREPO_TEST_DIR=", 0) != 0) {
        env_text.push_back(entry);
      }
    }
    env_text.insert(env_text.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, all.front().c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Result wait() {
    int status = 0;
    waitpid(pid, &status, 0);
    return ended(status);
  }
  // wait(), but first SIGKILL when it is still running after `timeout`.
  Result wait_at_most(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= end) {
        kill(pid, SIGKILL);
        return wait();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ended(status);
  }
  // What it wrote to stderr so far.
  std::string errors() const { return slurp(err); }
  Result ended(int status) {
    pid = 0;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
  }
  ~Process() {
    if (pid) {
      kill(pid, SIGKILL);
      wait();
    }
  }
};

// A live (not zombie) process that a run started: its environment holds the
// run's JOBREPO_RUN_ID, and the JOBREPO_TEST_DIR of the test whose jobctl
// started it (Cli passes it to every jobctl; commands inherit it).
struct RunProcess {
  pid_t pid = 0;
  std::string run_id;
  std::string serve;    // the JOBREPO_TEST_SERVE tag of the jobctl serve that started it
  std::string command;  // its command line, spaces between arguments
};

// The value of `key` in the NUL-separated environment text, or empty.
inline std::string environment_value(const std::string& environment, std::string_view key) {
  for (std::size_t at = 0; at < environment.size();) {
    const auto end = environment.find('\0', at);
    const std::string_view item(environment.data() + at, (end == std::string::npos ? environment.size() : end) - at);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=') {
      return std::string(item.substr(key.size() + 1));
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return {};
}

// Every live process that a run of the test with directory `test_dir` started.
inline std::vector<RunProcess> run_processes(const std::filesystem::path& test_dir) {
  std::vector<RunProcess> found;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = slurp(entry.path() / "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z') continue;
    const std::string environment = slurp(entry.path() / "environ");
    if (environment_value(environment, "JOBREPO_TEST_DIR") != test_dir.string()) continue;
    auto run_id = environment_value(environment, "JOBREPO_RUN_ID");
    if (run_id.empty()) continue;
    std::string command = slurp(entry.path() / "cmdline");
    for (auto& c : command) c = c == '\0' ? ' ' : c;
    found.push_back(
        {std::stoi(name), std::move(run_id), environment_value(environment, "JOBREPO_TEST_SERVE"), std::move(command)});
  }
  return found;
}

// The live processes of runs started by the serve with that tag.
inline std::vector<RunProcess> processes_of_serve(const std::filesystem::path& test_dir, const std::string& tag) {
  std::vector<RunProcess> out;
  for (auto& p : run_processes(test_dir)) {
    if (p.serve == tag) out.push_back(std::move(p));
  }
  return out;
}

inline std::string describe(const std::vector<RunProcess>& processes) {
  std::string out;
  for (const auto& p : processes) out += std::to_string(p.pid) + " [" + p.run_id + "] " + p.command + "\n";
  return out;
}

// Kills (SIGKILL) every process that runs of a test left behind, so that a
// failing test leaks none into the machine.
struct RunProcessReaper {
  std::filesystem::path test_dir;
  ~RunProcessReaper() {
    for (const auto& p : run_processes(test_dir)) kill(p.pid, SIGKILL);
  }
};

// True when `text` is lines of valid UTF-8 without a control character
// (C0 but the line feeds, DEL, C1): what a terminal or a log shows as it is,
// one line per line feed.
inline bool visible_lines(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7F) return false;
    if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xA0) return false;
  }
  return !jobrepo::encoding_problem(text);
}

// The lines of `text` (without their line feeds).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

// Writes `text` to a file that exists (a cgroup's interface file); false on any error.
inline bool write_text(const std::filesystem::path& file, const std::string& text) {
  const int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool wrote = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return wrote;
}

// Kills every process of a cgroup and of the cgroups below it, waits up to
// 5 s for them to be gone, and removes them all.
inline void remove_cgroup_tree(const std::filesystem::path& cgroup) {
  if (!std::filesystem::exists(cgroup)) return;
  write_text(cgroup / "cgroup.kill", "1");
  wait_until([&] { return slurp(cgroup / "cgroup.events").find("populated 0") != std::string::npos; },
             std::chrono::seconds(5));
  std::vector<std::filesystem::path> below;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(cgroup, ignored)) {
    if (entry.is_directory(ignored)) below.push_back(entry.path());
  }
  std::sort(below.begin(), below.end(), [](const std::filesystem::path& a, const std::filesystem::path& b) {
    return std::distance(a.begin(), a.end()) > std::distance(b.begin(), b.end());
  });
  for (const auto& dir : below) rmdir(dir.c_str());
  rmdir(cgroup.c_str());
}

// This test process in a cgroup v2 of its own while a test runs: the serves
// it starts are in that cgroup too, so they put their runs' cgroups under
// base(), which nothing else on the machine uses. Destroyed, it moves back
// to its own cgroup and kills and removes the test's cgroup with all that is
// in it, also when the test failed. Where the cgroup tree is not writable it
// does nothing, and usable() is false.
class TestCgroup {
 public:
  TestCgroup() {
    std::string mount;  // of the cgroup2 filesystem, its root mounted
    std::istringstream mounts(slurp("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line);) {
      // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
      std::istringstream fields(line);
      std::string id, parent, device, root, point, word;
      fields >> id >> parent >> device >> root >> point;
      while (fields >> word && word != "-") {
      }
      if (fields >> word && word == "cgroup2" && root == "/") mount = point;
    }
    std::istringstream groups(slurp("/proc/self/cgroup"));
    std::string own;
    for (std::string line; std::getline(groups, line);) {
      if (line.rfind("0::/", 0) == 0) own = line.substr(4);
    }
    if (mount.empty()) return;
    original_ = own.empty() ? std::filesystem::path(mount) : std::filesystem::path(mount) / own;
    static int made = 0;
    path_ = original_ / ("jobrepo-test-" + std::to_string(getpid()) + "-" + std::to_string(++made));
    if (mkdir(path_.c_str(), 0755) != 0) return;
    created_ = true;
    usable_ = write_text(path_ / "cgroup.procs", "0") && std::filesystem::exists(path_ / "cgroup.kill");
  }
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;
  ~TestCgroup() {
    if (!created_) return;
    write_text(original_ / "cgroup.procs", "0");
    remove_cgroup_tree(path_);
  }
  bool usable() const { return usable_; }
  const std::filesystem::path& path() const { return path_; }
  // Where the serves of the test put their runs' cgroups.
  std::filesystem::path base() const { return path_ / "jobrepo-runs"; }
  // The cgroups under base(), one per run whose cgroup is still there.
  std::vector<std::string> runs_left() const {
    std::vector<std::string> out;
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(base(), ignored)) {
      if (entry.is_directory(ignored)) out.push_back(entry.path().filename());
    }
    return out;
  }

 private:
  std::filesystem::path original_, path_;
  bool created_ = false, usable_ = false;
};

inline Databases& databases() {
  static Databases all;
  return all;
}

// A scratch directory and a database; operator() runs jobctl --db URL ARGS.
struct Cli {
  TestCgroup cgroup;  // first made, last gone: what the test left in it is killed
  TempDir dir{"jobrepo-cli"};
  std::string url = databases().make();
  RunProcessReaper reaper{dir.path};
  Result operator()(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--db", url});
    return Process(args, dir.path, "jobctl", env).wait();
  }
  Result bare(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    return Process(args, dir.path, "jobctl", env).wait();
  }
  // jobctl --db URL serve --config CONFIG --server-id ID ARGS, running.
  // Its commands inherit JOBREPO_TEST_SERVE=`tag` (default: the server id).
  std::unique_ptr<Process> serve(const std::filesystem::path& config, const std::string& server_id,
                                 const std::string& tag = "") {
    return std::make_unique<Process>(
        std::vector<std::string>{"--db", url, "serve", "--config", config.string(), "--server-id", server_id}, dir.path,
        "serve-" + server_id, std::vector<std::string>{"JOBREPO_TEST_SERVE=" + (tag.empty() ? server_id : tag)});
  }
  // The newest run of a job as JSON, or null.
  nlohmann::json last_run(const std::string& job) {
    const auto runs = (*this)({"runs", "--job", job, "--limit", "1", "--json"});
    return runs.status == 0 && !runs.parsed().empty() ? runs.parsed()[0] : nlohmann::json();
  }
};

// The runs of a job, oldest first.
inline std::vector<nlohmann::json> runs_of(Cli& cli, const std::string& job) {
  auto runs = cli({"runs", "--job", job, "--limit", "-1", "--json"}).parsed();
  std::vector<nlohmann::json> out(runs.begin(), runs.end());
  std::reverse(out.begin(), out.end());
  return out;
}

// Microseconds since the epoch of a time field of jobctl's JSON ("2026-...Z").
inline long long micros_of(const nlohmann::json& text) {
  std::tm tm{};
  int micros = 0;
  const std::string s = text.get<std::string>();
  REQUIRE(std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec, &micros) == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<long long>(timegm(&tm)) * 1000000 + micros;
}

// A serve config: `settings` are top-level fields (each `"key": value,`),
// `jobs` the JSON of the jobs array. With JOBREPO_TEST_CGROUPS=auto|on|off in
// the environment, "cgroups" is that where `settings` do not set it (to run
// the serve tests with each way of ending a run's processes).
inline std::filesystem::path write_config(const std::filesystem::path& dir, const std::string& jobs,
                                          const std::string& settings = R"("claim_interval": "200ms",
    "monitor_interval": "250ms", "interrupt_threshold": "2s", "grace": "250ms", "worker_threads": 6,)",
                                          const std::string& file = "jobs.json") {
  const auto path = dir / file;
  const char* cgroups = std::getenv("JOBREPO_TEST_CGROUPS");
  const bool set_cgroups = cgroups != nullptr && settings.find("\"cgroups\"") == std::string::npos;
  std::ofstream(path) << "{" << (set_cgroups ? "\"cgroups\": \"" + std::string(cgroups) + "\", " : std::string())
                      << settings << R"( "jobs": )" << jobs << "}";
  return path;
}

}  // namespace jobrepo::test
