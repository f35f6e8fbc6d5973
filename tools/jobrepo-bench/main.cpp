// jobrepo-bench: throughput and latency of the claim cycle, measured against
// the ceiling of the same SQL with no library around it, in the same run.
// See docs/performance.md; `jobrepo-bench --help` for the options.
#include "queries.hpp"

#include <jobrepo/jobrepo.hpp>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::vector<std::string> backends{"sqlite"};
  std::string postgres_url;  // a server URL; a database is created and dropped
  std::vector<int> workers{1, 2, 4, 8};
  int jobs = 10000;
  double seconds = 3;
  bool ceiling = false;
  bool json_output = false;
  std::string sqlite_synchronous = "full";
  std::string write_pgbench_script;
};

[[noreturn]] void usage(int status) {
  std::cout << "usage: jobrepo-bench [--backend sqlite|postgres|both] [--postgres URL] [--workers 1,2,4,8]\n"
               "                     [--jobs N] [--seconds S] [--with-ceiling] [--sqlite-synchronous full|normal]\n"
               "                     [--json] [--write-pgbench-script FILE]\n\n"
               "Claim cycle: N due jobs; W workers, each with its own Repository, loop run_jobs(limit 1) +\n"
               "complete_run(next_run_in 0) for S seconds. Batch: run_jobs(limit 100), then complete each.\n"
               "--with-ceiling also runs the same statements without jobrepo (raw sqlite3, or pgbench -M prepared)\n"
               "right after each setting and prints ours/ceiling. PostgreSQL needs --postgres URL or\n"
               "JOBREPO_BENCH_POSTGRES_URL.\n";
  std::exit(status);
}

std::vector<int> int_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

Options parse(int argc, char* argv[]) {
  Options o;
  if (const char* url = std::getenv("JOBREPO_BENCH_POSTGRES_URL")) o.postgres_url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "--help")
      usage(0);
    else if (a == "--backend") {
      const auto b = value();
      o.backends = b == "both" ? std::vector<std::string>{"sqlite", "postgres"} : std::vector<std::string>{b};
    } else if (a == "--postgres")
      o.postgres_url = value();
    else if (a == "--workers")
      o.workers = int_list(value());
    else if (a == "--jobs")
      o.jobs = std::stoi(value());
    else if (a == "--seconds")
      o.seconds = std::stod(value());
    else if (a == "--with-ceiling")
      o.ceiling = true;
    else if (a == "--json")
      o.json_output = true;
    else if (a == "--sqlite-synchronous")
      o.sqlite_synchronous = value();
    else if (a == "--write-pgbench-script")
      o.write_pgbench_script = value();
    else {
      std::cerr << "jobrepo-bench: unknown argument " << a << "\n";
      usage(2);
    }
  }
  return o;
}

// --- helpers -------------------------------------------------------------------

void pg_exec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  const std::string message = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql.substr(0, 60) + ": " + message);
}

