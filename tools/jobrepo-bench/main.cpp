// jobrepo-bench: throughput, latency, scale and memory of jobrepo, measured
// against the ceiling of the same SQL with no library around it, in the same
// run. See docs/performance.md; `jobrepo-bench --help` for the options.
#include "common.hpp"
#include "plot.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace jobrepo_bench {
namespace {

const std::vector<std::string> all_workloads{"claim-cycle", "batch-100", "scheduler", "wakeup",
                                             "scale",       "memory",    "peer"};

[[noreturn]] void usage(int status) {
  std::cout << "usage: jobrepo-bench [--backend LIST] [--postgres URL] [--mariadb URL] [--workloads LIST]\n"
               "                     [--workers 1,2,4,8] [--jobs N] [--seconds S] [--with-ceiling] [--rounds R]\n"
               "                     [--claim-rounds R]\n"
               "                     [--claim-filter none,names,served]\n"
               "                     [--sqlite-synchronous full,normal] [--scale-jobs 10000,100000,1000000]\n"
               "                     [--history N] [--scheduler-workers 8,64] [--local-queue 0,500]\n"
               "                     [--scheduler-history N] [--wakeups N]\n"
               "                     [--jobctl PATH] [--peer-jobs N] [--peer-dir DIR] [--node PATH]\n"
               "                     [--peer-local-queue N]\n"
               "                     [--json] [--json-out FILE] [--plot FILE.svg]\n"
               "                     [--plot-json FILE.json [--plot FILE.svg] [--markdown]]\n"
               "                     [--write-pgbench-script FILE]\n\n"
               "Workloads (--workloads, comma-separated; default all):\n"
               "  claim-cycle  N due jobs; W workers, each with its own Repository, loop run_jobs(limit 1) +\n"
               "               complete_run(next_run_in 0) for S seconds: cycles/s, claim/complete latency.\n"
               "               --with-ceiling also runs the same statements without jobrepo (raw sqlite3 with\n"
               "               each --sqlite-synchronous setting, pgbench -M prepared with the store's planner\n"
               "               settings, or the MariaDB client's C API with the MariaDB store's statements)\n"
               "               right after each setting; --rounds R alternates them R times (S seconds each,\n"
               "               the first of the pair changing every round), --claim-rounds R instead of\n"
               "               --rounds for this workload. ours/ceiling is the median of the rounds' ratios,\n"
               "               also printed: the lowest round's (the JSON has every round's and the pooled).\n"
               "  batch-100    the same with run_jobs(limit 100), then a completion per run: runs/s.\n"
               "               Both claim with each --claim-filter (default none): none claims any due job,\n"
               "               names passes the N job names (only_jobs), served claims the jobs the worker's\n"
               "               server recorded (served_only; each records all N before the clock starts).\n"
               "               The ceiling runs with none only.\n"
               "  scheduler    a Scheduler with N no-op jobs (each due again at once) and --scheduler-workers\n"
               "               worker threads, with each --local-queue size (SchedulerOptions::local_queue, default\n"
               "               0): runs/s, lag from due time to handler start (p50/p99), the fewest\n"
               "               completions stored in a 0.5 s window and the longest gap between two.\n"
               "               --scheduler-history N seeds N final runs first (also for the peer's ours).\n"
               "  wakeup       an idle Scheduler; another process (and a thread of the same process) makes its\n"
               "               job due: time to the handler's start, --wakeups samples.\n"
               "  scale        1 worker's claim cycle with --scale-jobs jobs, 1% due; then the smallest count\n"
               "               with --history final runs: claim latency.\n"
               "  memory       peak RSS of a Scheduler process and of `jobctl serve`, idle and under load.\n"
               "  peer         PostgreSQL only: graphile-worker (bench/graphile_bench.mjs) drains --peer-jobs\n"
               "               no-op jobs, default (1 process x concurrency 16) and batched (2 x 16, localQueue\n"
               "               500, batched completion), against the scheduler workload's runs/s with as many\n"
               "               jobs and 8 resp. 16 worker threads; --rounds R alternates ours and the peer R\n"
               "               times, each on a new database of the server: medians and ours/peer. Needs node\n"
               "               (--node) and `npm ci --prefix bench` (tools/setup does it) in --peer-dir\n"
               "               (default: the bench/ of the source tree this tool was built from). Ours runs\n"
               "               with --peer-local-queue (SchedulerOptions::local_queue, default 0).\n\n"
               "--json prints the figures as JSON instead of the table; --json-out also writes them to FILE.\n"
               "--plot writes an SVG of claim-cycle cycles/s against workers (ours and the ceiling);\n"
               "--plot-json makes it from the JSON of an earlier run (--json-out) without measuring; with\n"
               "--markdown it prints that run's tables in Markdown (docs/performance.md).\n"
               "--backend: sqlite, postgres, mariadb, a comma-separated list of them, both (sqlite,postgres)\n"
               "or all; default sqlite. PostgreSQL needs --postgres URL (a database is created and dropped\n"
               "per run) or JOBREPO_BENCH_POSTGRES_URL; MariaDB --mariadb URL or JOBREPO_BENCH_MARIADB_URL.\n"
               "./tools/bench runs the standard sweep with its own servers.\n";
  std::exit(status);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int positive_int(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 1) {
    std::cerr << "jobrepo-bench: " << option << ": \"" << text << "\" is not a positive integer\n";
    std::exit(2);
  }
  return value;
}

std::vector<int> int_list(const std::string& option, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split(text)) out.push_back(positive_int(option, item));
  if (out.empty()) {
    std::cerr << "jobrepo-bench: " << option << ": give at least one number\n";
    std::exit(2);
  }
  return out;
}

