#include "errors.hpp"

#include <jobrepo/backend.hpp>

#include <string>

namespace jobrepo::postgres_backend {

namespace {

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

}  // namespace

ErrorCode error_code_for(std::string_view sqlstate, std::string_view driver_message) noexcept {
  if (sqlstate == "23505") return ErrorCode::not_unique;
  if (sqlstate == "23514") {
    // The trigger that keeps final runs final raises a check violation.
    if (driver_message.find("job_run_final_is_final") != std::string_view::npos ||
        driver_message.find("final run cannot change") != std::string_view::npos) {
      return ErrorCode::invalid_job_run_state;
    }
    return ErrorCode::check_constraint;
  }
  if (sqlstate == "23502" || sqlstate == "22001" || sqlstate == "22003") return ErrorCode::check_constraint;
  if (sqlstate == "23503") return ErrorCode::record_not_found;
  // 57014: a statement of the hot path ran past its statement_timeout
  // (busy_timeout; connection.hpp), waiting on locks or on a slow plan.
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return ErrorCode::busy;
  }
  // Connection exceptions, server shutdown, too many connections, auth
  // failures, and a server that takes no writes (25006: a standby, a
  // failover target not yet promoted, default_transaction_read_only): the
  // database as a whole cannot serve the call now.
  if (sqlstate.empty() || starts_with(sqlstate, "08") || starts_with(sqlstate, "57P") || sqlstate == "53300" ||
      starts_with(sqlstate, "28") || sqlstate == "25006") {
    return ErrorCode::unavailable;
  }
  if (sqlstate == "42P01") return ErrorCode::schema_mismatch;  // undefined_table: never migrated
  return ErrorCode::internal;
}

bool is_retryable(std::string_view sqlstate) noexcept { return sqlstate == "40001" || sqlstate == "40P01"; }

Error make_error(std::string_view operation, std::string_view subject, std::string_view sqlstate,
                 std::string_view driver_message) {
  return database_error(error_code_for(sqlstate, driver_message), operation, subject, driver_message,
                        sqlstate.empty() ? std::string() : "SQLSTATE " + std::string(sqlstate));
}

}  // namespace jobrepo::postgres_backend
