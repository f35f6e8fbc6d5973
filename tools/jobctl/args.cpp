#include "args.hpp"

#include "duration.hpp"
#include "shown.hpp"

#include <jobrepo/jobrepo.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <sys/stat.h>

namespace jobctl {

namespace {

using std::chrono::microseconds;

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {"migrate", "", "Create or upgrade the database schema", {}, {}},
      {"jobs", "", "List the jobs", {}, {}},
      {"job show", "NAME", "Show one job", {"NAME"}, {}},
      {"job create",
       "NAME DESCRIPTION [--next-run-in D]",
       "Create a job (due now by default)",
       {"NAME", "DESCRIPTION"},
       {"--next-run-in"}},
      {"job next-run", "NAME D", "Set when a job runs next, D from now", {"NAME", "D"}, {}},
      {"job run-now",
       "NAME [--arg JSON]",
       "Run a job now, or as soon as its running run ends (--arg: that run's arguments, JSON)",
       {"NAME"},
       {"--arg"}},
      {"job pause", "NAME", "Pause a job: no server starts it until it is resumed", {"NAME"}, {}},
      {"job resume", "NAME", "Resume a paused job", {"NAME"}, {}},
      {"job delete",
       "NAME [--force]",
       "Delete a job and its runs (--force: even while servers serve it)",
       {"NAME"},
       {},
       {"--force"}},
      {"runs",
       "[--job NAME] [--status S] [--limit N]",
       "List runs, newest first",
       {},
       {"--job", "--status", "--limit"}},
      {"run show", "ID", "Show one run", {"ID"}, {}},
      {"run cancel",
       "ID [--wait D | --no-wait]",
       "Stop a running run on its server (default: wait up to 1m for it to end)",
       {"ID"},
       {"--wait"},
       {"--no-wait"}},
      {"claim",
       "--server ID [--limit N]",
       "Low-level, fakes a server's work: claim due jobs as server ID",
       {},
       {"--server", "--limit"}},
      {"run progress",
       "ID COMPLETED TOTAL",
       "Low-level, fakes a server's work: report progress",
       {"ID", "COMPLETED", "TOTAL"},
       {}},
      {"run complete",
       "ID --next-run-in D",
       "Low-level, fakes a server's work: complete a run",
       {"ID"},
       {"--next-run-in"}},
      {"run fail",
       "ID [--message TEXT]",
       "Low-level, fakes a server's work: fail a run (to stop one: run cancel)",
       {"ID"},
       {"--message"}},
      {"interrupt",
       "--threshold D [--server ID]",
       "Low-level: interrupt running runs not updated for D",
       {},
       {"--threshold", "--server"}},
      {"prune",
       "--older-than D | --job NAME [--keep N] [--older-than D]",
       "Delete final runs that ended at least D ago (--job: of that job, all but its N newest too)",
       {},
       {"--older-than", "--job", "--keep"}},
      {"audit", "", "Check that no job ever had two runs at the same time", {}, {}},
      {"serve",
       "--config FILE [--server-id ID] [--http ADDR:PORT] [--http-host NAMES] [--log-format F] [--log-level L] "
       "[--check]",
       "Run the commands of a config file as jobs (--check: validate, print, exit)",
       {},
       {"--config", "--server-id", "--http", "--http-host", "--log-format", "--log-level"},
       {"--check"}},
      {"cron next",
       "EXPR [--time-zone TZ] [--from TIME] [--count N]",
       "When a cron expression fires next (no database)",
       {"EXPR"},
       {"--time-zone", "--from", "--count"}},
  };
  return all;
}

std::string usage_text() {
  std::ostringstream out;
  out << "usage: jobctl [--db URL | --db-file PATH] [--json] [--plugin ID] COMMAND [ARGS]\n\n"
      << "Jobs that run on one server at a time, kept in SQLite, PostgreSQL or MariaDB/MySQL.\n\n"
      << "Commands:\n";
  for (const auto& c : commands()) {
    std::string line = "  " + c.words + (c.arguments.empty() ? "" : " " + c.arguments);
    if (line.size() < 48) line.append(48 - line.size(), ' ');
    out << line << "  " << c.summary << "\n";
  }
  out << "\nOptions:\n"
      << "  --db URL        sqlite:PATH, sqlite::memory:, postgresql://..., mariadb://... (default:\n"
      << "                  $JOBREPO_DATABASE_URL, else the URL in the file $JOBREPO_DATABASE_URL_FILE,\n"
      << "                  else sqlite:jobrepo.db);\n"
      << "                  only migrate and serve create a SQLite file\n"
      << "  --db-file PATH  the URL from the first line of PATH, so that ps does not show a password\n"
      << "                  (keep the file mode 0600; one others can read is refused)\n"
      << "  --json          machine-readable output, indented (schema in docs/cli.md)\n"
      << "  --plugin ID     the plugin whose jobs to act on (default pi_system)\n"
      << "  --help          this text; COMMAND --help for one command\n"
      << "  --version       jobctl's version\n\n"
      << "An option takes its value as --name VALUE or --name=VALUE (only the latter for a value that\n"
      << "starts with --); after a lone --, every word is an argument (a run id a store made with a\n"
      << "leading -). Durations read like 90s, 5m, 1h30m, 250ms, 2d, at most 100 years; --limit N\n"
      << "is at least 1, or -1 for all. Exit status: 0 ok, 1 the operation failed (jobctl COMMAND:\n"
      << "MESSAGE (CODE)), 2 usage error.\n";
  return out.str();
}