struct Parsed {
  Options options;
  std::string plot_json;
  bool markdown = false;
};

Parsed parse(int argc, char* argv[]) {
  Parsed p;
  Options& o = p.options;
  if (const char* url = std::getenv("JOBREPO_BENCH_POSTGRES_URL")) o.postgres_url = url;
  if (const char* url = std::getenv("JOBREPO_BENCH_MARIADB_URL")) o.mariadb_url = url;
  o.self = std::filesystem::canonical("/proc/self/exe").string();
  o.jobctl = (std::filesystem::path(o.self).parent_path().parent_path() / "jobctl" / "jobctl").string();
  // The peer's bench/: the source tree's this tool was built from, else ./bench.
  o.peer_dir = std::filesystem::exists(std::filesystem::path(JOBREPO_SOURCE_DIR) / "bench" / "graphile_bench.mjs")
                   ? (std::filesystem::path(JOBREPO_SOURCE_DIR) / "bench").string()
                   : "bench";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "jobrepo-bench: " << a << " needs a value\n";
        usage(2);
      }
      return argv[++i];
    };
    if (a == "--help") {
      usage(0);
    } else if (a == "--backend") {
      const auto b = value();
      o.backends = b == "both"  ? std::vector<std::string>{"sqlite", "postgres"}
                   : b == "all" ? std::vector<std::string>{"sqlite", "postgres", "mariadb"}
                                : split(b);
      for (const auto& backend : o.backends) {
        if (backend != "sqlite" && backend != "postgres" && backend != "mariadb") {
          std::cerr << "jobrepo-bench: --backend: \"" << backend
                    << "\" is not sqlite, postgres or mariadb (or both, all)\n";
          std::exit(2);
        }
      }
      if (o.backends.empty()) usage(2);
    } else if (a == "--workloads") {
      o.workloads = split(value());
      for (const auto& w : o.workloads) {
        if (std::find(all_workloads.begin(), all_workloads.end(), w) == all_workloads.end()) {
          std::cerr << "jobrepo-bench: --workloads: unknown workload \"" << w << "\"\n";
          std::exit(2);
        }
      }
    } else if (a == "--postgres") {
      o.postgres_url = value();
    } else if (a == "--mariadb") {
      o.mariadb_url = value();
    } else if (a == "--workers") {
      o.workers = int_list(a, value());
    } else if (a == "--jobs") {
      o.jobs = positive_int(a, value());
    } else if (a == "--seconds") {
      const auto text = value();
      o.seconds = std::atof(text.c_str());
      if (!(o.seconds > 0)) {
        std::cerr << "jobrepo-bench: --seconds: \"" << text << "\" is not a positive number\n";
        std::exit(2);
      }
    } else if (a == "--rounds") {
      o.rounds = positive_int(a, value());
    } else if (a == "--claim-rounds") {
      o.claim_rounds = positive_int(a, value());
    } else if (a == "--claim-filter") {
      o.claim_filters = split(value());
      for (const auto& f : o.claim_filters) {
        if (f != "none" && f != "names" && f != "served") {
          std::cerr << "jobrepo-bench: --claim-filter: \"" << f << "\" is not none, names or served\n";
          std::exit(2);
        }
      }
      if (o.claim_filters.empty()) usage(2);
    } else if (a == "--with-ceiling") {
      o.ceiling = true;
    } else if (a == "--json") {
      o.json_output = true;
    } else if (a == "--sqlite-synchronous") {
      o.sqlite_synchronous = split(value());
      for (const auto& s : o.sqlite_synchronous) {
        if (s != "full" && s != "normal") {
          std::cerr << "jobrepo-bench: --sqlite-synchronous: \"" << s << "\" is not full or normal\n";
          std::exit(2);
        }
      }
    } else if (a == "--scale-jobs") {
      o.scale_jobs = int_list(a, value());
    } else if (a == "--scheduler-history") {
      o.scheduler_history = positive_int(a, value());
    } else if (a == "--history") {
      o.history = positive_int(a, value());
    } else if (a == "--scheduler-workers") {
      o.scheduler_workers = int_list(a, value());
    } else if (a == "--peer-local-queue") {
      const auto text = value();
      o.peer_local_queue = text == "0" ? 0 : positive_int(a, text);
    } else if (a == "--local-queue") {
      o.local_queues.clear();
      for (const auto& item : split(value())) o.local_queues.push_back(item == "0" ? 0 : positive_int(a, item));
      if (o.local_queues.empty()) usage(2);
    } else if (a == "--wakeups") {
      o.wakeups = positive_int(a, value());
    } else if (a == "--peer-jobs") {
      o.peer_jobs = positive_int(a, value());
    } else if (a == "--peer-dir") {
      o.peer_dir = value();
    } else if (a == "--node") {
      o.node = value();
    } else if (a == "--jobctl") {
      o.jobctl = value();
    } else if (a == "--json-out") {
      o.json_out = value();
    } else if (a == "--plot") {
      o.plot = value();
    } else if (a == "--plot-json") {
      p.plot_json = value();
    } else if (a == "--markdown") {
      p.markdown = true;
    } else if (a == "--write-pgbench-script") {
      o.write_pgbench_script = value();
    } else {
      std::cerr << "jobrepo-bench: unknown argument " << a << "\n";
      usage(2);
    }
  }
  if (o.sqlite_synchronous.empty()) o.sqlite_synchronous = {"full"};
  return p;
}

