// The PostgreSQL backend's error mapping and URL redaction (no server needed).
#include "postgres/src/errors.hpp"

#include <jobrepo/postgres.hpp>

#include "error_of.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using jobrepo::ErrorCode;
using jobrepo::postgres_backend::error_code_for;

TEST_CASE("postgres: SQLSTATEs map to one ErrorCode each") {
  CHECK(error_code_for("23505", "duplicate key") == ErrorCode::not_unique);
  CHECK(error_code_for("23514", "violates check constraint \"job_name_check\"") == ErrorCode::check_constraint);
  CHECK(error_code_for("23514", "job_run: run x is completed, a final run cannot change state") ==
        ErrorCode::invalid_job_run_state);
  CHECK(error_code_for("23502", "") == ErrorCode::check_constraint);
  CHECK(error_code_for("23503", "") == ErrorCode::record_not_found);
  CHECK(error_code_for("40001", "could not serialize access") == ErrorCode::busy);
  CHECK(error_code_for("40P01", "deadlock detected") == ErrorCode::busy);
  CHECK(error_code_for("55P03", "") == ErrorCode::busy);
  CHECK(error_code_for("57014", "canceling statement due to statement timeout") == ErrorCode::busy);
  CHECK(!jobrepo::postgres_backend::is_retryable("57014"));  // it waited busy_timeout already
  CHECK(error_code_for("08006", "connection failure") == ErrorCode::unavailable);
  CHECK(error_code_for("57P01", "terminating connection due to administrator command") == ErrorCode::unavailable);
  CHECK(error_code_for("53300", "too many connections") == ErrorCode::unavailable);
  CHECK(error_code_for("28P01", "password authentication failed") == ErrorCode::unavailable);
  CHECK(error_code_for("", "server closed the connection unexpectedly") == ErrorCode::unavailable);
  CHECK(error_code_for("42P01", "relation \"job\" does not exist") == ErrorCode::schema_mismatch);
  // A standby, a failover target, default_transaction_read_only: retry elsewhere or later.
  CHECK(error_code_for("25006", "cannot execute INSERT in a read-only transaction") == ErrorCode::unavailable);
  CHECK(error_code_for("42601", "syntax error") == ErrorCode::internal);
  CHECK(jobrepo::postgres_backend::is_retryable("40001"));
  CHECK(jobrepo::postgres_backend::is_retryable("40P01"));
  CHECK(!jobrepo::postgres_backend::is_retryable("23505"));

  const auto error = jobrepo::postgres_backend::make_error("run_jobs", "server \"s1\"", "40P01", "deadlock detected");
  CHECK(error.code() == ErrorCode::busy);
  CHECK(error.native_code() == "SQLSTATE 40P01");
  CHECK(std::string(error.what()).find("run_jobs: server \"s1\": ") == 0);
}

TEST_CASE("postgres: URLs are redacted for messages") {
  CHECK(jobrepo::redact_postgres_url("postgresql://jobs:s3cr%40t@db.example:5432/jobs?sslmode=require") ==
        "postgresql://jobs:***@db.example:5432/jobs?sslmode=require");
  CHECK(jobrepo::redact_postgres_url("postgres://jobs@db/jobs?password=abc&sslmode=verify-full") ==
        "postgres://jobs@db/jobs?password=***&sslmode=verify-full");
  CHECK(jobrepo::redact_postgres_url("host=db password='a b' user=jobs") == "host=db password=*** user=jobs");
  CHECK(jobrepo::redact_postgres_url("postgresql://db/jobs") == "postgresql://db/jobs");
}