std::vector<const Command*> subcommands(const std::string& word) {
  std::vector<const Command*> out;
  for (const auto& c : commands()) {
    if (c.words.rfind(word + " ", 0) == 0) out.push_back(&c);
  }
  return out;
}

std::string command_usage(const Command& command) {
  return "usage: jobctl [--db URL | --db-file PATH] [--json] " + command.words +
         (command.arguments.empty() ? "" : " " + command.arguments) + "\n\n" + command.summary + ".\n";
}

namespace {

// Whether any command, or jobctl itself, takes the option `name`.
bool known_option(const std::string& name) {
  if (name == "--db" || name == "--db-file" || name == "--plugin") return true;
  return std::any_of(commands().begin(), commands().end(), [&](const Command& c) { return c.options.count(name) > 0; });
}

}  // namespace

// Fills `in` as it goes, so that a usage error can name the command once it
// is known.
void parse(int argc, char* argv[], Invocation& in) {
  std::vector<std::string> words;
  std::map<std::string, std::string> values;
  std::string unknown;    // the first option no command takes: said once the command is known
  bool operands = false;  // after "--": every word is an argument, also one that starts with --
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (operands) {
      words.push_back(arg);
    } else if (arg == "--") {
      operands = true;
    } else if (arg == "--json") {
      in.json_output = true;
    } else if (arg == "--help" || arg == "-h") {
      in.help = true;
    } else if (arg == "--version") {
      in.version = true;
    } else if (arg == "--force" || arg == "--check" || arg == "--no-wait") {
      in.flags.insert(arg);
    } else if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      std::string value;
      // An option no command takes is unknown, whatever follows it.
      if (const std::string name = arg.substr(0, arg.find('=')); !known_option(name)) {
        if (unknown.empty()) unknown = name;
        continue;
      }
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg.resize(eq);
      } else {
        if (i + 1 >= argc) throw UsageError("option " + shown(arg) + " needs a value");
        // A word that is itself an option is not this one's value: in
        // `--plugin --json` the plugin was forgotten. --name=VALUE gives a
        // value that starts with --.
        if (const std::string_view next = argv[i + 1]; next.size() > 2 && next.substr(0, 2) == "--") {
          throw UsageError("option " + shown(arg) + " needs a value (write " + shown(arg) +
                           "=VALUE for a value that starts with --)");
        }
        value = argv[++i];
      }
      values[arg] = value;
    } else {
      words.push_back(arg);
    }
  }
  // The database: the command line before the environment; two sources at
  // one level are ambiguous. An empty URL is a mistake (an unset shell
  // variable, say), not a wish for the default database.
  if (values.count("--db") && values.count("--db-file")) throw UsageError("give --db or --db-file, not both");
  if (values.count("--db")) {
    if (values["--db"].empty()) throw UsageError("--db: empty URL");
    in.url = values["--db"];
    values.erase("--db");
  }
  if (values.count("--db-file")) {
    in.url_file = values["--db-file"], in.url_file_source = "--db-file", values.erase("--db-file");
    if (in.url_file.empty()) throw UsageError("--db-file needs a file");
  }
  if (values.count("--plugin")) in.plugin = values["--plugin"], values.erase("--plugin");
  if (in.url.empty() && in.url_file.empty()) {
    const char* env = std::getenv("JOBREPO_DATABASE_URL");
    const char* file = std::getenv("JOBREPO_DATABASE_URL_FILE");
    if (env && *env && file && *file) {
      throw UsageError("JOBREPO_DATABASE_URL and JOBREPO_DATABASE_URL_FILE are both set: unset one");
    }
    if (file && *file) {
      in.url_file = file, in.url_file_source = "JOBREPO_DATABASE_URL_FILE";
    } else {
      in.url = env && *env ? env : "sqlite:jobrepo.db";
    }
  }
  if (words.empty()) {
    if (in.help || in.version) return;
    if (!unknown.empty()) throw UsageError("unknown option " + shown(unknown));
    throw UsageError("missing command");
  }
  // The longest command whose words start the argument list.
  for (const auto& c : commands()) {
    std::istringstream split(c.words);
    std::vector<std::string> cw;
    for (std::string w; split >> w;) cw.push_back(w);
    if (cw.size() <= words.size() && std::equal(cw.begin(), cw.end(), words.begin()) &&
        (!in.command || c.words.size() > in.command->words.size())) {
      in.command = &c;
      in.args.assign(words.begin() + static_cast<long>(cw.size()), words.end());
    }
  }
  if (!in.command) {
    // A command word alone ("jobctl job"): its subcommands.
    if (const auto group = subcommands(words.front()); !group.empty() && words.size() == 1) {
      if (in.help) {
        in.group = words.front();
        return;
      }
      std::string names;
      for (const auto* c : group) names += (names.empty() ? "" : ", ") + c->words.substr(words.front().size() + 1);
      throw UsageError(words.front() + " needs a subcommand: " + names + " (jobctl " + words.front() +
                       " --help shows them)");
    }
    throw UsageError("unknown command " +
                     jobrepo::quote_text(words.front() + (words.size() > 1 ? " " + words[1] : "")));
  }
  if (in.help) return;
  if (!unknown.empty()) throw UsageError("unknown option " + shown(unknown));
  for (const auto& [name, value] : values) {
    if (!in.command->options.count(name)) throw UsageError("unknown option " + shown(name));
  }
  for (const auto& flag : in.flags) {
    if (!in.command->flags.count(flag)) throw UsageError("unknown option " + flag);
  }
  in.values = values;
  if (in.args.size() != in.command->positional.size()) {
    // An unquoted cron expression is five arguments (or the shell's expansion of *).
    const bool expression = !in.command->positional.empty() && in.command->positional.front() == "EXPR";
    throw UsageError("expected " + std::to_string(in.command->positional.size()) + " argument(s), got " +
                     std::to_string(in.args.size()) +
                     (expression ? " (quote the expression: jobctl cron next \"0 3 * * *\")" : ""));
  }
}

