// jobctl: the operator's tool for jobrepo. See docs/cli.md, or jobctl --help.
#include "duration.hpp"
#include "serve.hpp"
#include "supervisor.hpp"

#include <jobrepo/jobrepo.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <sys/stat.h>

namespace {

using nlohmann::json;
using std::chrono::microseconds;
using namespace jobctl;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

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
};

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
      {"job run-now", "NAME", "Make a job due now", {"NAME"}, {}},
      {"job delete", "NAME", "Delete a job and its runs", {"NAME"}, {}},
      {"runs",
       "[--job NAME] [--status S] [--limit N]",
       "List runs, newest first",
       {},
       {"--job", "--status", "--limit"}},
      {"run show", "ID", "Show one run", {"ID"}, {}},
      {"claim", "--server ID [--limit N]", "Claim due jobs as server ID", {}, {"--server", "--limit"}},
      {"run progress", "ID COMPLETED TOTAL", "Report the progress of a running run", {"ID", "COMPLETED", "TOTAL"}, {}},
      {"run complete", "ID --next-run-in D", "Complete a run; its job runs again D later", {"ID"}, {"--next-run-in"}},
      {"run fail", "ID", "Fail a run (its job stays due)", {"ID"}, {}},
      {"interrupt",
       "--threshold D [--server ID]",
       "Interrupt running runs not updated for D",
       {},
       {"--threshold", "--server"}},
      {"prune", "--older-than D", "Delete final runs that ended at least D ago", {}, {"--older-than"}},
      {"audit", "", "Check that no job ever had two runs at the same time", {}, {}},
      {"serve",
       "--config FILE [--server-id ID]",
       "Run the commands of a config file as jobs",
       {},
       {"--config", "--server-id"}},
  };
  return all;
}

std::string usage_text() {
  std::ostringstream out;
  out << "usage: jobctl [--db URL | --db-file PATH] [--json] [--plugin ID] COMMAND [ARGS]\n\n"
      << "Jobs that run on one server at a time, kept in SQLite or PostgreSQL.\n\n"
      << "Commands:\n";
  for (const auto& c : commands()) {
    std::string line = "  " + c.words + (c.arguments.empty() ? "" : " " + c.arguments);
    if (line.size() < 48) line.append(48 - line.size(), ' ');
    out << line << "  " << c.summary << "\n";
  }
  out << "\nOptions:\n"
      << "  --db URL        sqlite:PATH, sqlite::memory:, postgresql://... (default: $JOBREPO_DATABASE_URL,\n"
      << "                  else the URL in the file $JOBREPO_DATABASE_URL_FILE, else sqlite:jobrepo.db);\n"
      << "                  only migrate and serve create a SQLite file\n"
      << "  --db-file PATH  the URL from the first line of PATH, so that ps does not show a password\n"
      << "                  (keep the file mode 0600; one others can read is refused)\n"
      << "  --json          machine-readable output, indented (schema in docs/cli.md)\n"
      << "  --plugin ID     the plugin whose jobs to act on (default pi_system)\n"
      << "  --help          this text; COMMAND --help for one command\n\n"
      << "Durations read like 90s, 5m, 1h30m, 250ms, 2d, at most 100 years; --limit N is at least 1,\n"
      << "or -1 for all. Exit status: 0 ok, 1 the operation failed (jobctl COMMAND: MESSAGE (CODE)),\n"
      << "2 usage error.\n";
  return out.str();
}

struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;              // positional, after the command words
  std::map<std::string, std::string> values;  // --option value
  std::string url;                            // --db or $JOBREPO_DATABASE_URL
  std::string url_file;                       // else --db-file or $JOBREPO_DATABASE_URL_FILE
  std::string url_file_source;                // which of those two
  std::string plugin = "pi_system";
  bool json_output = false;
  bool help = false;
};

