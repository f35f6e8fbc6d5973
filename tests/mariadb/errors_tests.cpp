// The MariaDB backend's error mapping and URL reading (no server needed).
#include "mariadb/src/errors.hpp"
#include "mariadb/src/url.hpp"

#include <jobrepo/mariadb.hpp>

#include "error_of.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using jobrepo::ErrorCode;
using jobrepo::mariadb_backend::error_code_for;

TEST_CASE("mariadb: error numbers map to one ErrorCode each") {
  CHECK(error_code_for(1062, "Duplicate entry 'p-a' for key 'PRIMARY'") == ErrorCode::not_unique);
  CHECK(error_code_for(4025, "CONSTRAINT `job_run_completed_le_total` failed") == ErrorCode::check_constraint);
  CHECK(error_code_for(3819, "Check constraint 'x' is violated.") == ErrorCode::check_constraint);
  CHECK(error_code_for(1406, "Data too long for column 'name'") == ErrorCode::check_constraint);
  CHECK(error_code_for(1048, "Column 'name' cannot be null") == ErrorCode::check_constraint);
  CHECK(error_code_for(1644, "job_run_final_is_final: a final run cannot change state") ==
        ErrorCode::invalid_job_run_state);
  CHECK(error_code_for(1644, "some other signal") == ErrorCode::internal);
  CHECK(error_code_for(1452, "Cannot add or update a child row") == ErrorCode::record_not_found);
  CHECK(error_code_for(1213, "Deadlock found when trying to get lock") == ErrorCode::busy);
  CHECK(error_code_for(1205, "Lock wait timeout exceeded") == ErrorCode::busy);
  CHECK(error_code_for(1146, "Table 'jobs.job' doesn't exist") == ErrorCode::schema_mismatch);
  CHECK(error_code_for(1054, "Unknown column 'x'") == ErrorCode::schema_mismatch);
  CHECK(error_code_for(2002, "Can't connect to local server") == ErrorCode::unavailable);
  CHECK(error_code_for(2003, "Can't connect to server on '127.0.0.1'") == ErrorCode::unavailable);
  CHECK(error_code_for(2006, "Server has gone away") == ErrorCode::unavailable);
  CHECK(error_code_for(2013, "Lost connection to server during query") == ErrorCode::unavailable);
  CHECK(error_code_for(1927, "Connection was killed") == ErrorCode::unavailable);
  CHECK(error_code_for(1040, "Too many connections") == ErrorCode::unavailable);
  CHECK(error_code_for(1045, "Access denied for user") == ErrorCode::unavailable);
  CHECK(error_code_for(1049, "Unknown database 'jobs'") == ErrorCode::unavailable);
  // read_only, a replica: retry elsewhere or later.
  CHECK(error_code_for(1290, "The MariaDB server is running with the --read-only option") == ErrorCode::unavailable);
  CHECK(error_code_for(1064, "You have an error in your SQL syntax") == ErrorCode::internal);
  CHECK(jobrepo::mariadb_backend::is_retryable(1213));
  CHECK(!jobrepo::mariadb_backend::is_retryable(1205));
  CHECK(!jobrepo::mariadb_backend::is_retryable(1062));

  const auto error = jobrepo::mariadb_backend::make_error("run_jobs", "server \"s1\"", 1213, "40001", "Deadlock found");
  CHECK(error.code() == ErrorCode::busy);
  CHECK(std::string(error.what()) == "run_jobs: server \"s1\": lock conflicts outlasted the retries: Deadlock found");
  CHECK(error.native_code() == "MariaDB error 1213 (SQLSTATE 40001)");
}

TEST_CASE("mariadb: URLs are read as written and shown without their password") {
  using jobrepo::mariadb_backend::read_url;
  const auto full = read_url("mariadb://jobs:s%40cr%2Fet@db.example:3307/jobs?connect_timeout=5&ssl_mode=verify");
  CHECK(full.problem.empty());
  CHECK(full.options.user == "jobs");
  CHECK(full.options.password == std::optional<std::string>("s@cr/et"));
  CHECK(full.options.host == "db.example");
  CHECK(full.options.port == 3307u);
  CHECK(full.options.database == "jobs");
  CHECK(full.options.connect_timeout == 5u);
  CHECK(full.options.ssl_mode == "verify");
  CHECK(full.shown == "mariadb://jobs:***@db.example:3307/jobs?connect_timeout=5&ssl_mode=verify");
  CHECK(jobrepo::redact_mariadb_url("mysql://u:hunter2@h/db") == "mysql://u:***@h/db");

  const auto ipv6 = read_url("mysql://u@[::1]:3306/db?socket=%2Frun%2Fmysqld%2Fmysqld.sock&wakeup_poll_ms=50");
  CHECK(ipv6.problem.empty());
  CHECK(ipv6.options.host == "::1");
  CHECK(ipv6.options.socket == "/run/mysqld/mysqld.sock");
  CHECK(ipv6.options.wakeup_poll_ms == 50u);
  CHECK(!ipv6.options.password.has_value());

  const auto bare = read_url("mariadb://localhost");
  CHECK(bare.problem.empty());
  CHECK(bare.options.port == 0u);
  CHECK(bare.options.database.empty());

  // Unclear or unusable: refused, shown as the scheme only, the password never quoted.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"mariadb://u:Zq@7x@h/db", "'@'"},
      {"mariadb://u:Zq/7x@h/db", "'/'"},
      {"mariadb://u:Zq%zz7x@h/db", "percent-encoding in the password"},
      {"mariadb://u:Zq%007x@h/db", "percent-encoding in the password"},
      {"mariadb://u:Zq7x@h:99999/db", "is not a number from 1 to 65535"},
      {"mariadb://u:Zq7x@h:x/db", "is not a number from 1 to 65535"},
      {"mariadb://u:Zq7x@[::1/db", "IPv6"},
      {"mariadb://u:Zq7x@h/db?password=Zq7x", "unknown parameter \"password\""},
      {"mariadb://u:Zq7x@h/db?connect_timeout=0", "connect_timeout"},
      {"mariadb://u:Zq7x@h/db?ssl_mode=maybe", "ssl_mode"},
      {"mariadb://u:Zq7x@h/db?wakeup_poll_ms=1", "wakeup_poll_ms"},
      {"mariadb://u:Zq7x@h/db?socket", "needs a value"},
  };
  for (const auto& entry : refused) {
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    const std::string& url = entry.first;
    const std::string& fragment = entry.second;
    INFO(url);
    const auto read = read_url(url);
    CHECK(read.problem.find(fragment) != std::string::npos);
    CHECK(read.problem.find("Zq") == std::string::npos);
    CHECK(read.shown == "mariadb://***");
    std::string message;
    CHECK(jobrepo::test::code_of([&] { jobrepo::open_mariadb_store(url); }, &message) == ErrorCode::invalid_parameter);
    CHECK(message.find("Zq") == std::string::npos);
    CHECK(message.rfind("open_store: invalid MariaDB URL mariadb://***: ", 0) == 0);
  }
  CHECK(jobrepo::test::code_of([] { jobrepo::open_mariadb_store(""); }) == ErrorCode::invalid_parameter);
}
