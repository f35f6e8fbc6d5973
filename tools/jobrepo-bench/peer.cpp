// The peer workload: jobrepo's Scheduler against graphile-worker, a job queue
// for Node.js on PostgreSQL, on the same server (and so the same durability).
// graphile-worker runs in node through bench/graphile_bench.mjs, installed
// with `npm ci --prefix bench` (tools/setup does it).
#include "common.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo_bench {

namespace {

namespace fs = std::filesystem;

const char* const install_hint = "run npm ci --prefix bench (tools/setup does it)";

// A setting of the comparison: the peer's mode (graphile_bench.mjs --mode)
// against our Scheduler with this many worker threads in one process.
struct Setting {
  const char* mode;
  int ours_workers;
};
constexpr Setting settings[] = {{"default", 8}, {"batched", 16}};

struct Finished {
  int status = -1;  // the exit status; -1: ended by a signal
  std::string out, err;
  bool timed_out = false;
};

// Runs `args` (args[0] looked up in PATH) with stdin from /dev/null and
// collects stdout and stderr; past `timeout_s` the process gets SIGTERM
// (graphile_bench.mjs then kills its worker processes), 5 s later SIGKILL.
Finished run_process(const std::vector<std::string>& args, double timeout_s) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("peer: pipe: " + std::string(std::strerror(errno)));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error("peer: pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    throw std::runtime_error("peer: cannot run " + args[0] + ": " + std::strerror(rc) +
                             " (install nodejs, e.g. with tools/setup, or give --node PATH)");
  }
  Finished f;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&f.out, &f.err};
  const auto start = Steady::now();
  auto deadline = start + seconds_of(timeout_s);
  bool terminated = false, killed = false;
  for (int open = 2; open > 0;) {
    const auto now = Steady::now();
    if (now >= deadline) {
      if (!terminated) {
        f.timed_out = terminated = true;
        kill(pid, SIGTERM);
        deadline = now + std::chrono::seconds(5);
      } else if (!killed) {
        killed = true;
        kill(pid, SIGKILL);
        deadline = now + std::chrono::seconds(5);
      } else {
        break;  // the pipes stay open in some other process: stop reading
      }
    }
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    if (poll(fds, 2, static_cast<int>(std::min<long long>(wait_ms, 1000))) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (const auto& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  f.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return f;
}

std::string first_line(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) return line;
  }
  return "";
}

std::string script_of(const Options& o) { return (fs::path(o.peer_dir) / "graphile_bench.mjs").string(); }

// A server setting, for the row: the durability both sides ran with.
std::string server_setting(const std::string& url, const char* name) {
  PGconn* c = PQconnectdb(url.c_str());
  const char* values[] = {name};
  PGresult* r = PQexecParams(c, "SELECT current_setting($1)", 1, nullptr, values, nullptr, nullptr, 0);
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  const std::string value = ok ? PQgetvalue(r, 0, 0) : "";
  const std::string message = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error("peer: current_setting(" + std::string(name) + "): " + first_line(message));
  return value;
}