// Fills `in` as it goes, so that a usage error can name the command once it
// is known.
void parse(int argc, char* argv[], Invocation& in) {
  std::vector<std::string> words;
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      in.json_output = true;
    } else if (arg == "--help" || arg == "-h") {
      in.help = true;
    } else if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      std::string value;
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg.resize(eq);
      } else {
        if (i + 1 >= argc) throw UsageError("option " + arg + " needs a value");
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
    if (in.help) return;
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
  if (!in.command)
    throw UsageError("unknown command \"" + words.front() + (words.size() > 1 ? " " + words[1] : "") + "\"");
  if (in.help) return;
  for (const auto& [name, value] : values) {
    if (!in.command->options.count(name)) throw UsageError("unknown option " + name);
  }
  in.values = values;
  if (in.args.size() != in.command->positional.size()) {
    throw UsageError("expected " + std::to_string(in.command->positional.size()) + " argument(s), got " +
                     std::to_string(in.args.size()));
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
  throw UsageError(what + ": \"" + text + "\" is not an integer");
}

std::int64_t count_arg(const std::string& what, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(what + ": \"" + text + "\" is not an integer");
}

// The URL on the first line of `path` (given by `source`), without
// surrounding blanks. A URL that holds a password (redact_url hides something)
// is refused from a file everyone may read and warned about from one its
// group may read. Messages name the file, never its text.
std::string read_url_file(const std::string& source, const std::string& path) {
  const std::string where = source + " " + path;
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
      throw UsageError(where + " holds a password and every user may read it (mode " + mode + "): chmod 600 " + path);
    }
    if ((st.st_mode & S_IRGRP) != 0) {
      std::cerr << "jobctl: warning: " << where << " holds a password and its group may read it (mode " << mode
                << "): chmod 600 " << path << "\n";
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
    throw UsageError("--limit: " + it->second + " is neither a count of at least 1 nor -1 (all)");
  }
  return limit;
}

std::string required(const Invocation& in, const std::string& option) {
  const auto it = in.values.find(option);
  if (it == in.values.end()) throw UsageError("missing " + option);
  return it->second;
}

// JSON as jobctl prints it, all of it: indented by 2, and text that is not
// UTF-8 (stored by an older version or by hand) shown with U+FFFD instead of
// aborting.
std::string json_text(const json& value) { return value.dump(2, ' ', false, json::error_handler_t::replace); }

// --- output ------------------------------------------------------------------

json to_json(const jobrepo::Job& job) {
  return {{"plugin_id", job.plugin_id},
          {"name", job.name},
          {"description", job.description},
          {"next_scheduled_run", iso_utc(job.next_scheduled_run)}};
}

json to_json(const jobrepo::Run& run) {
  return {{"private_id", run.private_id},
          {"job_plugin_id", run.job_plugin_id},
          {"job_name", run.job_name},
          {"server_id", run.server_id},
          {"create_time", iso_utc(run.create_time)},
          {"update_time", iso_utc(run.update_time)},
          {"end_time", run.end_time ? json(iso_utc(*run.end_time)) : json(nullptr)},
          {"completed_count", run.completed_count},
          {"total_count", run.total_count},
          {"status", std::string(jobrepo::to_string(run.status))}};
}

template <class T>
json to_json(const std::vector<T>& items) {
  json out = json::array();
  for (const auto& item : items) out.push_back(to_json(item));
  return out;
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out.append(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  if (rows.empty()) std::cout << "(none)\n";
}

std::string when(jobrepo::Timestamp t, jobrepo::Timestamp now) { return local_time(t) + " (" + relative(t, now) + ")"; }

void print_jobs(const std::vector<jobrepo::Job>& jobs) {
  const auto now = jobrepo::Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : jobs) rows.push_back({j.name, when(j.next_scheduled_run, now), j.description});
  print_table({"NAME", "NEXT RUN", "DESCRIPTION"}, rows);
}

void print_runs(const std::vector<jobrepo::Run>& runs) {
  const auto now = jobrepo::Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    const auto took = between(r.create_time, r.end_time.value_or(now));
    rows.push_back(
        {r.private_id, r.job_name, std::string(jobrepo::to_string(r.status)), r.server_id,
         std::to_string(r.completed_count) + "/" + std::to_string(r.total_count), when(r.create_time, now),
         format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(took)) + (r.end_time ? "" : " so far")});
  }
  print_table({"RUN", "JOB", "STATUS", "SERVER", "PROGRESS", "STARTED", "DURATION"}, rows);
}

void print_job(const jobrepo::Job& j) {
  const auto now = jobrepo::Clock::now();
  std::cout << "name:         " << j.name << "\n"
            << "plugin:       " << j.plugin_id << "\n"
            << "description:  " << j.description << "\n"
            << "next run:     " << when(j.next_scheduled_run, now) << "\n";
}