// --- the table -------------------------------------------------------------------

struct Column {
  std::string header;
  std::string key;
  char format;  // 'n': 12,345; 'f': 0.00; 's': text
  int width;
};

const std::vector<Column>& columns_of(const std::string& workload) {
  static const std::vector<Column> claim = {{"backend", "backend", 's', 10},
                                            {"sync", "sqlite_synchronous", 's', 7},
                                            {"filter", "claim_filter", 's', 8},
                                            {"workers", "workers", 'n', 9},
                                            {"jobs", "jobs", 'n', 9},
                                            {"ours/s", "runs_per_second", 'n', 9},
                                            {"claim p50", "claim_p50_ms", 'f', 11},
                                            {"claim p99", "claim_p99_ms", 'f', 11},
                                            {"complete p50", "complete_p50_ms", 'f', 14},
                                            {"empty", "empty_claims", 'n', 8},
                                            {"errors", "errors", 'n', 8},
                                            {"ceiling/s", "ceiling_runs_per_second", 'n', 11},
                                            {"ours/ceiling", "ours_over_ceiling", 'f', 14},
                                            {"lowest round", "ours_over_ceiling_lowest_round", 'f', 13}};
  static const std::vector<Column> scheduler = {{"backend", "backend", 's', 10},
                                                {"workers", "worker_threads", 'n', 9},
                                                {"queue", "local_queue", 'n', 7},
                                                {"jobs", "jobs", 'n', 9},
                                                {"runs/s", "runs_per_second", 'n', 9},
                                                {"lag p50 ms", "lag_p50_ms", 'f', 12},
                                                {"lag p99 ms", "lag_p99_ms", 'f', 12},
                                                {"samples", "lag_samples", 'n', 9},
                                                {"claim rows", "claim_rows", 'f', 11},
                                                {"claim ms", "claim_ms", 'f', 9},
                                                {"write rows", "write_rows", 'f', 11},
                                                {"write ms", "write_ms", 'f', 9},
                                                {"fewest/0.5s", "fewest_per_half_second", 'n', 12},
                                                {"gap ms", "longest_gap_ms", 'f', 9},
                                                {"errors", "errors", 'n', 8},
                                                {"register s", "register_seconds", 'f', 10}};
  static const std::vector<Column> wakeup = {{"backend", "backend", 's', 10}, {"from", "from", 's', 64},
                                             {"samples", "samples", 'n', 9},  {"p50 ms", "p50_ms", 'f', 9},
                                             {"p99 ms", "p99_ms", 'f', 9},    {"max ms", "max_ms", 'f', 9},
                                             {"missed", "missed", 'n', 6}};
  static const std::vector<Column> scale = {{"backend", "backend", 's', 10},
                                            {"jobs", "jobs", 'n', 11},
                                            {"due", "due_jobs", 'n', 8},
                                            {"history", "history_runs", 'n', 11},
                                            {"cycles/s", "runs_per_second", 'n', 10},
                                            {"claim p50", "claim_p50_ms", 'f', 11},
                                            {"claim p99", "claim_p99_ms", 'f', 11},
                                            {"complete p50", "complete_p50_ms", 'f', 14},
                                            {"claim p50 / first", "claim_p50_over_first", 'f', 19},
                                            {"seed s", "seed_seconds", 'f', 8}};
  static const std::vector<Column> memory = {{"backend", "backend", 's', 10},
                                             {"process", "process", 's', 14},
                                             {"state", "state", 's', 7},
                                             {"jobs", "jobs", 'n', 7},
                                             {"peak RSS MiB", "peak_rss_mib", 'f', 12}};
  static const std::vector<Column> peer = {{"backend", "backend", 's', 10},
                                           {"setting", "setting", 's', 9},
                                           {"ours workers", "ours_workers", 'n', 14},
                                           {"ours queue", "ours_local_queue", 'n', 11},
                                           {"jobs", "jobs", 'n', 9},
                                           {"ours runs/s", "runs_per_second", 'n', 13},
                                           {"peer", "peer", 's', 24},
                                           {"procs x conc", "peer_shape", 's', 14},
                                           {"peer jobs/s", "peer_jobs_per_second", 'n', 13},
                                           {"peer start s", "peer_start_seconds", 'f', 14},
                                           {"ours/peer", "ours_over_peer", 'f', 11},
                                           {"errors", "errors", 'n', 8}};
  if (workload == "scheduler") return scheduler;
  if (workload == "peer") return peer;
  if (workload == "wakeup") return wakeup;
  if (workload == "scale") return scale;
  if (workload == "memory") return memory;
  return claim;
}

