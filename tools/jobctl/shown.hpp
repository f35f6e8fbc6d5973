// How jobctl shows text the user gave (an option, a config key) in a
// message: as the library echoes values (jobrepo::shown_text: as typed when
// that reads as itself, else quoted, escaped and cut after 60 characters; one
// line of valid UTF-8).
#pragma once

#include <jobrepo/text.hpp>

#include <string>
#include <string_view>

namespace jobctl {

inline std::string shown(std::string_view text) { return jobrepo::shown_text(text); }

// A count with its noun in the right number: "1 job", "2 jobs", "0 jobs".
template <class Count>
std::string counted(Count n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

}  // namespace jobctl
