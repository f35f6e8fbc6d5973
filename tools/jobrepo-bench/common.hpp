// jobrepo-bench: what the workloads share (options, databases, measures).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace jobrepo_bench {

using nlohmann::json;
using Steady = std::chrono::steady_clock;

struct Options {
  std::vector<std::string> backends{"sqlite"};
  std::vector<std::string> workloads{"claim-cycle", "batch-100", "scheduler", "wakeup", "scale", "memory", "peer"};
  std::string postgres_url;  // a server URL; a database is created and dropped per backend
  std::string mariadb_url;   // the same for MariaDB
  std::vector<int> workers{1, 2, 4, 8};
  int jobs = 10000;
  double seconds = 3;
  bool ceiling = false;
  int rounds = 1;        // claim cycle with the ceiling: ours and the ceiling alternate this often
  int claim_rounds = 0;  // the same for the claim cycle only; 0: rounds
  std::vector<std::string> claim_filters{"none"};  // claim cycle and batch claims: ClaimFilter::kind
  bool json_output = false;
  std::vector<std::string> sqlite_synchronous{"full"};  // the claim cycle runs for each; others: the first
  std::string write_pgbench_script;
  std::vector<int> scale_jobs{10000, 100000, 1000000};
  int history = 1000000;  // final runs for the scale workload's history setting
  std::vector<int> scheduler_workers{8, 64};
  std::vector<int> local_queues{0};  // SchedulerOptions::local_queue of the scheduler workload
  int scheduler_history = 0;         // final runs seeded before the scheduler (and peer) workload
  int wakeups = 40;                  // wake-up samples per setting
  std::string jobctl;                // jobctl for the memory workload; default: next to this tool
  std::string plot;                  // SVG of the claim cycle; empty: none
  std::string json_out;              // the JSON figures also go to this file
  std::string self;                  // this executable (for child processes)
  std::string peer_dir;              // bench/ of the source tree: graphile_bench.mjs and its node_modules
  int peer_jobs = 10000;             // jobs of the peer workload, on both sides
  int peer_local_queue = 0;          // SchedulerOptions::local_queue of ours in the peer workload
  std::string node = "node";
};

// One database for the workloads of one backend.
struct Target {
  std::string backend;      // "sqlite", "postgres" or "mariadb"
  std::string synchronous;  // sqlite
  std::string url;          // for jobrepo
  std::string raw;          // sqlite: the file path; postgres: the libpq URL; mariadb: the URL
  std::string cleanup;      // postgres, mariadb: the database to drop
};

// A new database; `synchronous` is SQLite's setting (ignored by PostgreSQL).
Target make_target(const std::string& backend, const Options& o, int n, const std::string& synchronous);
void drop_target(const Target& t, const Options& o);

// Fresh state: `jobs` jobs named job-0..., no runs; every job due (an hour
// ago), or with `due_every` > 1 only every due_every-th job (the others due
// in a day). Then `history` final (completed) runs spread over the jobs.
void reset(const Target& t, int jobs, int due_every = 1, int history = 0);

// The PostgreSQL server URL `url` with its database replaced by `db`.
std::string with_database(const std::string& url, const std::string& db);

// Runs SQL on PostgreSQL (libpq); throws std::runtime_error with the message.
void pg_exec(const std::string& url, const std::string& sql);
// Runs SQL (statements separated by ';') on MariaDB; throws std::runtime_error with the message.
void mariadb_exec(const std::string& url, const std::string& sql);
// The first column of the first row of `sql` as a number, or nullopt (no row,
// NULL, or an error: no privilege to read it).
std::optional<long long> mariadb_number(const std::string& url, const std::string& sql);
// Runs SQL on the target's database directly (sqlite3, libpq or the MariaDB client).
void raw_exec(const Target& t, const std::string& sql);

// Claim/complete latencies and counts of one setting.
struct Measure {
  double seconds = 0;
  std::int64_t cycles = 0, empty = 0, errors = 0;
  std::vector<double> claim_ms, complete_ms;
  double rate() const { return seconds > 0 ? static_cast<double>(cycles) / seconds : 0; }
};

// The measures of all workers as one.
Measure merge(const std::vector<Measure>& per, double seconds);

double percentile(std::vector<double> v, double p);

inline double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

inline Steady::duration seconds_of(double s) {
  return std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(s));
}

// How the claims of run_ours choose their jobs: "none" (every due job),
// "names" (only_jobs: the names of all `jobs` jobs) or "served" (served_only;
// each worker's server first records that it serves all `jobs` jobs).
struct ClaimFilter {
  std::string kind = "none";
  int jobs = 0;
};

// Workloads. Each returns rows for the JSON (and the table).
// claim.cpp: the claim cycle (batch 1) and batch claims, with the ceiling.
Measure run_ours(const Target& t, int workers, double seconds, int batch, const ClaimFilter& filter = {});
Measure run_sqlite_ceiling(const Target& t, int workers, double seconds, const std::string& synchronous);
Measure run_pgbench(const Target& t, int workers, double seconds);
Measure run_mariadb_ceiling(const Target& t, int workers, double seconds);
std::string pgbench_script();
// scheduler.cpp
json scheduler_throughput(const Target& t, const Options& o, int worker_threads, int local_queue = 0,
                          bool with_lag = true);
json wakeup_latency(const Target& t, const Options& o, bool other_process);
int wake_child_main(const std::string& url);  // --wake-child URL
// scale.cpp
json scale_claims(const Target& t, const Options& o, int jobs, int history);
// peer.cpp: jobrepo's Scheduler against graphile-worker (bench/graphile_bench.mjs).
// peer_check throws, naming what to install, unless node and the peer's
// node_modules are there; peer_rows measures and emits a row per setting.
void peer_check(const Options& o);
void peer_rows(const Options& o, const std::function<void(const json&)>& emit);
// memory.cpp
json memory_rows(const Target& t, const Options& o);
int memory_child_main(const std::string& url, int jobs, double seconds,
                      bool load);  // --memory-child URL JOBS S idle|load

// "12,345"
std::string thousands(double value);

}  // namespace jobrepo_bench