std::string with_database(const std::string& url, const std::string& db) {
  const auto slash = url.find('/', url.find("://") + 3);
  return url.substr(0, slash) + "/" + db;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// The pgbench script of the claim cycle: the store's own two statements with
// the values a worker binds (clock offset 0, plugin pi_system, limit 1).
std::string pgbench_script() {
  namespace q = jobrepo::postgres_backend::queries;
  std::string claim = q::claim_runs;
  const std::vector<std::pair<std::string, std::string>> claim_values = {
      {":clock", "0"}, {":plugin2", "'pi_system'"}, {":plugin", "'pi_system'"}, {":filtered", "0"}, {":names", "'[]'"},
      {":limit", "1"}, {":server", "'pgbench'"}};
  for (const auto& [name, value] : claim_values) claim = std::regex_replace(claim, std::regex(name + "\\b"), value);
  // pgbench's \gset needs exactly one row, and a claim that lost a race returns
  // none: the script keeps every CTE of the claim but returns one row, the run
  // id or 'none' (whose completion then changes nothing, as ours skips it).
  claim = claim.substr(0, claim.find(" SELECT ins.private_id")) +
          " SELECT coalesce(max(ins.private_id), 'none') AS private_id FROM ins";
  std::string complete = q::update_run_and_reschedule;
  const std::vector<std::pair<std::string, std::string>> complete_values = {
      {":clock", "0"}, {":id", ":private_id"}, {":plugin", "'pi_system'"}, {":status", "'completed'"},
      {":final", "1"}, {":completed", "NULL"}, {":total", "NULL"},         {":delta", "0"}};
  for (const auto& [name, value] : complete_values) {
    complete = std::regex_replace(complete, std::regex(name + "\\b"), value);
  }
  return "-- Generated by jobrepo-bench --write-pgbench-script from backends/postgres/src/queries.hpp:\n"
         "-- the claim and the completion as the store sends them (the claim's last SELECT returns one row).\n" +
         claim + " \\gset\n" + complete + ";\n";
}

// --- the databases -------------------------------------------------------------

struct Target {
  std::string backend;
  std::string url;      // for jobrepo
  std::string raw;      // sqlite: the file path; postgres: the libpq URL
  std::string cleanup;  // postgres: the database to drop
};

Target make_target(const std::string& backend, const Options& o, int n) {
  Target t{backend, "", "", ""};
  if (backend == "sqlite") {
    t.raw = (std::filesystem::temp_directory_path() /
             ("jobrepo-bench-" + std::to_string(getpid()) + "-" + std::to_string(n) + ".db"))
                .string();
    t.url = "sqlite:" + t.raw + "?synchronous=" + o.sqlite_synchronous;
  } else {
    if (o.postgres_url.empty()) throw std::runtime_error("postgres: give --postgres URL or JOBREPO_BENCH_POSTGRES_URL");
    t.cleanup = "jobrepo_bench_" + std::to_string(getpid()) + "_" + std::to_string(n);
    pg_exec(o.postgres_url, "CREATE DATABASE " + t.cleanup);
    t.raw = with_database(o.postgres_url, t.cleanup);
    t.url = t.raw;
  }
  auto store = jobrepo::open_store(t.url);
  store->migrate();
  return t;
}

void drop_target(const Target& t, const Options& o) {
  if (t.backend == "sqlite") {
    for (const auto* suffix : {"", "-wal", "-shm"}) std::remove((t.raw + suffix).c_str());
  } else {
    pg_exec(o.postgres_url, "DROP DATABASE IF EXISTS " + t.cleanup + " WITH (FORCE)");
  }
}

// Fresh state for a measurement: N jobs, all due, no runs.
void reset(const Target& t, int jobs) {
  if (t.backend == "sqlite") {
    sqlite3* db = nullptr;
    sqlite3_open(t.raw.c_str(), &db);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "BEGIN IMMEDIATE; DELETE FROM job_run; DELETE FROM job;", nullptr, nullptr, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO job VALUES ('pi_system', ?, 'bench job', 0)", -1, &st, nullptr);
    for (int i = 0; i < jobs; ++i) {
      const std::string name = "job-" + std::to_string(i);
      sqlite3_bind_text(st, 1, name.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  } else {
    pg_exec(t.raw,
            "TRUNCATE job_run, job; INSERT INTO job SELECT 'pi_system', 'job-' || g, 'bench job',"
            " now() - interval '1 hour' FROM generate_series(0, " +
                std::to_string(jobs - 1) + ") g");
    pg_exec(t.raw, "VACUUM ANALYZE job");
    pg_exec(t.raw, "VACUUM ANALYZE job_run");
  }
}

// --- ours ----------------------------------------------------------------------

struct Measure {
  double seconds = 0;
  std::int64_t cycles = 0, empty = 0, errors = 0;
  std::vector<double> claim_ms, complete_ms;
  double rate() const { return seconds > 0 ? static_cast<double>(cycles) / seconds : 0; }
};

// The measures of all workers as one.
Measure merge(const std::vector<Measure>& per, double seconds) {
  Measure all;
  all.seconds = seconds;
  for (const auto& m : per) {
    all.cycles += m.cycles;
    all.empty += m.empty;
    all.errors += m.errors;
    all.claim_ms.insert(all.claim_ms.end(), m.claim_ms.begin(), m.claim_ms.end());
    all.complete_ms.insert(all.complete_ms.end(), m.complete_ms.begin(), m.complete_ms.end());
  }
  return all;
}

Measure run_ours(const Target& t, int workers, double seconds, int batch) {
  auto store = jobrepo::open_store(t.url, {workers, std::chrono::milliseconds(10000)});
  std::vector<Measure> per(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  const auto start = Steady::now() + 100ms;
  const auto end = start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      auto& m = per[static_cast<std::size_t>(w)];
      jobrepo::Repository repo(*store);
      const std::string server = "bench-" + std::to_string(w);
      std::this_thread::sleep_until(start);
      while (Steady::now() < end) {
        try {
          const auto t0 = Steady::now();
          const auto runs = repo.run_jobs(server, {.limit = batch});
          const auto t1 = Steady::now();
          m.claim_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          if (runs.empty()) {
            ++m.empty;
            continue;
          }
          for (const auto& run : runs) {
            const auto c0 = Steady::now();
            repo.complete_run(run.private_id, std::chrono::microseconds(0));
            m.complete_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - c0).count());
            ++m.cycles;
          }
        } catch (const jobrepo::Error& e) {
          if (++m.errors == 1) std::cerr << "jobrepo-bench: " << e.what() << "\n";
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return merge(per, seconds);
}

// --- the ceilings ------------------------------------------------------------------

// The SQLite store's claim and completion transactions, with the sqlite3 C
// API and statements prepared once per connection.
Measure run_sqlite_ceiling(const Target& t, int workers, double seconds, const std::string& synchronous) {
  std::vector<Measure> per(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  const auto start = Steady::now() + 100ms;
  const auto end = start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      auto& m = per[static_cast<std::size_t>(w)];
      sqlite3* db = nullptr;
      sqlite3_open(t.raw.c_str(), &db);
      sqlite3_busy_timeout(db, 10000);
      sqlite3_exec(db, ("PRAGMA foreign_keys = ON; PRAGMA synchronous = " + synchronous + ";").c_str(), nullptr,
                   nullptr, nullptr);
      const auto prep = [&](const char* sql) {
        sqlite3_stmt* s = nullptr;
        sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
        return s;
      };
      sqlite3_stmt* begin = prep("BEGIN IMMEDIATE");
      sqlite3_stmt* commit = prep("COMMIT");
      sqlite3_stmt* now = prep(
          "SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + CAST(substr(strftime('%f', 'now'), 4) AS "
          "INTEGER) * 1000");
      sqlite3_stmt* due = prep(
          "SELECT name FROM job WHERE plugin_id = 'pi_system' AND next_scheduled_run <= ?1 AND NOT EXISTS (SELECT 1 "
          "FROM job_run r WHERE r.job_plugin_id = job.plugin_id AND r.job_name = job.name AND r.status = 'running') "
          "ORDER BY next_scheduled_run, name LIMIT 1");
      sqlite3_stmt* insert = prep(
          "INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time, "
          "completed_count, total_count, status) VALUES (?1, 'pi_system', ?2, ?3, ?4, ?4, 0, 0, 'running')");
      sqlite3_stmt* finish = prep(
          "UPDATE job_run SET status = 'completed', update_time = ?1, end_time = ?1 WHERE private_id = ?2 AND "
          "job_plugin_id = 'pi_system' AND status = 'running' RETURNING job_name");
      sqlite3_stmt* reschedule =
          prep("UPDATE job SET next_scheduled_run = ?1 WHERE plugin_id = 'pi_system' AND name = ?2");
      const std::string server = "raw-" + std::to_string(w);
      const auto step = [](sqlite3_stmt* s) {
        const int rc = sqlite3_step(s);
        sqlite3_reset(s);
        return rc;
      };
      const auto read_now = [&] {
        sqlite3_step(now);
        const auto v = sqlite3_column_int64(now, 0);
        sqlite3_reset(now);
        return v;
      };
      std::this_thread::sleep_until(start);
      while (Steady::now() < end) {
        const auto t0 = Steady::now();
        if (step(begin) != SQLITE_DONE) {
          ++m.errors;
          continue;
        }
        const auto n = read_now();
        sqlite3_bind_int64(due, 1, n);
        std::string name, id;
        if (sqlite3_step(due) == SQLITE_ROW) name = reinterpret_cast<const char*>(sqlite3_column_text(due, 0));
        sqlite3_reset(due);
        if (!name.empty()) {
          id = jobrepo::generate_run_id();
          sqlite3_bind_text(insert, 1, id.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(insert, 2, name.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(insert, 3, server.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_int64(insert, 4, n);
          step(insert);
        }
        step(commit);
        m.claim_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
        if (name.empty()) {
          ++m.empty;
          continue;
        }
        const auto c0 = Steady::now();
        step(begin);
        const auto n2 = read_now();
        sqlite3_bind_int64(finish, 1, n2);
        sqlite3_bind_text(finish, 2, id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_step(finish);
        sqlite3_reset(finish);
        sqlite3_bind_int64(reschedule, 1, n2);
        sqlite3_bind_text(reschedule, 2, name.c_str(), -1, SQLITE_TRANSIENT);
        step(reschedule);
        step(commit);
        m.complete_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - c0).count());
        ++m.cycles;
      }
      for (auto* s : {begin, commit, now, due, insert, finish, reschedule}) sqlite3_finalize(s);
      sqlite3_close(db);
    });
  }
  for (auto& th : threads) th.join();
  return merge(per, seconds);
}

// pgbench -M prepared over the store's own claim and completion statements.
Measure run_pgbench(const Target& t, int workers, double seconds) {
  const std::string script =
      (std::filesystem::temp_directory_path() / ("jobrepo-bench-" + std::to_string(getpid()) + ".sql")).string();
  std::ofstream(script) << pgbench_script();
  const std::string output = script + ".out";
  const std::string command = "pgbench -n -M prepared -c " + std::to_string(workers) + " -j " +
                              std::to_string(workers) + " -T " +
                              std::to_string(std::max(1, static_cast<int>(seconds + 0.5))) + " -f '" + script + "' '" +
                              t.raw + "' > '" + output + "' 2>&1";
  const int rc = std::system(command.c_str());
  std::ifstream in(output);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(script.c_str());
  std::remove(output.c_str());
  Measure m;
  m.seconds = std::max(1.0, static_cast<double>(static_cast<int>(seconds + 0.5)));
  std::smatch match;
  const std::string s = text.str();
  if (rc != 0 || !std::regex_search(s, match, std::regex(R"(number of transactions actually processed: (\d+))"))) {
    std::cerr << "jobrepo-bench: pgbench failed:\n" << s << "\n";
    m.errors = 1;
    return m;
  }
  m.cycles = std::stoll(match[1]);
  if (std::regex_search(s, match, std::regex(R"(latency average = ([\d.]+) ms)"))) {
    m.claim_ms.push_back(std::stod(match[1]));  // per cycle: claim + complete
  }
  return m;
}

}  // namespace

int main(int argc, char* argv[]) try {
  const Options o = parse(argc, argv);
  if (!o.write_pgbench_script.empty()) {
    std::ofstream(o.write_pgbench_script) << pgbench_script();
    return 0;
  }
  json results = json::array();
  int n = 0;
  if (!o.json_output) {
    std::cout << std::left << std::setw(12) << "workload" << std::setw(10) << "backend" << std::setw(9) << "workers"
              << std::setw(9) << "jobs" << std::setw(12) << "ours/s" << std::setw(11) << "claim p50" << std::setw(11)
              << "claim p99" << std::setw(13) << "complete p50" << std::setw(8) << "empty" << std::setw(8) << "errors"
              << std::setw(12) << "ceiling/s"
              << "ours/ceiling\n";
  }
  for (const auto& backend : o.backends) {
    const Target t = make_target(backend, o, ++n);
    for (const auto& [workload, batch] :
         std::vector<std::pair<std::string, int>>{{"claim-cycle", 1}, {"batch-100", 100}}) {
      for (const int workers : o.workers) {
        reset(t, o.jobs);
        const Measure ours = run_ours(t, workers, o.seconds, batch);
        Measure ceiling;
        const bool with_ceiling = o.ceiling && batch == 1;
        if (with_ceiling) {
          reset(t, o.jobs);
          ceiling = backend == "sqlite" ? run_sqlite_ceiling(t, workers, o.seconds, o.sqlite_synchronous)
                                        : run_pgbench(t, workers, o.seconds);
        }
        const double ratio = with_ceiling && ceiling.rate() > 0 ? ours.rate() / ceiling.rate() : 0;
        json row = {{"workload", workload},
                    {"backend", backend},
                    {"workers", workers},
                    {"jobs", o.jobs},
                    {"seconds", o.seconds},
                    {"sqlite_synchronous", backend == "sqlite" ? json(o.sqlite_synchronous) : json(nullptr)},
                    {"runs_per_second", ours.rate()},
                    {"claim_p50_ms", percentile(ours.claim_ms, 0.5)},
                    {"claim_p99_ms", percentile(ours.claim_ms, 0.99)},
                    {"complete_p50_ms", percentile(ours.complete_ms, 0.5)},
                    {"complete_p99_ms", percentile(ours.complete_ms, 0.99)},
                    {"empty_claims", ours.empty},
                    {"errors", ours.errors},
                    {"ceiling_runs_per_second", with_ceiling ? json(ceiling.rate()) : json(nullptr)},
                    {"ours_over_ceiling", with_ceiling ? json(ratio) : json(nullptr)}};
        results.push_back(row);
        if (!o.json_output) {
          std::ostringstream line;
          line << std::fixed << std::setprecision(2) << std::left << std::setw(12) << workload << std::setw(10)
               << backend << std::setw(9) << workers << std::setw(9) << o.jobs << std::setw(12) << std::setprecision(0)
               << ours.rate() << std::setprecision(2) << std::setw(11) << percentile(ours.claim_ms, 0.5)
               << std::setw(11) << percentile(ours.claim_ms, 0.99) << std::setw(13) << percentile(ours.complete_ms, 0.5)
               << std::setw(8) << ours.empty << std::setw(8) << ours.errors;
          if (with_ceiling) {
            line << std::setw(12) << std::setprecision(0) << ceiling.rate() << std::setprecision(2) << ratio;
          } else {
            line << std::setw(12) << "-"
                 << "-";
          }
          std::cout << line.str() << std::endl;
        }
      }
    }
    drop_target(t, o);
  }
  if (o.json_output) std::cout << results.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "jobrepo-bench: " << e.what() << "\n";
  return 1;
}