std::string cell(const json& row, const Column& c) {
  if (!row.contains(c.key) || row[c.key].is_null()) return "-";
  const auto& v = row[c.key];
  if (c.format == 's') return v.is_string() ? v.get<std::string>() : v.dump();
  std::ostringstream out;
  if (c.format == 'n') {
    out << thousands(v.get<double>());
  } else {
    out << std::fixed << std::setprecision(2) << v.get<double>();
  }
  return out.str();
}

void print_header(const std::string& title, const std::string& workload) {
  std::cout << "\n" << title << "\n";
  std::ostringstream line;
  for (const auto& c : columns_of(workload)) line << std::left << std::setw(c.width) << c.header;
  std::cout << line.str() << std::endl;
}

void print_row(const json& row) {
  std::ostringstream line;
  for (const auto& c : columns_of(row["workload"])) line << std::left << std::setw(c.width) << cell(row, c);
  std::cout << line.str() << std::endl;
}

const char* title_of(const std::string& workload) {
  if (workload == "claim-cycle") return "claim cycle: run_jobs(limit 1) + complete_run, ours against the ceiling";
  if (workload == "batch-100") return "batch claims: run_jobs(limit 100), then complete each";
  if (workload == "scheduler") return "scheduler throughput: no-op handlers, each job due again at once";
  if (workload == "wakeup") return "wake-up latency: an idle scheduler's job made due elsewhere -> handler start";
  if (workload == "scale") return "scale: 1 worker's claim cycle, 1% of the jobs due, with and without history";
  if (workload == "memory") return "memory: peak resident set (VmHWM)";
  return "peer: jobrepo's Scheduler against graphile-worker, no-op jobs (median of the rounds)";
}

