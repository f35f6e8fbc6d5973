// How jobctl shows text the user gave (an option, a config key) in a
// message: as typed when that reads as itself, else as the library shows
// values (jobrepo::quote_text: quoted, escaped, cut; one line of valid UTF-8).
#pragma once

#include <jobrepo/text.hpp>

#include <string>
#include <string_view>

namespace jobctl {

inline std::string shown(std::string_view text) {
  std::string quoted = jobrepo::quote_text(text);
  const bool as_typed = !text.empty() && quoted.size() == text.size() + 2 && quoted.compare(1, text.size(), text) == 0;
  return as_typed ? std::string(text) : quoted;
}

}  // namespace jobctl
