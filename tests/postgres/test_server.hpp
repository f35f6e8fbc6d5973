// The PostgreSQL server the tests use: JOBREPO_TEST_POSTGRES_URL (tools/test
// starts a throwaway server and sets it). Without it the PostgreSQL tests
// report themselves skipped, unless JOBREPO_TEST_POSTGRES_REQUIRED=1, when
// they fail: in tools/test the server is never missing.
#pragma once

#include <libpq-fe.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace jobrepo::test {

// The URL of the test server, or empty.
inline std::string postgres_server_url() {
  const char* url = std::getenv("JOBREPO_TEST_POSTGRES_URL");
  return url ? url : "";
}

inline bool postgres_required() {
  const char* required = std::getenv("JOBREPO_TEST_POSTGRES_REQUIRED");
  return required && std::string(required) == "1";
}

// Runs SQL without parameters on a new connection to `url`; throws with the
// server's message on failure.
inline void postgres_exec(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("cannot connect to the test server: " + message);
  }
  PGresult* result = PQexec(conn, sql.c_str());
  const auto status = PQresultStatus(result);
  const std::string message = PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(conn);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + message);
}

// The first column of the first row of a query, as text.
inline std::string postgres_value(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  PGresult* result = PQexec(conn, sql.c_str());
  std::string value;
  const bool ok = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0;
  if (ok) value = PQgetvalue(result, 0, 0);
  const std::string message = PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(conn);
  if (!ok) throw std::runtime_error(sql + ": " + message);
  return value;
}

// `url` (postgresql://host/db[?query]) with another database name.
inline std::string with_database(const std::string& url, const std::string& database) {
  const auto authority = url.find("://");
  if (authority == std::string::npos) throw std::runtime_error("JOBREPO_TEST_POSTGRES_URL must be a postgresql:// URI");
  const auto query = url.find('?');
  const auto path = url.find('/', authority + 3);
  const std::string base = url.substr(0, path == std::string::npos || path > query ? query : path);
  return base + "/" + database + (query == std::string::npos ? "" : url.substr(query));
}

// `url` with one more query parameter.
inline std::string with_parameter(const std::string& url, const std::string& parameter) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + parameter;
}

// A database of its own for one test executable, dropped at the end.
class TestDatabase {
 public:
  TestDatabase() : server_(postgres_server_url()) {
    std::random_device random;
    name_ = "jobrepo_test_" + std::to_string(random() % 1000000000);
    postgres_exec(server_, "CREATE DATABASE " + name_);
    url_ = with_database(server_, name_);
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  ~TestDatabase() {
    try {
      postgres_exec(server_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
      // The server is gone: nothing left to drop.
    }
  }
  const std::string& url() const { return url_; }

 private:
  std::string server_, name_, url_;
};

// Why the PostgreSQL tests cannot run here, or empty.
inline std::string postgres_unavailable_reason() {
  const std::string url = postgres_server_url();
  if (url.empty()) return "JOBREPO_TEST_POSTGRES_URL is not set (tools/test sets it)";
  PGconn* conn = PQconnectdb(url.c_str());
  std::string reason;
  if (PQstatus(conn) != CONNECTION_OK) reason = std::string("cannot connect: ") + PQerrorMessage(conn);
  PQfinish(conn);
  while (!reason.empty() && reason.back() == '\n') reason.pop_back();
  return reason;
}

}  // namespace jobrepo::test
