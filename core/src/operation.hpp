// Internal to core: errors named by the public method the caller called.
#pragma once

#include <jobrepo/error.hpp>

#include <string_view>

namespace jobrepo {

// `error` as the method `operation` reports it: its message starts with
// "operation: ". A message that starts with another operation's name (a
// store's, or a Repository method's that `operation` called: "ensure_job:
// ...") has that name replaced; the code and native code are kept.
Error for_operation(const Error& error, std::string_view operation);

}  // namespace jobrepo
