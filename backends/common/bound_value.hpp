// A value bound to a statement's parameter, the same for every built-in
// backend's database layer (connection.hpp): NULL, an integer or text
// (which must outlive the call). Header-only, not installed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace jobrepo::store_support {

using Value = std::variant<std::monostate, long long, std::string_view>;

inline Value text(const std::string& value) { return std::string_view(value); }
inline Value number(long long value) { return value; }
inline Value flag(bool value) { return static_cast<long long>(value ? 1 : 0); }

// NULL when empty.
template <class T>
Value optional_value(const std::optional<T>& value) {
  if (!value) return std::monostate{};
  if constexpr (std::is_integral_v<T>) {
    return static_cast<long long>(*value);
  } else {
    return std::string_view(*value);
  }
}

}  // namespace jobrepo::store_support
