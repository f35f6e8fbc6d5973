#include "errors.hpp"

#include "connection.hpp"

#include <jobrepo/backend.hpp>

#include <sqlite3.h>

#include <string>

namespace jobrepo::sqlite_backend {

ErrorCode error_code_for(int sqlite_code, std::string_view driver_message) noexcept {
  switch (sqlite_code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return ErrorCode::not_unique;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_DATATYPE: return ErrorCode::check_constraint;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return ErrorCode::record_not_found;
    case SQLITE_CONSTRAINT_TRIGGER: return ErrorCode::invalid_job_run_state;
    default: break;
  }
  switch (sqlite_code & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return ErrorCode::busy;
    // The file as it is now: its permissions, a read-only file, directory or
    // file system (SQLite opens such a file read-only, then refuses writes),
    // I/O errors, a full disk. Safe to retry once someone fixed it.
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL: return ErrorCode::unavailable;
    case SQLITE_CONSTRAINT: return ErrorCode::check_constraint;
    case SQLITE_ERROR:
      // A database nobody migrated has no tables.
      if (driver_message.find("no such table") != std::string_view::npos) return ErrorCode::schema_mismatch;
      return ErrorCode::internal;
    default: return ErrorCode::internal;
  }
}

bool is_busy(int sqlite_code) noexcept {
  const int primary = sqlite_code & 0xFF;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

Error make_error(std::string_view operation, std::string_view subject, int sqlite_code, std::string_view driver_message,
                 std::string_view file) {
  const char* name = sqlite3_errstr(sqlite_code);
  const ErrorCode code = error_code_for(sqlite_code, driver_message);
  std::string words(driver_message);
  if (code == ErrorCode::unavailable && !file.empty()) {
    words = "sqlite database \"" + std::string(file) + "\": " + words;
  }
  return database_error(code, operation, subject, words,
                        "sqlite " + std::to_string(sqlite_code) + " (" + (name ? name : "?") + ")");
}

Error make_error(std::string_view operation, std::string_view subject, const DatabaseError& e, std::string_view file) {
  return make_error(operation, subject, e.code(), e.what(), file);
}

}  // namespace jobrepo::sqlite_backend