void print_run(const jobrepo::Run& r) {
  const auto now = jobrepo::Clock::now();
  std::cout << "run:          " << r.private_id << "\n"
            << "job:          " << r.job_name << " (plugin " << r.job_plugin_id << ")\n"
            << "status:       " << jobrepo::to_string(r.status) << "\n"
            << "server:       " << r.server_id << "\n"
            << "progress:     " << r.completed_count << "/" << r.total_count << "\n"
            << "started:      " << when(r.create_time, now) << "\n"
            << "updated:      " << when(r.update_time, now) << "\n"
            << "ended:        " << (r.end_time ? when(*r.end_time, now) : "-") << "\n";
}

// --- the commands --------------------------------------------------------------

struct Audit {
  std::size_t jobs = 0, runs = 0;
  std::vector<std::string> overlaps;  // "job: run A (server) overlaps run B (server)"
};

Audit audit(jobrepo::Repository& repo) {
  Audit a;
  auto runs = repo.list_runs({.limit = -1});
  std::set<std::string> jobs;
  for (const auto& run : runs) jobs.insert(run.job_name);
  a.jobs = jobs.size();
  a.runs = runs.size();
  for (const auto& o : jobrepo::find_overlaps(std::move(runs))) {
    a.overlaps.push_back(o.first.job_name + ": run " + o.first.private_id + " (" + o.first.server_id +
                         ") overlaps run " + o.second.private_id + " (" + o.second.server_id + ")");
  }
  return a;
}

// The store for a command. Only migrate (and serve, which migrates) may
// create a database: any other command on a missing SQLite file, a mistyped
// path most likely, fails instead of leaving an empty database there.
std::unique_ptr<jobrepo::Store> open_database(const Invocation& in, const std::string& url) {
  jobrepo::StoreOptions options;
  options.create_if_missing = in.command->words == "migrate";
  try {
    return jobrepo::open_store(url, options);
  } catch (const jobrepo::Error& e) {
    if (e.code() != jobrepo::ErrorCode::unavailable || e.native_code() != "ENOENT") throw;
    throw jobrepo::Error(e.code(), std::string(e.what()) + "; jobctl migrate creates it", e.native_code());
  }
}

std::string no_such(const Invocation& in, const std::string& what, const std::string& value) {
  return "no " + what + " " + jobrepo::quote_text(value) + " in plugin " + jobrepo::quote_text(in.plugin);
}

int execute(const Invocation& in) {
  const std::string& name = in.command->words;
  const std::string url = database_url(in);
  if (name == "serve") {
    const std::string path = required(in, "--config");
    const std::string server = in.values.count("--server-id") ? in.values.at("--server-id") : default_server_id();
    return serve(url, server, [&] {
      ServeConfig config = load_config(path);
      if (in.plugin != "pi_system") config.plugin_id = in.plugin;
      return config;
    });
  }
  auto store = open_database(in, url);
  if (name == "migrate") {
    store->migrate();
    if (in.json_output)
      std::cout << json_text(json{{"migrated", true}}) << "\n";
    else
      std::cout << "migrated " << jobrepo::redact_url(url) << "\n";
    return exit_ok;
  }
  jobrepo::Repository repo(*store, {in.plugin, 0});
  const auto output = [&](const json& j, const std::function<void()>& human) {
    if (in.json_output)
      std::cout << json_text(j) << "\n";
    else
      human();
  };
  if (name == "jobs") {
    const auto jobs = repo.list_jobs({.limit = -1});
    output(to_json(jobs), [&] { print_jobs(jobs); });
  } else if (name == "job show") {
    const auto job = repo.lookup_job(in.args[0]);
    if (!job) throw jobrepo::Error(jobrepo::ErrorCode::record_not_found, no_such(in, "job", in.args[0]));
    output(to_json(*job), [&] { print_job(*job); });
  } else if (name == "job create") {
    const auto next = in.values.count("--next-run-in") ? duration_arg("--next-run-in", in.values.at("--next-run-in"))
                                                       : microseconds(0);
    const auto job = repo.create_job(in.args[0], in.args[1], {.next_run_in = next});
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job next-run") {
    const auto job = repo.update_job_next_run(in.args[0], duration_arg("", in.args[1]));
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job run-now") {
    const auto job = repo.update_job_next_run(in.args[0], microseconds(0));
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job delete") {
    repo.delete_job(in.args[0]);
    output(json{{"deleted", in.args[0]}}, [&] { std::cout << "deleted job " << in.args[0] << "\n"; });
  } else if (name == "runs") {
    jobrepo::ListRunsOptions options;
    if (in.values.count("--job")) options.job_name = in.values.at("--job");
    if (in.values.count("--status")) {
      options.status = jobrepo::parse_status(in.values.at("--status"));
      if (!options.status) {
        throw UsageError("--status: \"" + in.values.at("--status") +
                         "\" is not one of running, completed, failed, interrupted");
      }
    }
    options.limit = limit_arg(in, 50);
    const auto runs = repo.list_runs(options);
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "run show") {
    const auto run = repo.lookup_run(in.args[0]);
    if (!run) throw jobrepo::Error(jobrepo::ErrorCode::record_not_found, no_such(in, "run", in.args[0]));
    output(to_json(*run), [&] { print_run(*run); });
  } else if (name == "claim") {
    const int limit = limit_arg(in, 1);
    const auto runs = repo.run_jobs(required(in, "--server"), {.limit = limit});
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "run progress") {
    const auto run =
        repo.update_progress(in.args[0], count_arg("COMPLETED", in.args[1]), count_arg("TOTAL", in.args[2]));
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "run complete") {
    const auto run = repo.complete_run(in.args[0], duration_arg("--next-run-in", required(in, "--next-run-in")));
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "run fail") {
    const auto run = repo.fail_run(in.args[0]);
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "interrupt") {
    const auto threshold = duration_arg("--threshold", required(in, "--threshold"));
    const auto runs =
        repo.interrupt_runs(threshold, {.server_id = in.values.count("--server") ? in.values.at("--server") : ""});
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "prune") {
    const auto deleted = repo.prune_runs(duration_arg("--older-than", required(in, "--older-than")));
    output(json{{"deleted", deleted}}, [&] { std::cout << "deleted " << deleted << " final runs\n"; });
  } else if (name == "audit") {
    const auto a = audit(repo);
    output(json{{"jobs", a.jobs}, {"runs", a.runs}, {"overlaps", a.overlaps}}, [&] {
      std::cout << "audited " << a.runs << " runs of " << a.jobs << " jobs: " << a.overlaps.size()
                << " overlapping pairs" << (a.overlaps.empty() ? " (each job ran on one server at a time)" : "")
                << "\n";
      for (const auto& o : a.overlaps) std::cout << "  " << o << "\n";
    });
    return a.overlaps.empty() ? exit_ok : exit_failed;
  }
  return exit_ok;
}

