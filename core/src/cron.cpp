#include <jobrepo/cron.hpp>
#include <jobrepo/error.hpp>

// Placeholder: the parser and next_after() come in the next commit.
namespace jobrepo {

std::string_view to_string(Misfire misfire) noexcept { return misfire == Misfire::skip ? "skip" : "run_once"; }

std::optional<Misfire> parse_misfire(std::string_view text) noexcept {
  if (text == "run_once") return Misfire::run_once;
  if (text == "skip") return Misfire::skip;
  return std::nullopt;
}

}  // namespace jobrepo