// The figures of a JSON as Markdown tables, a table per workload (for
// docs/performance.md).
void print_markdown(const json& results) {
  for (const auto& workload : all_workloads) {
    bool any = false;
    for (const auto& row : results) any = any || row["workload"] == workload;
    if (!any) continue;
    std::cout << "\n**" << title_of(workload) << "**\n\n|";
    std::string rule = "|";
    for (const auto& c : columns_of(workload)) {
      std::cout << " " << c.header << " |";
      rule += "---|";
    }
    std::cout << "\n" << rule << "\n";
    for (const auto& row : results) {
      if (row["workload"] != workload) continue;
      std::cout << "|";
      for (const auto& c : columns_of(workload)) std::cout << " " << cell(row, c) << " |";
      std::cout << "\n";
    }
  }
}

// --- the plot ------------------------------------------------------------------------

void write_plot(const json& results, const std::string& path) {
  Plot plot{"claim cycle: cycles/s against workers", "workers", "cycles/s", true, {}};
  const std::vector<std::pair<std::string, std::uint32_t>> colours{
      {"sqlite", 0x1f77b4}, {"postgres", 0xd62728}, {"mariadb", 0x2ca02c}};
  for (const auto& [backend, rgb] : colours) {
    Series ours{backend + " (jobrepo)", rgb, false, {}};
    Series ceiling{backend + " ceiling", rgb, true, {}};
    std::string sync;
    for (const auto& row : results) {
      if (row["workload"] != "claim-cycle" || row["backend"] != backend) continue;
      // Unfiltered claims only (a JSON older than --claim-filter has none).
      if (row.contains("claim_filter") && row["claim_filter"] != "none") continue;
      // SQLite: the first synchronous setting of the run only.
      const std::string s = row["sqlite_synchronous"].is_string() ? row["sqlite_synchronous"].get<std::string>() : "";
      if (sync.empty()) sync = s;
      if (s != sync) continue;
      const double w = row["workers"].get<double>();
      ours.points.emplace_back(w, row["runs_per_second"].get<double>());
      if (row["ceiling_runs_per_second"].is_number()) {
        ceiling.points.emplace_back(w, row["ceiling_runs_per_second"].get<double>());
      }
    }
    if (!sync.empty()) {
      ours.label += " synchronous=" + sync;
      ceiling.label = backend + " raw sqlite3 ceiling";
    } else {
      ceiling.label = backend + (backend == "mariadb" ? " raw C API ceiling" : " pgbench ceiling");
    }
    if (!ours.points.empty()) plot.series.push_back(ours);
    if (!ceiling.points.empty()) plot.series.push_back(ceiling);
  }
  write_svg(plot, path);
}

// --- the run ----------------------------------------------------------------------------

bool wanted(const Options& o, const std::string& workload) {
  return std::find(o.workloads.begin(), o.workloads.end(), workload) != o.workloads.end();
}

// How often the claim cycle alternates ours and the ceiling.
int claim_rounds(const Options& o) { return o.claim_rounds > 0 ? o.claim_rounds : o.rounds; }

// The rounds of one setting as one measure (their time and cycles added).
Measure merge_rounds(const std::vector<Measure>& rounds) {
  double seconds = 0;
  for (const auto& m : rounds) seconds += m.seconds;
  return merge(rounds, seconds);
}

// ours/ceiling of each round, from rounds that ran side by side.
std::vector<double> round_ratios(const std::vector<Measure>& ours, const std::vector<Measure>& ceiling) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < ours.size() && i < ceiling.size(); ++i) {
    if (ceiling[i].rate() > 0) ratios.push_back(ours[i].rate() / ceiling[i].rate());
  }
  return ratios;
}

