// The one place where SQLite's result codes become jobrepo ErrorCodes.
#pragma once

#include <jobrepo/error.hpp>

#include <string>
#include <string_view>

namespace jobrepo::sqlite_backend {

// The ErrorCode for an SQLite result code (primary or extended). A file that
// cannot be opened, read or written as it is now (SQLITE_CANTOPEN,
// SQLITE_IOERR*, SQLITE_READONLY*, SQLITE_PERM, SQLITE_FULL, SQLITE_PROTOCOL)
// is unavailable: it may work once the file or its directory is fixed.
ErrorCode error_code_for(int sqlite_code, std::string_view driver_message) noexcept;

// True for SQLITE_BUSY and SQLITE_LOCKED (and their extended codes): the
// conflicts the store retries before giving up with ErrorCode::busy.
bool is_busy(int sqlite_code) noexcept;

// An Error for `operation` on `subject` (what the call was about, e.g.
// job "x" in plugin "y"; may be empty) from an SQLite failure. When the
// failure is unavailable and `file` is not empty, the message names that
// database file: "...: the database is unavailable: sqlite database "F": ...".
Error make_error(std::string_view operation, std::string_view subject, int sqlite_code, std::string_view driver_message,
                 std::string_view file = {});

// The same from what the database layer threw (connection.hpp).
class DatabaseError;
Error make_error(std::string_view operation, std::string_view subject, const DatabaseError& e,
                 std::string_view file = {});

}  // namespace jobrepo::sqlite_backend
