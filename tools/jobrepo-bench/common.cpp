#include "common.hpp"

#include <jobrepo/jobrepo.hpp>

#include "mariadb/src/url.hpp"

#include <libpq-fe.h>
#include <mysql.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace jobrepo_bench {

void pg_exec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  const std::string message = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql.substr(0, 60) + ": " + message);
}

namespace {

// A connection to `url` (multi-statement), or the reason there is none.
MYSQL* open_mariadb(const std::string& url, std::string& error) {
  const auto read = jobrepo::mariadb_backend::read_url(url);
  if (!read.problem.empty()) throw std::runtime_error("mariadb: " + read.shown + ": " + read.problem);
  const auto& o = read.options;
  MYSQL* c = mysql_init(nullptr);
  if (mysql_real_connect(c, o.socket.empty() ? o.host.c_str() : nullptr, o.user.c_str(),
                         o.password ? o.password->c_str() : nullptr, o.database.empty() ? nullptr : o.database.c_str(),
                         o.port, o.socket.empty() ? nullptr : o.socket.c_str(), CLIENT_MULTI_STATEMENTS) == nullptr) {
    error = mysql_error(c);
  }
  return c;
}

}  // namespace

void mariadb_exec(const std::string& url, const std::string& sql) {
  std::string error;
  MYSQL* c = open_mariadb(url, error);
  if (error.empty() && mysql_query(c, sql.c_str()) != 0) {
    error = mysql_error(c);
  } else if (error.empty()) {
    do {
      if (MYSQL_RES* result = mysql_store_result(c)) mysql_free_result(result);
    } while (mysql_next_result(c) == 0);
    if (mysql_errno(c) != 0) error = mysql_error(c);
  }
  mysql_close(c);
  if (!error.empty()) throw std::runtime_error(sql.substr(0, 60) + ": " + error);
}

std::optional<long long> mariadb_number(const std::string& url, const std::string& sql) {
  std::string error;
  MYSQL* c = open_mariadb(url, error);
  std::optional<long long> value;
  if (error.empty() && mysql_query(c, sql.c_str()) == 0) {
    if (MYSQL_RES* result = mysql_store_result(c)) {
      if (MYSQL_ROW row = mysql_fetch_row(result); row != nullptr && row[0] != nullptr) value = std::atoll(row[0]);
      mysql_free_result(result);
    }
  }
  mysql_close(c);
  return value;
}

std::string with_database(const std::string& url, const std::string& db) {
  const auto slash = url.find('/', url.find("://") + 3);
  return url.substr(0, slash) + "/" + db;
}

namespace {

void sqlite_exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("sqlite: " + sql.substr(0, 60) + ": " + message);
  }
}

}  // namespace