// `what` names an option ("--threshold"); empty for a positional argument.
microseconds duration_arg(const std::string& what, const std::string& text) {
  std::string problem;
  const auto d = parse_duration(text, &problem);
  if (!d) throw UsageError(what.empty() ? problem : what + ": " + problem);
  return *d;
}

int int_arg(const std::string& what, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value >= INT32_MIN && value <= INT32_MAX) return static_cast<int>(value);
  } catch (const std::exception&) {
  }
  throw UsageError(what + ": " + jobrepo::quote_text(text) + " is not an integer");
}

std::int64_t count_arg(const std::string& what, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(what + ": " + jobrepo::quote_text(text) + " is not an integer");
}

// The URL on the first line of `path` (given by `source`), without
// surrounding blanks. A URL that holds a password (redact_url hides something)
// is refused from a file everyone may read and warned about from one its
// group may read. Messages name the file, never its text.
std::string read_url_file(const std::string& source, const std::string& path) {
  const std::string where = source + " " + shown(path);
  struct stat st {};
  std::ifstream in(path);
  if (!in || ::stat(path.c_str(), &st) != 0) throw UsageError(where + ": cannot read: " + std::strerror(errno));
  std::string url;
  if (!std::getline(in, url) && !in.eof()) throw UsageError(where + ": cannot read: " + std::strerror(errno));
  const auto first = url.find_first_not_of(" \t\r");
  url = first == std::string::npos ? "" : url.substr(first, url.find_last_not_of(" \t\r") - first + 1);
  if (url.empty()) throw UsageError(where + ": the first line is empty (it should hold the database URL)");
  if (jobrepo::redact_url(url) != url) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777U));
    if ((st.st_mode & S_IROTH) != 0) {
      throw UsageError(where + " holds a password and every user may read it (mode " + mode + "): chmod 600 " +
                       shown(path));
    }
    if ((st.st_mode & S_IRGRP) != 0) {
      std::cerr << "jobctl: warning: " << where << " holds a password and its group may read it (mode " << mode
                << "): chmod 600 " << shown(path) << "\n";
    }
  }
  return url;
}

// The database URL of the invocation, read from its file if need be.
std::string database_url(const Invocation& in) {
  return in.url_file.empty() ? in.url : read_url_file(in.url_file_source, in.url_file);
}

// --limit N: at least 1, or -1 for all (0 and other negatives would mean
// something else to the library; they are refused rather than guessed).
int limit_arg(const Invocation& in, int fallback) {
  const auto it = in.values.find("--limit");
  if (it == in.values.end()) return fallback;
  const int limit = int_arg("--limit", it->second);
  if (limit < 1 && limit != -1) {
    throw UsageError("--limit: " + shown(it->second) + " is neither a count of at least 1 nor -1 (all)");
  }
  return limit;
}

std::string required(const Invocation& in, const std::string& option) {
  const auto it = in.values.find(option);
  if (it == in.values.end()) throw UsageError("missing " + option);
  return it->second;
}

}  // namespace jobctl
