// jobrepo: the one exception type of the public API.
//
// Every failing call throws jobrepo::Error carrying an ErrorCode. Lookups that
// find nothing return an empty std::optional instead of throwing.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace jobrepo {

enum class ErrorCode {
  invalid_parameter,      // a required argument is empty or out of range; no I/O was done
  not_unique,             // create_job with a (plugin_id, name) that exists
  record_not_found,       // a mutating call names a job or run that does not exist
  invalid_job_run_state,  // the run is already final; the message names its state
  check_constraint,       // counts or text out of range (also enforced by the schema)
  unavailable,            // the database cannot be reached or the connection broke; retry
  busy,                   // a lock conflict outlasted the store's own bounded retries; retry
  schema_mismatch,        // the database is not migrated, or migrated by a newer jobrepo
  internal,               // anything else; native_code() keeps the driver's code
};

// The enumerator's name, e.g. "record_not_found".
std::string_view to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  // `message` names the operation and the offending value. Line breaks and
  // tabs, with the blanks around them, become one space so that every message
  // is one line; other spaces are kept (a value's own). `native_code` is the
  // driver's own code (e.g. "SQLITE_BUSY" or a SQLSTATE), empty if none.
  Error(ErrorCode code, const std::string& message, std::string native_code = {});

  ErrorCode code() const noexcept { return code_; }
  const std::string& native_code() const noexcept { return native_code_; }

 private:
  ErrorCode code_;
  std::string native_code_;
};

}  // namespace jobrepo