void raw_exec(const Target& t, const std::string& sql) {
  if (t.backend == "mariadb") {
    mariadb_exec(t.raw, sql);
    return;
  }
  if (t.backend != "sqlite") {
    pg_exec(t.raw, sql);
    return;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(t.raw.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite: cannot open " + t.raw);
  sqlite3_busy_timeout(db, 10000);
  try {
    sqlite_exec(db, sql);
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
}

Target make_target(const std::string& backend, const Options& o, int n, const std::string& synchronous) {
  Target t{backend, synchronous, "", "", ""};
  if (backend == "sqlite") {
    t.raw = (std::filesystem::temp_directory_path() /
             ("jobrepo-bench-" + std::to_string(getpid()) + "-" + std::to_string(n) + ".db"))
                .string();
    t.url = "sqlite:" + t.raw + "?synchronous=" + synchronous;
  } else if (backend == "postgres") {
    if (o.postgres_url.empty()) throw std::runtime_error("postgres: give --postgres URL or JOBREPO_BENCH_POSTGRES_URL");
    t.cleanup = "jobrepo_bench_" + std::to_string(getpid()) + "_" + std::to_string(n);
    pg_exec(o.postgres_url, "CREATE DATABASE " + t.cleanup);
    t.raw = with_database(o.postgres_url, t.cleanup);
    t.url = t.raw;
  } else if (backend == "mariadb") {
    if (o.mariadb_url.empty()) throw std::runtime_error("mariadb: give --mariadb URL or JOBREPO_BENCH_MARIADB_URL");
    t.cleanup = "jobrepo_bench_" + std::to_string(getpid()) + "_" + std::to_string(n);
    mariadb_exec(o.mariadb_url, "CREATE DATABASE " + t.cleanup + " CHARACTER SET utf8mb4");
    t.raw = with_database(o.mariadb_url, t.cleanup);
    t.url = t.raw;
  } else {
    throw std::runtime_error("unknown backend \"" + backend + "\" (sqlite, postgres or mariadb)");
  }
  auto store = jobrepo::open_store(t.url);
  store->migrate();
  return t;
}

void drop_target(const Target& t, const Options& o) {
  if (t.backend == "sqlite") {
    for (const auto* suffix : {"", "-wal", "-shm"}) std::remove((t.raw + suffix).c_str());
  } else if (t.backend == "mariadb") {
    mariadb_exec(o.mariadb_url, "DROP DATABASE IF EXISTS " + t.cleanup);
  } else {
    pg_exec(o.postgres_url, "DROP DATABASE IF EXISTS " + t.cleanup + " WITH (FORCE)");
  }
}

// Seeding is plain SQL on the tables (the same columns the stores write),
// one statement per table, so that a million rows take seconds.
void reset(const Target& t, int jobs, int due_every, int history) {
  const auto now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string n = std::to_string(jobs);
  const std::string every = std::to_string(std::max(1, due_every));
  const std::string h = std::to_string(history);
  if (t.backend == "sqlite") {
    const std::string past = std::to_string(now_us - 3600LL * 1000000);
    const std::string future = std::to_string(now_us + 86400LL * 1000000);
    std::string sql = "BEGIN IMMEDIATE; DELETE FROM job_run; DELETE FROM job;";
    if (jobs > 0) {
      sql += "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < " + n +
             ") INSERT INTO job (plugin_id, name, description, next_scheduled_run)"
             " SELECT 'pi_system', 'job-' || i, 'bench job', CASE WHEN i % " +
             every + " = 0 THEN " + past + " ELSE " + future + " END FROM g;";
    }
    if (jobs > 0 && history > 0) {
      sql += "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < " + h +
             ") INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time,"
             " update_time, end_time, completed_count, total_count, status)"
             " SELECT printf('history-%010d', i), 'pi_system', 'job-' || (i % " +
             n + "), 'history', " + past + " + i, " + past + " + i, " + past + " + i, 0, 0, 'completed' FROM g;";
    }
    raw_exec(t, sql + "COMMIT; ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);");
  } else if (t.backend == "mariadb") {
    // Rows from MariaDB's sequence tables (seq_0_to_N, the Sequence engine).
    std::string sql =
        "SET time_zone = '+00:00'; DELETE FROM job_server; DELETE FROM server; DELETE FROM job_run; DELETE FROM job;";
    if (jobs > 0) {
      sql +=
          "INSERT INTO job (plugin_id, name, description, next_scheduled_run)"
          " SELECT 'pi_system', CONCAT('job-', seq), 'bench job', IF(seq % " +
          every + " = 0, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, UTC_TIMESTAMP(6) + INTERVAL 1 DAY) FROM seq_0_to_" +
          std::to_string(jobs - 1) + ";";
    }
    if (jobs > 0 && history > 0) {
      sql +=
          "INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time,"
          " end_time, completed_count, total_count, status)"
          " SELECT CONCAT('history-', LPAD(seq, 10, '0')), 'pi_system', CONCAT('job-', seq % " +
          n +
          "), 'history', t, t, t, 0, 0, 'completed' FROM (SELECT seq, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR"
          " + INTERVAL seq MICROSECOND AS t FROM seq_0_to_" +
          std::to_string(history - 1) + ") x;";
    }
    mariadb_exec(t.raw, sql + "ANALYZE TABLE job, job_run;");
    // Then wait (up to 10 s) for InnoDB's purge of the rows deleted here:
    // until it has run, each claim steps over the deleted rows' entries in
    // the index of due jobs (the first 5 to 50 claims after a reset took 7
    // to 12 ms instead of 1), and a setting measured right after a reset
    // paid for it where the next one did not.
    for (int i = 0; i < 500; ++i) {
      const auto history = mariadb_number(
          t.raw, "SELECT count FROM information_schema.INNODB_METRICS WHERE name = 'trx_rseg_history_len'");
      if (!history || *history < 50) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } else {
    pg_exec(t.raw,
            "TRUNCATE job_run, job_server, server, job; INSERT INTO job SELECT 'pi_system', 'job-' || g, 'bench job',"
            " CASE WHEN g % " +
                every +
                " = 0 THEN now() - interval '1 hour' ELSE now() + interval '1 day' END"
                " FROM generate_series(0, " +
                std::to_string(jobs - 1) + ") g");
    if (jobs > 0 && history > 0) {
      pg_exec(t.raw,
              "INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time,"
              " end_time, completed_count, total_count, status)"
              " SELECT 'history-' || lpad(g::text, 10, '0'), 'pi_system', 'job-' || (g % " +
                  n + "), 'history', t, t, t, 0, 0, 'completed' FROM generate_series(0, " +
                  std::to_string(history - 1) +
                  ") g, LATERAL (SELECT now() - interval '1 hour' + g * interval '1 microsecond' AS t) x");
    }
    pg_exec(t.raw, "VACUUM ANALYZE job");
    pg_exec(t.raw, "VACUUM ANALYZE job_run");
  }
}

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

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::string thousands(double value) {
  const std::string digits = std::to_string(static_cast<long long>(value + 0.5));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && digits[i] != '-' && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace jobrepo_bench
