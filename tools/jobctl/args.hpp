// jobctl's command line: the commands, their arguments and options, and
// what an invocation asks for. Parsing touches no database; a bad command
// line is a UsageError (exit status 2).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobctl {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One subcommand: its words ("job create"), arguments, options, summary.
struct Command {
  std::string words;
  std::string arguments;  // e.g. "NAME DESCRIPTION [--next-run-in D]"
  std::string summary;
  std::vector<std::string> positional;  // names of the required positional arguments
  std::set<std::string> options;        // accepted --options taking a value
  std::set<std::string> flags{};        // accepted --flags taking no value
};

// Every command, in the order of --help.
const std::vector<Command>& commands();

// jobctl --help.
std::string usage_text();

struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;              // positional, after the command words
  std::map<std::string, std::string> values;  // --option value
  std::string url;                            // --db or $JOBREPO_DATABASE_URL
  std::string url_file;                       // else --db-file or $JOBREPO_DATABASE_URL_FILE
  std::string url_file_source;                // which of those two
  std::string plugin = "pi_system";
  std::set<std::string> flags;  // --flag
  bool json_output = false;
  bool help = false;
  bool version = false;
  std::string group;  // --help of a command word with subcommands ("job"), no command
};

// The subcommands of a command word ("job": job create, job delete, ...),
// in the order of --help; empty when `word` has none.
std::vector<const Command*> subcommands(const std::string& word);

// "usage: ..." of one command, and of each command of a group.
std::string command_usage(const Command& command);

// Fills `in` as it goes, so that a usage error can name the command once it
// is known. Throws UsageError.
void parse(int argc, char* argv[], Invocation& in);

// An argument `what` read as a duration, an int, a count (>= 0); UsageError.
std::chrono::microseconds duration_arg(const std::string& what, const std::string& text);
int int_arg(const std::string& what, const std::string& text);
std::int64_t count_arg(const std::string& what, const std::string& text);

// The database URL of the invocation, read from its file if need be (a file
// everyone may read that holds a password is refused: UsageError).
std::string database_url(const Invocation& in);

// --limit N: at least 1, or -1 for all; `fallback` when not given.
int limit_arg(const Invocation& in, int fallback);

// The value of a required --option; UsageError when missing.
std::string required(const Invocation& in, const std::string& option);

}  // namespace jobctl