namespace {

// URLs whose password is "hunter2" (or holds it), and how messages show them:
// the password masked, or only the scheme when the URL is not clear (fail closed).
const std::vector<std::pair<std::string, std::string>> url_shapes = {
    // URI form
    {"postgresql://u:hunter2@db/jobs", "postgresql://u:***@db/jobs"},
    {"postgres://u:hunter2@db", "postgres://u:***@db"},
    {"postgresql://:hunter2@db", "postgresql://:***@db"},
    {"postgresql://u:hun%40ter2@db/jobs", "postgresql://u:***@db/jobs"},
    {"postgresql://u:hunter2%zz@db/jobs", "postgresql://***"},       // a raw '%' in the password
    {"postgresql://u:hunter2%00@db/jobs", "postgresql://***"},       // %00 is refused by libpq
    {"postgresql://u:hunter2/x@db/jobs", "postgresql://***"},        // an unencoded '/' (base64)
    {"postgresql://u:ab/hunter2@db/jobs", "postgresql://***"},       // the same, port-like start
    {"postgresql://u:12/hunter2@db/jobs", "postgresql://***"},       // the same, numeric start
    {"postgresql://u:hunter2@hunter2@db/jobs", "postgresql://***"},  // an unencoded '@'
    {"postgresql://h?password=hunter2@db/jobs", "postgresql://***"},
    {"postgresql://u@db/jobs?passwor%64=hunter2", "postgresql://u@db/jobs?passwor%64=***"},
    {"postgresql://u@db/jobs?password=hunter2&sslmode=require", "postgresql://u@db/jobs?password=***&sslmode=require"},
    {"postgresql://u@db/jobs?PassWord=hunter2", "postgresql://u@db/jobs?PassWord=***"},
    {"postgresql://u@db/jobs?sslpassword=hunter2", "postgresql://u@db/jobs?sslpassword=***"},
    {"postgresql://u@db/jobs?password=hunter2=x", "postgresql://***"},  // libpq: extra '='
    {"postgresql://u@db/jobs?hunter2", "postgresql://***"},             // libpq: missing '='
    {"postgresql://u@db/jobs?password=hunter2%zz", "postgresql://***"},
    {"postgresql://u@db/jobs?dbname=postgresql://u:hunter2%40db", "postgresql://***"},
    {"postgresql://u@db/jobs?passfile=/etc/jobs.pgpass", "postgresql://u@db/jobs?passfile=/etc/jobs.pgpass"},
    {"postgresql://u:hunter2@[::1]:5432/jobs", "postgresql://u:***@[::1]:5432/jobs"},
    {"postgresql://u:hunter2@[2001:db8::1],db2:5433/jobs", "postgresql://u:***@[2001:db8::1],db2:5433/jobs"},
    {"postgresql://u:hunter2@[::1/jobs", "postgresql://***"},
    {"postgresql://u:hunter2@[::1]x/jobs", "postgresql://***"},
    {"postgresql://u:hunter2@db:5x/jobs", "postgresql://***"},
    {"postgresql:u:hunter2@db/jobs", "postgresql:***"},  // not a URI: libpq would read key=value
    // libpq's key=value form
    {"host=db password=hunter2 user=jobs", "host=db password=*** user=jobs"},
    {"host=db password = 'hunter2 \\' x' user=jobs", "host=db password = *** user=jobs"},
    {"host=db password=hunter2\\ x user=jobs", "host=db password=*** user=jobs"},
    {"host=db PASSWORD=hunter2", "host=db PASSWORD=***"},
    {"host=db sslpassword='hunter2'", "host=db sslpassword=***"},
    {"host=db passfile=/etc/jobs.pgpass", "host=db passfile=/etc/jobs.pgpass"},
    {"host=db password=hun ter2", "***"},  // "ter2" is no key=value pair
    {"host=db password='hunter2", "***"},  // unterminated quote
    {"host=db dbname='postgresql://u:hunter2@db/x'", "***"},
    {"postgresql://u:hunter2", "postgresql://***"},  // "u" and a port "hunter2"
};

}  // namespace

TEST_CASE("postgres: every URL shape is redacted, unclear ones down to the scheme") {
  for (const auto& [url, shown] : url_shapes) {
    INFO(url);
    CHECK(jobrepo::redact_postgres_url(url) == shown);
  }
}

TEST_CASE("postgres: opening a bad URL never puts its password in the error") {
  for (const auto& [url, shown] : url_shapes) {
    // Every host becomes port 1 on the loopback: refused at once.
    std::string target = url;
    for (const auto& [from, to] :
         std::vector<std::pair<std::string, std::string>>{{"@db", "@127.0.0.1:1"},
                                                          {"[2001:db8::1]", "[::1]:1"},
                                                          {":5432", ":1"},
                                                          {"db2:5433", "127.0.0.1:1"},
                                                          {"host=db", "host=127.0.0.1 port=1"}}) {
      if (const auto at = target.find(from); at != std::string::npos) target.replace(at, from.size(), to);
    }
    INFO(target);
    std::string message;
    const auto code = jobrepo::test::code_of(
        [&] { jobrepo::open_postgres_store(target, {.pool_size = 1, .busy_timeout = std::chrono::seconds(1)}); },
        &message);
    INFO(message);
    CHECK((code == ErrorCode::invalid_parameter || code == ErrorCode::unavailable));
    CHECK(message.find("hunter2") == std::string::npos);
    CHECK(message.find("ter2") == std::string::npos);
  }
}