// A library error's message without the library's operation that leads it
// ("update_job_next_run: no job ..." -> "no job ..."): jobctl names the
// command the user typed instead.
std::string without_operation(std::string_view message) {
  std::size_t word = 0;
  while (word < message.size() && ((message[word] >= 'a' && message[word] <= 'z') || message[word] == '_')) ++word;
  if (word > 0 && message.substr(word, 2) == ": ") message.remove_prefix(word + 2);
  return std::string(message);
}

}  // namespace

int main(int argc, char* argv[]) {
  // jobctl serve starts itself again as the supervisor of each run.
  if (argc > 0 && std::string_view(argv[0]) == supervisor_name) return supervisor_main(argc, argv);
  bool json_output = false;
  for (int i = 1; i < argc; ++i) json_output = json_output || std::string(argv[i]) == "--json";
  Invocation in;
  // "jobctl job next-run: ", once the command is known: every message names
  // the command as the user typed it.
  const auto prefix = [&] { return in.command ? "jobctl " + in.command->words + ": " : std::string("jobctl: "); };
  try {
    parse(argc, argv, in);
    if (in.help) {
      if (!in.command) {
        std::cout << usage_text();
      } else {
        std::cout << "usage: jobctl [--db URL | --db-file PATH] [--json] " << in.command->words
                  << (in.command->arguments.empty() ? "" : " " + in.command->arguments) << "\n\n"
                  << in.command->summary << ".\n";
      }
      return exit_ok;
    }
    return execute(in);
  } catch (const UsageError& e) {
    std::cerr << prefix() << e.what() << "\n(jobctl --help lists the commands)\n";
    return exit_usage;
  } catch (const ConfigError& e) {
    std::cerr << "jobctl serve: " << e.what() << "\n";
    return exit_usage;
  } catch (const ServeError& e) {
    std::cerr << "jobctl serve: " << e.what() << "\n";
    return exit_failed;
  } catch (const jobrepo::Error& e) {
    const std::string message = without_operation(e.what());
    if (json_output) {
      std::cout << json_text(
                       json{{"error", {{"code", std::string(jobrepo::to_string(e.code()))}, {"message", message}}}})
                << "\n";
    }
    std::cerr << prefix() << message << " (" << jobrepo::to_string(e.code()) << ")\n";
    return exit_failed;
  }
}