// graphile_bench.mjs on a new empty database of the server; its JSON line.
json run_peer(const Options& o, const Setting& s, int n) {
  const std::string db = "jobrepo_bench_" + std::to_string(getpid()) + "_peer_" + std::to_string(n);
  pg_exec(o.postgres_url, "CREATE DATABASE " + db);
  Finished f;
  // The script's own limit for the drain (generous: a loaded machine drains
  // a few hundred jobs/s); the process gets a minute more for its start and
  // the seeding before it is killed.
  const int drain_limit = 60 + o.peer_jobs / 100;
  try {
    f = run_process({o.node, script_of(o), "--url", with_database(o.postgres_url, db), "--mode", s.mode, "--jobs",
                     std::to_string(o.peer_jobs), "--timeout", std::to_string(drain_limit)},
                    drain_limit + 60);
  } catch (...) {
    pg_exec(o.postgres_url, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    throw;
  }
  pg_exec(o.postgres_url, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  const std::string what = "peer: graphile_bench.mjs --mode " + std::string(s.mode);
  if (f.timed_out) throw std::runtime_error(what + ": no result after " + std::to_string(drain_limit + 60) + " s");
  if (f.status != 0) {
    const std::string why = first_line(f.err);
    throw std::runtime_error(what + " failed: " + (why.empty() ? "exit status " + std::to_string(f.status) : why));
  }
  json result;
  try {
    result = json::parse(first_line(f.out));
  } catch (const json::exception&) {
    throw std::runtime_error(what + ": not a JSON line: \"" + first_line(f.out) + "\"");
  }
  for (const auto* key : {"jobs_per_s", "jobs_per_s_with_start", "start_seconds"}) {
    if (!result.contains(key) || !result[key].is_number()) {
      throw std::runtime_error(what + ": no " + key + " in \"" + first_line(f.out) + "\"");
    }
  }
  return result;
}

// The median of a few rounds (the mean of the middle two for an even count).
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

void peer_check(const Options& o) {
  if (!fs::exists(script_of(o))) {
    throw std::runtime_error("peer: no graphile_bench.mjs in --peer-dir \"" + o.peer_dir + "\"");
  }
  if (!fs::exists(fs::path(o.peer_dir) / "node_modules" / "graphile-worker" / "package.json")) {
    throw std::runtime_error("peer: graphile-worker is not installed in \"" + o.peer_dir +
                             "/node_modules\": " + install_hint);
  }
  const Finished f = run_process({o.node, "--version"}, 30);
  if (f.status != 0) {
    throw std::runtime_error("peer: \"" + o.node +
                             " --version\" failed (install nodejs, e.g. with tools/setup, or give --node PATH)");
  }
}

// For each setting, --rounds rounds of ours then the peer, each on a new
// database, so that the machine's drift hits both alike; a row per setting
// with the median of the rounds on each side. Neither rate counts its start:
// ours is the scheduler workload's (counted after a 1 s warm-up), the peer's
// its drain from the first job's start (its start-up is in the row apart).
void peer_rows(const Options& o, const std::function<void(const json&)>& emit) {
  Options ours_options = o;
  ours_options.jobs = o.peer_jobs;
  const std::string synchronous_commit = server_setting(o.postgres_url, "synchronous_commit");
  const std::string fsync = server_setting(o.postgres_url, "fsync");
  int n = 0;
  for (const auto& s : settings) {
    std::vector<double> ours, peer, peer_with_start, peer_start;
    std::int64_t errors = 0;
    json last;
    for (int round = 1; round <= o.rounds; ++round) {
      std::cerr << "jobrepo-bench: peer " << s.mode << ", round " << round << "/" << o.rounds << ": jobrepo Scheduler, "
                << s.ours_workers << " worker threads, " << o.seconds << " s\n";
      // Database names apart from the other workloads' (make_target numbers from 1).
      const Target t = make_target("postgres", ours_options, 1000 + ++n, "");
      json row;
      try {
        row = scheduler_throughput(t, ours_options, s.ours_workers, o.peer_local_queue, false);
      } catch (...) {
        drop_target(t, o);
        throw;
      }
      drop_target(t, o);
      ours.push_back(row["runs_per_second"].get<double>());
      errors += row["errors"].get<std::int64_t>();
      std::cerr << "jobrepo-bench: peer " << s.mode << ", round " << round << "/" << o.rounds << ": graphile-worker, "
                << o.peer_jobs << " jobs\n";
      last = run_peer(o, s, ++n);
      peer.push_back(last["jobs_per_s"].get<double>());
      peer_with_start.push_back(last.value("jobs_per_s_with_start", 0.0));
      peer_start.push_back(last.value("start_seconds", 0.0));
    }
    const double ours_rate = median(ours), peer_rate = median(peer);
    const int processes = last.value("processes", 0), concurrency = last.value("concurrency", 0);
    emit(json{{"workload", "peer"},
              {"backend", "postgres"},
              {"setting", s.mode},
              {"jobs", o.peer_jobs},
              {"rounds", o.rounds},
              {"seconds", o.seconds},
              {"aggregate", "median"},
              {"ours_workers", s.ours_workers},
              {"ours_local_queue", o.peer_local_queue},
              {"runs_per_second", ours_rate},
              {"ours_rounds", ours},
              {"errors", errors},
              {"peer", last.value("peer", std::string("?")) + " " + last.value("version", std::string("?"))},
              {"peer_processes", processes},
              {"peer_concurrency", concurrency},
              {"peer_shape", std::to_string(processes) + " x " + std::to_string(concurrency)},
              {"peer_jobs_per_second", peer_rate},
              {"peer_rounds", peer},
              {"peer_start_seconds", median(peer_start)},
              {"peer_jobs_per_second_with_start", median(peer_with_start)},
              {"node", last.value("node", std::string("?"))},
              {"synchronous_commit", synchronous_commit},
              {"fsync", fsync},
              {"ours_over_peer", peer_rate > 0 ? json(ours_rate / peer_rate) : json(nullptr)}});
  }
}

}  // namespace jobrepo_bench