// The ratio is the median of the rounds' ratios: each round's pair ran
// back to back, so a slow stretch of the machine (a neighbour's burst, a
// checkpoint) moves one pair, not the figure. The ratio of the totals is
// kept as ours_over_ceiling_pooled.
json claim_row(const std::string& workload, const Target& t, const Options& o, const std::string& filter, int workers,
               const std::vector<Measure>& our_rounds, const std::vector<Measure>& ceiling_rounds) {
  const Measure ours = merge_rounds(our_rounds);
  const bool with_ceiling = !ceiling_rounds.empty();
  const Measure all_ceiling = with_ceiling ? merge_rounds(ceiling_rounds) : Measure{};
  const Measure* ceiling = with_ceiling ? &all_ceiling : nullptr;
  const auto ratios = round_ratios(our_rounds, ceiling_rounds);
  const double ratio = ratios.empty() ? 0 : percentile(ratios, 0.5);
  const double pooled = ceiling && ceiling->rate() > 0 ? ours.rate() / ceiling->rate() : 0;
  return json{{"workload", workload},
              {"backend", t.backend},
              {"claim_filter", filter},
              {"workers", workers},
              {"jobs", o.jobs},
              {"seconds", ours.seconds},
              {"rounds", ceiling ? claim_rounds(o) : 1},
              {"sqlite_synchronous", t.backend == "sqlite" ? json(t.synchronous) : json(nullptr)},
              {"runs_per_second", ours.rate()},
              {"claim_p50_ms", percentile(ours.claim_ms, 0.5)},
              {"claim_p99_ms", percentile(ours.claim_ms, 0.99)},
              {"complete_p50_ms", percentile(ours.complete_ms, 0.5)},
              {"complete_p99_ms", percentile(ours.complete_ms, 0.99)},
              {"empty_claims", ours.empty},
              {"errors", ours.errors},
              {"ceiling_runs_per_second", ceiling ? json(ceiling->rate()) : json(nullptr)},
              {"ceiling_empty_claims", ceiling ? json(ceiling->empty) : json(nullptr)},
              {"ours_over_ceiling", ceiling ? json(ratio) : json(nullptr)},
              {"ours_over_ceiling_lowest_round",
               ratios.empty() ? json(nullptr) : json(*std::min_element(ratios.begin(), ratios.end()))},
              {"ours_over_ceiling_pooled", ceiling ? json(pooled) : json(nullptr)},
              {"ours_over_ceiling_rounds", ratios}};
}

// One line per setting of the peer workload, for the end of a sweep's output.
void print_ratios(const json& results) {
  for (const auto& row : results) {
    if (row["workload"] != "peer" || !row["ours_over_peer"].is_number()) continue;
    const int rounds = row["rounds"].get<int>();
    std::cout << "ours/peer, " << row["setting"].get<std::string>() << ": " << cell(row, {"", "ours_over_peer", 'f', 0})
              << " (jobrepo Scheduler, " << row["ours_workers"]
              << " worker threads: " << cell(row, {"", "runs_per_second", 'n', 0}) << " runs/s; "
              << row["peer"].get<std::string>() << ", " << row["peer_shape"].get<std::string>() << ": "
              << cell(row, {"", "peer_jobs_per_second", 'n', 0}) << " jobs/s; median of " << rounds
              << (rounds == 1 ? " round)\n" : " rounds)\n");
  }
}

