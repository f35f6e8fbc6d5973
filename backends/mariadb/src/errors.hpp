// The one place where MariaDB's (and MySQL's) error numbers become jobrepo
// ErrorCodes.
#pragma once

#include <jobrepo/error.hpp>

#include <string>
#include <string_view>

namespace jobrepo::mariadb_backend {

// The ErrorCode for a server or client error number (ER_*, CR_*).
ErrorCode error_code_for(unsigned number, std::string_view driver_message) noexcept;

// A deadlock: the store retries these before `busy`.
bool is_retryable(unsigned number) noexcept;

// An Error for `operation` on `subject` from a MariaDB failure.
Error make_error(std::string_view operation, std::string_view subject, unsigned number, std::string_view sqlstate,
                 std::string_view driver_message);

}  // namespace jobrepo::mariadb_backend
