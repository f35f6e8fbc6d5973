// The one place where PostgreSQL's SQLSTATEs become jobrepo ErrorCodes.
#pragma once

#include <jobrepo/error.hpp>

#include <string>
#include <string_view>

namespace jobrepo::postgres_backend {

// The ErrorCode for a SQLSTATE (empty: no SQLSTATE, e.g. a lost connection).
ErrorCode error_code_for(std::string_view sqlstate, std::string_view driver_message) noexcept;

// Serialization failure or deadlock: the store retries these before `busy`.
bool is_retryable(std::string_view sqlstate) noexcept;

// An Error for `operation` on `subject` from a PostgreSQL failure.
Error make_error(std::string_view operation, std::string_view subject, std::string_view sqlstate,
                 std::string_view driver_message);

}  // namespace jobrepo::postgres_backend
