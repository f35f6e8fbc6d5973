#include "serve.hpp"

#include "duration.hpp"

#include <jobrepo/jobrepo.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobctl {

namespace {

using nlohmann::json;
using std::chrono::microseconds;
using Steady = std::chrono::steady_clock;

std::mutex log_mutex;

void log_line(const std::string& server, const std::string& text) {
  const std::lock_guard lock(log_mutex);
  std::cerr << local_time(jobrepo::Clock::now()) << " jobctl serve [" << server << "] " << text << std::endl;
}

// --- configuration ---------------------------------------------------------

struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw ConfigError(file + ": " + field + ": " + problem);
  }

  void only(const json& object, const std::string& where, const std::set<std::string>& known) const {
    for (const auto& [key, value] : object.items()) {
      if (known.count(key) == 0) fail(where.empty() ? key : where + "." + key, "unknown field");
    }
  }

  std::string text(const json& value, const std::string& field, std::size_t max = 0) const {
    if (!value.is_string()) fail(field, "must be a string");
    const auto s = value.get<std::string>();
    if (s.find_first_not_of(' ') == std::string::npos) fail(field, "must not be empty");
    if (max > 0 && s.size() > max) fail(field, "is longer than " + std::to_string(max) + " characters");
    return s;
  }

  microseconds duration(const json& value, const std::string& field, bool positive) const {
    if (!value.is_string()) fail(field, std::string("must be a duration string, ") + duration_hint);
    const auto parsed = parse_duration(value.get<std::string>());
    if (!parsed) fail(field, "\"" + value.get<std::string>() + "\" is not a duration (" + duration_hint + ")");
    if (positive && parsed->count() <= 0) fail(field, "must be positive");
    if (!positive && parsed->count() < 0) fail(field, "must not be negative");
    return *parsed;
  }
};

CommandJob read_job(const Reader& r, const json& item, const std::string& where) {
  if (!item.is_object()) r.fail(where, "must be an object");
  r.only(item, where, {"name", "description", "command", "every", "timeout", "working_directory", "environment"});
  CommandJob job;
  if (!item.contains("name")) r.fail(where + ".name", "is missing");
  job.name = r.text(item["name"], where + ".name", 127);
  if (!item.contains("command")) r.fail(where + ".command", "is missing");
  const auto& command = item["command"];
  if (!command.is_array() || command.empty()) {
    r.fail(where + ".command",
           "must be a non-empty array of strings (argv; use [\"sh\", \"-c\", \"...\"] for a shell)");
  }
  for (std::size_t i = 0; i < command.size(); ++i) {
    if (!command[i].is_string()) r.fail(where + ".command[" + std::to_string(i) + "]", "must be a string");
    job.command.push_back(command[i].get<std::string>());
  }
  job.description = item.contains("description") ? r.text(item["description"], where + ".description", 1023)
                                                 : "runs " + job.command.front();
  if (!item.contains("every")) r.fail(where + ".every", "is missing");
  job.every = r.duration(item["every"], where + ".every", true);
  if (item.contains("timeout")) job.timeout = r.duration(item["timeout"], where + ".timeout", true);
  if (item.contains("working_directory")) {
    job.working_directory = r.text(item["working_directory"], where + ".working_directory");
    if (!std::filesystem::is_directory(job.working_directory)) {
      r.fail(where + ".working_directory", "\"" + job.working_directory + "\" is not a directory");
    }
  }
  if (item.contains("environment")) {
    const auto& env = item["environment"];
    if (!env.is_object()) r.fail(where + ".environment", "must be an object of strings");
    for (const auto& [key, value] : env.items()) {
      if (!value.is_string()) r.fail(where + ".environment." + key, "must be a string");
      if (key.empty() || key.find('=') != std::string::npos) r.fail(where + ".environment." + key, "invalid name");
      job.environment[key] = value.get<std::string>();
    }
  }
  return job;
}

// --- running a command -----------------------------------------------------

// Runs the command of `job` as a child process for one run; see docs/cli.md.
microseconds run_command(const CommandJob& job, const ServeConfig& config, jobrepo::JobContext& context,
                         const std::string& server) {
  // Everything the child needs is built before fork().
  std::vector<std::string> argv_text = job.command;
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : job.environment) env_map[key] = value;
  env_map["JOBREPO_RUN_ID"] = context.run_id();
  env_map["JOBREPO_JOB_NAME"] = job.name;
  std::vector<std::string> env_text;
  for (const auto& [key, value] : env_map) env_text.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The child: its own process group (signals reach what it starts too),
    // default signal mask, stdout into the pipe.
    setpgid(0, 0);
    // If jobctl dies (even by kill -9), the command gets SIGKILL: otherwise it
    // would run on as an orphan while another server runs the job again.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out[1], STDOUT_FILENO);
    if (!job.working_directory.empty() && chdir(job.working_directory.c_str()) != 0) _exit(126);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  setpgid(pid, pid);  // also from here, so that no signal can precede it

  std::string pending;
  bool eof = false, term_sent = false, kill_sent = false;
  Steady::time_point term_at{};
  int status = 0;
  bool exited = false;
  const auto handle_line = [&](const std::string& line) {
    unsigned long long completed = 0, total = 0;
    char tail = 0;
    if (std::sscanf(line.c_str(), "progress %llu/%llu%c", &completed, &total, &tail) == 2) {
      try {
        context.report_progress(static_cast<std::int64_t>(completed), static_cast<std::int64_t>(total));
      } catch (const jobrepo::Error& e) {
        log_line(server, job.name + ": ignored " + e.what());
      }
      return;
    }
    const std::lock_guard lock(log_mutex);
    std::cout << "[" << job.name << "] " << line << std::endl;
  };
  while (!exited) {
    if (context.cancelled() && !term_sent) {
      kill(-pid, SIGTERM);
      term_sent = true;
      term_at = Steady::now();
    }
    if (term_sent && !kill_sent && Steady::now() - term_at >= config.grace) {
      kill(-pid, SIGKILL);
      kill_sent = true;
    }
    if (!eof) {
      pollfd fd{out[0], POLLIN, 0};
      if (poll(&fd, 1, 100) > 0) {
        char buffer[4096];
        const auto got = read(out[0], buffer, sizeof buffer);
        if (got <= 0) {
          eof = true;
        } else {
          pending.append(buffer, static_cast<std::size_t>(got));
          for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
            handle_line(pending.substr(0, nl));
            pending.erase(0, nl + 1);
          }
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const pid_t done = waitpid(pid, &status, eof ? WNOHANG : WNOHANG);
    if (done == pid) exited = true;
  }
  if (!pending.empty()) handle_line(pending);
  close(out[0]);
  kill(-pid, SIGKILL);  // anything the command left behind in its group

  context.throw_if_cancelled();
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) return job.every;
    if (code == 127) throw std::runtime_error("exit 127 (command not found: " + job.command.front() + ")");
    throw std::runtime_error("exit " + std::to_string(code));
  }
  throw std::runtime_error("killed by signal " + std::to_string(WTERMSIG(status)));
}

}  // namespace

ServeConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(path + ": not valid JSON: " + e.what());
  }
  const Reader r{path};
  if (!root.is_object()) r.fail("(top level)", "must be an object");
  r.only(root, "",
         {"plugin_id", "worker_threads", "claim_interval", "monitor_interval", "interrupt_threshold", "grace", "jobs"});
  ServeConfig config;
  if (root.contains("plugin_id")) config.plugin_id = r.text(root["plugin_id"], "plugin_id", 127);
  if (root.contains("worker_threads")) {
    if (!root["worker_threads"].is_number_integer() || root["worker_threads"].get<int>() < 1) {
      r.fail("worker_threads", "must be an integer >= 1");
    }
    config.worker_threads = root["worker_threads"].get<int>();
  }
  if (root.contains("claim_interval"))
    config.claim_interval = r.duration(root["claim_interval"], "claim_interval", true);
  if (root.contains("monitor_interval")) {
    config.monitor_interval = r.duration(root["monitor_interval"], "monitor_interval", true);
  }
  if (root.contains("interrupt_threshold")) {
    config.interrupt_threshold = r.duration(root["interrupt_threshold"], "interrupt_threshold", true);
  }
  if (config.monitor_interval > config.interrupt_threshold / 4) {
    r.fail("monitor_interval", "must be at most a quarter of interrupt_threshold");
  }
  if (root.contains("grace")) config.grace = r.duration(root["grace"], "grace", false);
  if (!root.contains("jobs")) r.fail("jobs", "is missing");
  if (!root["jobs"].is_array() || root["jobs"].empty()) r.fail("jobs", "must be a non-empty array");
  std::set<std::string> names;
  for (std::size_t i = 0; i < root["jobs"].size(); ++i) {
    const std::string where = "jobs[" + std::to_string(i) + "]";
    auto job = read_job(r, root["jobs"][i], where);
    if (!names.insert(job.name).second) r.fail(where + ".name", "\"" + job.name + "\" is defined twice");
    config.jobs.push_back(std::move(job));
  }
  return config;
}

std::string default_server_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

int serve(const std::string& url, const ServeConfig& config, const std::string& server_id) {
  // A closed stdout (e.g. piped into head) must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT and SIGTERM are taken by sigwait() below, in this thread only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto store = jobrepo::open_store(url);
  store->migrate();
  jobrepo::SchedulerOptions options;
  options.plugin_id = config.plugin_id;
  options.worker_threads = config.worker_threads;
  options.claim_interval = config.claim_interval;
  options.monitor_interval = config.monitor_interval;
  options.interrupt_threshold = config.interrupt_threshold;
  options.stop_timeout = config.grace + std::chrono::seconds(1);
  options.on_event = [server_id](const jobrepo::SchedulerEvent& e) {
    std::string text = std::string(jobrepo::to_string(e.kind));
    if (!e.job_name.empty()) text += " " + e.job_name;
    if (!e.run_id.empty()) text += " run " + e.run_id;
    if (!e.detail.empty()) text += (e.kind == jobrepo::SchedulerEvent::Kind::failed ? " with " : " ") + e.detail;
    log_line(server_id, text);
  };
  jobrepo::Scheduler scheduler(server_id, *store, options);
  for (const auto& job : config.jobs) {
    scheduler.register_job(jobrepo::make_job(job.name, job.description,
                                             [&job, &config, server_id](jobrepo::JobContext& context) {
                                               return run_command(job, config, context, server_id);
                                             }),
                           {.next_run_in = microseconds(0), .timeout = job.timeout});
  }
  scheduler.start();
  log_line(server_id,
           "serving " + std::to_string(config.jobs.size()) + " jobs on " + jobrepo::redact_postgres_url(url));
  int signal = 0;
  sigwait(&stop_signals, &signal);
  log_line(server_id, std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
  const bool clean = scheduler.stop();
  log_line(server_id, clean ? "stopped" : "stopped; some commands did not end in time");
  return 0;
}

}  // namespace jobctl
