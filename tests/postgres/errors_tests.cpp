// The PostgreSQL backend's error mapping and URL redaction (no server needed).
#include "postgres/src/errors.hpp"

#include <jobrepo/postgres.hpp>

#include <catch2/catch.hpp>

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
  CHECK(error_code_for("08006", "connection failure") == ErrorCode::unavailable);
  CHECK(error_code_for("57P01", "terminating connection due to administrator command") == ErrorCode::unavailable);
  CHECK(error_code_for("53300", "too many connections") == ErrorCode::unavailable);
  CHECK(error_code_for("28P01", "password authentication failed") == ErrorCode::unavailable);
  CHECK(error_code_for("", "server closed the connection unexpectedly") == ErrorCode::unavailable);
  CHECK(error_code_for("42P01", "relation \"job\" does not exist") == ErrorCode::schema_mismatch);
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