int run(const Options& o) {
  // The peer needs node and its node_modules: say so before measuring anything.
  if (wanted(o, "peer") && std::find(o.backends.begin(), o.backends.end(), "postgres") != o.backends.end()) {
    peer_check(o);
  }
  json results = json::array();
  const auto emit = [&](const json& row) {
    results.push_back(row);
    if (!o.json_output) print_row(row);
  };
  int n = 0;
  for (const auto& workload : all_workloads) {
    if (!wanted(o, workload)) continue;
    if (!o.json_output) print_header(title_of(workload), workload);
    for (const auto& backend : o.backends) {
      if (workload == "peer") {
        // Not through make_target: each round makes its own databases.
        if (backend != "postgres") {
          (o.json_output ? std::cerr : std::cout) << "(peer: PostgreSQL only, skipped on " << backend << ")\n";
          continue;
        }
        peer_rows(o, emit);
        continue;
      }
      if (o.json_output) std::cerr << "jobrepo-bench: " << workload << " on " << backend << "\n";
      // The claim cycle on SQLite runs for every synchronous setting given.
      const auto syncs = workload == "claim-cycle" && backend == "sqlite"
                             ? o.sqlite_synchronous
                             : std::vector<std::string>{o.sqlite_synchronous.front()};
      for (const auto& sync : syncs) {
        const Target t = make_target(backend, o, ++n, sync);
        try {
          if (workload == "claim-cycle" || workload == "batch-100") {
            const int batch = workload == "claim-cycle" ? 1 : 100;
            for (const auto& filter : o.claim_filters) {
              for (const int workers : o.workers) {
                // With the ceiling, ours and the ceiling alternate for
                // --rounds rounds of --seconds each, so that the machine's
                // drift hits both alike, the one that goes first changing
                // every round (the one that follows finds the disk and the
                // server busier). The throughput figures are over all
                // rounds; the ratio is the median of the rounds' (claim_row).
                // The ceiling's statements claim any due job: it runs
                // against the unfiltered claim only.
                const bool with_ceiling = o.ceiling && batch == 1 && filter == "none";
                std::vector<Measure> ours, ceiling;
                const auto our_round = [&] {
                  reset(t, o.jobs);
                  ours.push_back(run_ours(t, workers, o.seconds, batch, {filter, o.jobs}));
                };
                const auto ceiling_round = [&] {
                  reset(t, o.jobs);
                  ceiling.push_back(backend == "sqlite"    ? run_sqlite_ceiling(t, workers, o.seconds, sync)
                                    : backend == "mariadb" ? run_mariadb_ceiling(t, workers, o.seconds)
                                                           : run_pgbench(t, workers, o.seconds));
                };
                for (int round = 0; round < (with_ceiling ? claim_rounds(o) : 1); ++round) {
                  if (!with_ceiling) {
                    our_round();
                  } else if (round % 2 == 0) {
                    our_round();
                    ceiling_round();
                  } else {
                    ceiling_round();
                    our_round();
                  }
                }
                emit(claim_row(workload, t, o, filter, workers, ours, ceiling));
              }
            }
          } else if (workload == "scheduler") {
            for (const int workers : o.scheduler_workers) {
              for (const int queue : o.local_queues) {
                json row = scheduler_throughput(t, o, workers, queue);
                // Flat copies for the table.
                row["claim_rows"] = row["claims"]["rows_per_call"];
                row["claim_ms"] = row["claims"]["ms_per_call"];
                row["write_rows"] = row["writes"]["rows_per_call"];
                row["write_ms"] = row["writes"]["ms_per_call"];
                emit(row);
              }
            }
          } else if (workload == "wakeup") {
            emit(wakeup_latency(t, o, true));
            emit(wakeup_latency(t, o, false));
          } else if (workload == "scale") {
            double first = 0;
            const auto add = [&](json row) {
              const double p50 = row["claim_p50_ms"].get<double>();
              if (first == 0) first = p50;
              row["claim_p50_over_first"] = first > 0 ? p50 / first : 0;
              emit(row);
            };
            for (const int jobs : o.scale_jobs) add(scale_claims(t, o, jobs, 0));
            add(scale_claims(t, o, o.scale_jobs.front(), o.history));
          } else if (workload == "memory") {
            for (const auto& row : memory_rows(t, o)) emit(row);
          }
        } catch (...) {
          drop_target(t, o);
          throw;
        }
        drop_target(t, o);
      }
    }
  }
  if (o.json_output) {
    std::cout << results.dump(2) << "\n";
  } else {
    print_ratios(results);
  }
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    out << results.dump(2) << "\n";
    if (!out) throw std::runtime_error("--json-out: cannot write " + o.json_out);
  }
  if (!o.plot.empty()) {
    write_plot(results, o.plot);
    std::cerr << "jobrepo-bench: wrote " << o.plot << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace jobrepo_bench

int main(int argc, char* argv[]) try {
  using namespace jobrepo_bench;
  // Child processes of the wake-up and memory workloads.
  if (argc >= 3 && std::string(argv[1]) == "--wake-child") return wake_child_main(argv[2]);
  if (argc >= 6 && std::string(argv[1]) == "--memory-child") {
    return memory_child_main(argv[2], std::stoi(argv[3]), std::stod(argv[4]), std::string(argv[5]) == "load");
  }
  const Parsed parsed = parse(argc, argv);
  const Options& o = parsed.options;
  if (!o.write_pgbench_script.empty()) {
    std::ofstream(o.write_pgbench_script) << pgbench_script();
    return 0;
  }
  if (!parsed.plot_json.empty()) {
    if (o.plot.empty() && !parsed.markdown) {
      std::cerr << "jobrepo-bench: --plot-json needs --plot FILE.svg or --markdown\n";
      return 2;
    }
    std::ifstream in(parsed.plot_json);
    if (!in) throw std::runtime_error("--plot-json: cannot read " + parsed.plot_json);
    const json results = json::parse(in);
    if (parsed.markdown) print_markdown(results);
    if (!o.plot.empty()) {
      write_plot(results, o.plot);
      std::cerr << "jobrepo-bench: wrote " << o.plot << "\n";
    }
    return 0;
  }
  return run(o);
} catch (const std::exception& e) {
  std::cerr << "jobrepo-bench: " << e.what() << "\n";
  return 1;
}
