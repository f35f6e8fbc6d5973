#include "errors.hpp"

#include "connection.hpp"

#include <jobrepo/backend.hpp>

#include <errmsg.h>
#include <mysqld_error.h>

namespace jobrepo::mariadb_backend {

ErrorCode error_code_for(unsigned number, std::string_view driver_message) noexcept {
  switch (number) {
    case ER_DUP_ENTRY:
    case ER_DUP_ENTRY_WITH_KEY_NAME:
    case ER_DUP_KEY: return ErrorCode::not_unique;
    case ER_SIGNAL_EXCEPTION:
      // The trigger that keeps final runs final.
      if (driver_message.find("job_run_final_is_final") != std::string_view::npos) {
        return ErrorCode::invalid_job_run_state;
      }
      return ErrorCode::internal;
    case 4025:  // ER_CONSTRAINT_FAILED (MariaDB), a CHECK constraint
    case 3819:  // ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8)
    case ER_DATA_TOO_LONG:
    case ER_WARN_DATA_OUT_OF_RANGE:
    case ER_BAD_NULL_ERROR:
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: return ErrorCode::check_constraint;
    case ER_NO_REFERENCED_ROW:
    case ER_NO_REFERENCED_ROW_2: return ErrorCode::record_not_found;
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT: return ErrorCode::busy;
    case ER_NO_SUCH_TABLE:
    case ER_BAD_FIELD_ERROR: return ErrorCode::schema_mismatch;
    // The database as a whole cannot serve the call now: the link, the
    // server shutting down, too many connections, the credentials, a
    // database that does not exist (yet), a server that takes no writes
    // (read_only, a replica).
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    case ER_ACCESS_DENIED_ERROR:
    case ER_DBACCESS_DENIED_ERROR:
    case ER_BAD_DB_ERROR:
    case ER_OPTION_PREVENTS_STATEMENT:
    case ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION:
    case ER_HOST_IS_BLOCKED:
    case ER_HOST_NOT_PRIVILEGED: return ErrorCode::unavailable;
    default:
      if (number == 0 || is_connection_error(number) || (number >= 2000 && number < 3000)) {
        return ErrorCode::unavailable;  // the client library's own errors: the link
      }
      return ErrorCode::internal;
  }
}

bool is_retryable(unsigned number) noexcept { return number == ER_LOCK_DEADLOCK; }

Error make_error(std::string_view operation, std::string_view subject, unsigned number, std::string_view sqlstate,
                 std::string_view driver_message) {
  std::string native = "MariaDB error " + std::to_string(number);
  if (!sqlstate.empty()) native += " (SQLSTATE " + std::string(sqlstate) + ")";
  return database_error(error_code_for(number, driver_message), operation, subject, driver_message, native);
}

}  // namespace jobrepo::mariadb_backend
