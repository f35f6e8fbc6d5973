// jobctl, run as a user would: every subcommand (happy path, bad input, JSON
// schema), serve (success, failure, timeout, progress, cancellation, two
// processes, config errors), and --help against docs/cli.md. On SQLite or
// PostgreSQL (JOBREPO_TEST_BACKEND, see ../scheduler/backend.hpp).
#define CATCH_CONFIG_RUNNER
#include "backend_main.hpp"
#include "cli_support.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using jobrepo::test::Cli;
using jobrepo::test::Process;
using jobrepo::test::slurp;
using jobrepo::test::TempDir;
using jobrepo::test::wait_until;

const std::set<std::string> job_keys = {"plugin_id", "name", "description", "next_scheduled_run"};
const std::set<std::string> run_keys = {"private_id",  "job_plugin_id", "job_name",        "server_id",   "create_time",
                                        "update_time", "end_time",      "completed_count", "total_count", "status"};

std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& [key, value] : object.items()) out.insert(key);
  return out;
}

bool iso_time(const json& value) {
  return value.is_string() &&
         std::regex_match(value.get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"));
}

std::string repeat_text(const std::string& piece, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += piece;
  return out;
}

// The command words of lines like "  job create NAME ..." or "### `jobctl job create NAME ...`".
std::string command_words(const std::string& syntax) {
  std::istringstream words(syntax);
  std::string out;
  for (std::string w; words >> w;) {
    if (w.front() == '[' || w.front() == '-' || std::isupper(static_cast<unsigned char>(w.front())) || w == "D") break;
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

}  // namespace

TEST_CASE("cli: --help and docs/cli.md list the same commands") {
  Cli cli;
  const auto help = cli.bare({"--help"});
  REQUIRE(help.status == 0);
  std::set<std::string> from_help, from_docs;
  bool in_commands = false;
  std::istringstream lines(help.out);
  for (std::string line; std::getline(lines, line);) {
    if (line == "Commands:") {
      in_commands = true;
    } else if (in_commands && line.empty()) {
      break;
    } else if (in_commands) {
      from_help.insert(command_words(line.substr(0, line.find("  ", 2))));
    }
  }
  std::istringstream doc(slurp(fs::path(JOBREPO_SOURCE_DIR) / "docs" / "cli.md"));
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("### `jobctl ", 0) == 0) from_docs.insert(command_words(line.substr(12, line.rfind('`') - 12)));
  }
  CHECK(from_help.size() == 17);
  CHECK(from_help == from_docs);
  // Each command has its own --help.
  const auto one = cli.bare({"job", "create", "--help"});
  CHECK(one.status == 0);
  CHECK(one.out.find("job create NAME DESCRIPTION") != std::string::npos);
}

TEST_CASE("cli: jobs are created, shown, listed, rescheduled and deleted; JSON has the documented schema") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  auto created = cli({"job", "create", "report", "Builds the report", "--next-run-in", "1h30m", "--json"});
  REQUIRE(created.status == 0);
  const auto job = created.parsed();
  CHECK(keys(job) == job_keys);
  CHECK(job["name"] == "report");
  CHECK(iso_time(job["next_scheduled_run"]));
  REQUIRE(cli({"job", "create", "cleanup", "Deletes sessions"}).status == 0);

  const auto listed = cli({"jobs", "--json"}).parsed();
  REQUIRE(listed.size() == 2);
  CHECK(listed[0]["name"] == "cleanup");
  const auto table = cli({"jobs"});
  CHECK(table.out.find("NAME") == 0);
  CHECK(table.out.find("in 1h29m") != std::string::npos);
  CHECK(cli({"job", "show", "report"}).out.find("Builds the report") != std::string::npos);

  const auto moved = cli({"job", "next-run", "report", "-5m", "--json"}).parsed();
  CHECK(moved["next_scheduled_run"] < job["next_scheduled_run"]);
  CHECK(cli({"job", "run-now", "report"}).status == 0);
  CHECK(cli({"job", "delete", "cleanup", "--json"}).parsed() == json{{"deleted", "cleanup"}});
  CHECK(cli({"jobs", "--json"}).parsed().size() == 1);
}

TEST_CASE("cli: bad input gets exit 2 with a clear message; failed operations exit 1 with the code") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "j", "d"}).status == 0);
  const auto dup = cli({"job", "create", "j", "d"});
  CHECK(dup.status == 1);
  CHECK(dup.err.find("(not_unique)") != std::string::npos);
  const auto dup_json = cli({"job", "create", "j", "d", "--json"});
  CHECK(dup_json.status == 1);
  CHECK(dup_json.parsed()["error"]["code"] == "not_unique");
  CHECK(cli({"job", "show", "nope"}).err.find("(record_not_found)") != std::string::npos);
  CHECK(cli({"run", "show", "nope-nope-nope-nope"}).status == 1);
  CHECK(cli({"run", "fail", "nope-nope-nope-nope"}).err.find("record_not_found") != std::string::npos);

  const auto bad_duration = cli({"job", "next-run", "j", "10x"});
  CHECK(bad_duration.status == 2);
  CHECK(bad_duration.err.find("\"10x\" is not a duration (like 90s, 5m, 1h30m, 250ms)") != std::string::npos);
  CHECK(cli({"job", "create", "only-name"}).status == 2);
  CHECK(cli({"frobnicate"}).status == 2);
  CHECK(cli({"jobs", "--limit", "3"}).status == 2);  // not an option of jobs
  CHECK(cli({"runs", "--status", "sleeping"}).status == 2);
  CHECK(cli({"runs", "--limit", "many"}).status == 2);
  CHECK(cli({"claim"}).err.find("missing --server") != std::string::npos);
  CHECK(cli({"job", "create", "x", "   "}).err.find("(check_constraint)") != std::string::npos);
  CHECK(cli.bare({}).status == 2);
  const auto no_backend = cli.bare({"--db", "mysql://u:hunter2@h/db", "jobs"});
  CHECK(no_backend.status == 1);
  CHECK(no_backend.err.find("(invalid_parameter)") != std::string::npos);
  CHECK(no_backend.err.find("hunter2") == std::string::npos);
  // JOBREPO_DATABASE_URL is the default database.
  const auto from_env = cli.bare({"jobs", "--json"}, {"JOBREPO_DATABASE_URL=" + cli.url});
  CHECK(from_env.status == 0);
  CHECK(from_env.parsed().size() == 1);
}

TEST_CASE("cli: an error names the command as typed: jobctl COMMAND: MESSAGE (CODE)") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  const auto next = cli({"job", "next-run", "x", "1h"});
  CHECK(next.status == 1);
  CHECK(next.err == "jobctl job next-run: no job \"x\" in plugin \"pi_system\" (record_not_found)\n");
  CHECK(cli({"job", "run-now", "x"}).err ==
        "jobctl job run-now: no job \"x\" in plugin \"pi_system\" (record_not_found)\n");
  CHECK(cli({"job", "show", "x"}).err == "jobctl job show: no job \"x\" in plugin \"pi_system\" (record_not_found)\n");
  CHECK(cli({"run", "fail", "nope-nope-nope-nope"}).err ==
        "jobctl run fail: no run \"nope-nope-nope-nope\" in plugin \"pi_system\" (record_not_found)\n");
  // With --json, the same message in the error object, printed as every JSON output is (indented).
  const auto as_json = cli({"job", "next-run", "x", "1h", "--json"});
  CHECK(as_json.status == 1);
  const json expected = {
      {"error", {{"code", "record_not_found"}, {"message", "no job \"x\" in plugin \"pi_system\""}}}};
  CHECK(as_json.out == expected.dump(2) + "\n");
  CHECK(cli({"migrate", "--json"}).out == json{{"migrated", true}}.dump(2) + "\n");
  // Usage errors name the command too.
  const auto usage = cli({"job", "next-run", "x", "10x"});
  CHECK(usage.status == 2);
  CHECK(usage.err.rfind("jobctl job next-run: \"10x\" is not a duration (like 90s, 5m, 1h30m, 250ms)\n", 0) == 0);
}

TEST_CASE("cli: --json never aborts on text that is not UTF-8; such arguments are invalid_parameter") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"job", "create", "bad\xff", "d"},
                                             {"job", "create", "ok", "bad\xc3("},
                                             {"job", "show", "bad\xff"},
                                             {"job", "next-run", "bad\xff", "1h"},
                                             {"claim", "--server", "bad\xff"},
                                             {"runs", "--job", "bad\xff"},
                                             {"run", "show", "bad\xff"}}) {
    auto with_json = args;
    with_json.push_back("--json");
    const auto result = cli(with_json);
    INFO(args[0] << " " << args[1] << "\n" << result.err);
    CHECK(result.status == 1);
    REQUIRE_NOTHROW(result.parsed());
    CHECK(result.parsed()["error"]["code"] == "invalid_parameter");
    CHECK(result.err.find("(invalid_parameter)") != std::string::npos);
  }
  CHECK(cli({"jobs", "--json"}).parsed().empty());
  if (jobrepo::test::scheduler_on_postgres()) return;  // PostgreSQL cannot hold such text
  // SQLite holds what old versions or SQL written by hand stored: printed with U+FFFD.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(cli.url.substr(7).c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "INSERT INTO job VALUES ('pi_system', CAST(X'726177FF' AS TEXT), CAST(X'64FE' AS TEXT), 0);"
                       " INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time,"
                       " update_time) VALUES ('AAAAAAAAAAAAAAAAAAAAAA', 'pi_system', CAST(X'726177FF' AS TEXT),"
                       " CAST(X'73FF' AS TEXT), 0, 0)",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  const auto jobs = cli({"jobs", "--json"});
  CHECK(jobs.status == 0);
  REQUIRE_NOTHROW(jobs.parsed());
  CHECK(jobs.parsed()[0]["name"] == "raw\xef\xbf\xbd");
  CHECK(jobs.parsed()[0]["description"] == "d\xef\xbf\xbd");
  const auto runs = cli({"runs", "--json"});
  CHECK(runs.status == 0);
  REQUIRE_NOTHROW(runs.parsed());
  CHECK(runs.parsed()[0]["server_id"] == "s\xef\xbf\xbd");
  CHECK(cli({"run", "show", "AAAAAAAAAAAAAAAAAAAAAA", "--json"}).status == 0);
  CHECK(cli({"audit", "--json"}).status == 0);
}

TEST_CASE("cli: an empty --db and a --limit other than >= 1 or -1 are usage errors") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  for (const auto& db : {std::vector<std::string>{"--db="}, {"--db", ""}}) {
    auto args = db;
    args.push_back("jobs");
    const auto result = cli.bare(args);
    CHECK(result.status == 2);
    CHECK(result.err.find("--db") != std::string::npos);
  }
  CHECK(!fs::exists(cli.dir.path / "jobrepo.db"));
  for (const auto* limit : {"0", "-5", "-2"}) {
    INFO(limit);
    const auto runs = cli({"runs", "--limit", limit});
    CHECK(runs.status == 2);
    CHECK(runs.err.find("--limit") != std::string::npos);
    CHECK(cli({"claim", "--server", "s1", "--limit", limit}).status == 2);
  }
  CHECK(cli({"runs", "--limit", "-1"}).status == 0);
  CHECK(cli({"runs", "--limit", "1"}).status == 0);
}

TEST_CASE("cli: a command other than migrate and serve never creates a missing SQLite database") {
  Cli cli;
  const auto typo = cli.dir.path / "typo.db";
  const std::string url = "sqlite:" + typo.string();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{{"jobs"},
                                                                                    {"job", "show", "x"},
                                                                                    {"runs"},
                                                                                    {"run", "show", "0123456789abcdef"},
                                                                                    {"audit"},
                                                                                    {"job", "create", "x", "d"},
                                                                                    {"claim", "--server", "s1"}}) {
    auto all = std::vector<std::string>{"--db", url};
    all.insert(all.end(), args.begin(), args.end());
    const auto result = cli.bare(all);
    INFO(args[0] << "\n" << result.err);
    CHECK(result.status == 1);
    CHECK(result.err.find("(unavailable)") != std::string::npos);
    CHECK(result.err.find(typo.string()) != std::string::npos);
    CHECK(result.err.find("jobctl migrate") != std::string::npos);
    CHECK(!fs::exists(typo));
  }
  CHECK(cli.bare({"--db", url, "migrate"}).status == 0);
  CHECK(cli.bare({"--db", url, "jobs", "--json"}).parsed().empty());
}

TEST_CASE("cli: a duration beyond 100 years is a usage error that says so") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  for (const auto* text :
       {"36526d", "-36526d", "876625h", "9999999999999d", "99999999999999999999999999us", "36525d1us"}) {
    INFO(text);
    const auto result = cli({"job", "create", "j", "d", "--next-run-in", text});
    CHECK(result.status == 2);
    CHECK(result.err.find(std::string("\"") + text + "\" is more than 100 years") != std::string::npos);
  }
  CHECK(cli({"job", "next-run", "j", "36526d"}).status == 2);
  CHECK(cli({"job", "create", "j", "d", "--next-run-in", "36525d"}).status == 0);
  CHECK(cli({"job", "next-run", "j", "-36525d"}).status == 0);
  CHECK(cli({"job", "create", "k", "d", "--next-run-in", "12x"}).err.find("is not a duration") != std::string::npos);
}

TEST_CASE("cli: claim, progress, complete, fail, runs, interrupt, prune and audit") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  for (const auto* name : {"a", "b", "c"}) REQUIRE(cli({"job", "create", name, "d"}).status == 0);
  const auto claimed = cli({"claim", "--server", "s1", "--limit", "2", "--json"}).parsed();
  REQUIRE(claimed.size() == 2);
  CHECK(keys(claimed[0]) == run_keys);
  CHECK(claimed[0]["end_time"].is_null());
  CHECK(iso_time(claimed[0]["create_time"]));
  const std::string a = claimed[0]["private_id"], b = claimed[1]["private_id"];

  const auto progressed = cli({"run", "progress", a, "3", "10", "--json"}).parsed();
  CHECK(progressed["completed_count"] == 3);
  CHECK(progressed["total_count"] == 10);
  CHECK(cli({"run", "progress", a, "11", "10"}).err.find("(check_constraint)") != std::string::npos);
  const auto done = cli({"run", "complete", a, "--next-run-in", "1h", "--json"}).parsed();
  CHECK(done["status"] == "completed");
  CHECK(iso_time(done["end_time"]));
  CHECK(cli({"run", "complete", a, "--next-run-in", "1h"}).err.find("completed (invalid_job_run_state)") !=
        std::string::npos);
  CHECK(cli({"run", "complete", b}).status == 2);  // --next-run-in is required
  CHECK(cli({"run", "fail", b, "--json"}).parsed()["status"] == "failed");

  const auto c = cli({"claim", "--server", "s2", "--limit", "-1", "--json"}).parsed();
  REQUIRE(c.size() == 2);  // c, and b again (failed: due at once)
  CHECK(cli({"runs", "--json"}).parsed().size() == 4);
  CHECK(cli({"runs", "--job", "b", "--json"}).parsed().size() == 2);
  CHECK(cli({"runs", "--status", "running", "--json"}).parsed().size() == 2);
  CHECK(cli({"runs", "--limit", "1", "--json"}).parsed().size() == 1);
  CHECK(cli({"run", "show", a}).out.find("completed") != std::string::npos);
  CHECK(cli({"runs"}).out.find("RUN") == 0);

  CHECK(cli({"interrupt", "--threshold", "1h", "--json"}).parsed().empty());
  CHECK(cli({"interrupt", "--threshold", "0s", "--server", "nobody", "--json"}).parsed().empty());
  CHECK(cli({"interrupt", "--threshold", "0s", "--json"}).parsed().size() == 2);
  const auto audit = cli({"audit", "--json"});
  CHECK(audit.status == 0);
  CHECK(audit.parsed()["runs"] == 4);
  CHECK(audit.parsed()["overlaps"].empty());
  CHECK(cli({"prune", "--older-than", "1h", "--json"}).parsed()["deleted"] == 0);
  CHECK(cli({"prune", "--older-than", "0s", "--json"}).parsed()["deleted"] == 4);
  CHECK(cli({"runs", "--json"}).parsed().empty());
}

namespace {

// A config with short intervals; `jobs` is the JSON of the jobs array.
fs::path write_config(const fs::path& dir, const std::string& jobs) { return jobrepo::test::write_config(dir, jobs); }

}  // namespace

TEST_CASE("cli: serve runs commands: success, failure, timeout, progress, cancellation") {
  Cli cli;
  const auto marker = cli.dir.path / "got-sigterm";
  const auto config = write_config(cli.dir.path, R"([
    {"name": "ok", "command": ["sh", "-c", "echo hello from $JOBREPO_JOB_NAME $GREETING"], "every": "1h",
     "environment": {"GREETING": "hi"}},
    {"name": "fails", "command": ["sh", "-c", "exit 3"], "every": "1h"},
    {"name": "slow", "command": ["sleep", "30"], "every": "1h", "timeout": "500ms"},
    {"name": "progress", "command": ["sh", "-c", "echo progress 2/4; echo progress 3/4"], "every": "1h"},
    {"name": "sleeper", "command": ["sh", "-c", "trap 'touch )" +
                                                     marker.string() + R"(; exit 0' TERM; sleep 60 & wait"],
     "every": "1h", "working_directory": ")" + cli.dir.path.string() +
                                                     R"("},
    {"name": "stubborn", "command": ["sh", "-c", "trap '' TERM; sleep 60"], "every": "1h"}
  ])");
  Process serve({"--db", cli.url, "serve", "--config", config.string(), "--server-id", "node-1"}, cli.dir.path,
                "serve");
  const auto run_of = [&](const std::string& job) {
    const auto runs = cli({"runs", "--job", job, "--json"});
    return runs.status == 0 && !runs.parsed().empty() ? runs.parsed()[0] : json();
  };
  REQUIRE(wait_until(
      [&] {
        const auto s = run_of("slow");
        return !s.is_null() && s["status"] == "failed";
      },
      15s));
  REQUIRE(wait_until([&] { return run_of("progress")["status"] == "completed"; }, 5s));
  CHECK(run_of("ok")["status"] == "completed");
  CHECK(run_of("fails")["status"] == "failed");
  CHECK(run_of("progress")["completed_count"] == 3);
  CHECK(run_of("progress")["total_count"] == 4);
  REQUIRE(wait_until([&] { return run_of("sleeper")["status"] == "running"; }, 5s));

  // Interrupted elsewhere (as a peer would): the command gets SIGTERM.
  const std::string first_sleeper = run_of("sleeper")["private_id"];
  REQUIRE(cli({"interrupt", "--threshold", "0s"}).status == 0);
  CHECK(wait_until([&] { return fs::exists(marker); }, 3s));
  fs::remove(marker);
  // The job is still due: it runs again.
  REQUIRE(wait_until(
      [&] { return run_of("sleeper")["status"] == "running" && run_of("sleeper")["private_id"] != first_sleeper; },
      5s));
  REQUIRE(wait_until([&] { return run_of("stubborn")["status"] == "running"; }, 5s));

  // SIGTERM stops serve: commands get SIGTERM; one that ignores it gets SIGKILL after the 250 ms grace.
  const auto stopping = std::chrono::steady_clock::now();
  kill(serve.pid, SIGTERM);
  const auto result = serve.wait();
  const auto took = std::chrono::steady_clock::now() - stopping;
  CHECK(result.status == 0);
  CHECK(took < 4s);
  CHECK(fs::exists(marker));
  CHECK(run_of("sleeper")["status"] == "interrupted");
  CHECK(run_of("stubborn")["status"] == "interrupted");
  INFO(result.err);
  CHECK(result.out.find("[ok] hello from ok hi") != std::string::npos);
  CHECK(result.err.find("failed fails run") != std::string::npos);
  CHECK(result.err.find("with exit 3") != std::string::npos);
  CHECK(result.err.find("timed out") != std::string::npos);
  CHECK(result.err.find("completed ok run") != std::string::npos);
  CHECK(result.err.find("cancelled sleeper run") != std::string::npos);
  CHECK(result.err.find("stopping on SIGTERM") != std::string::npos);
}

TEST_CASE("cli: two serve processes share the jobs, one server at a time") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "tick-1", "command": ["sh", "-c", "sleep 0.05"], "every": "10ms"},
    {"name": "tick-2", "command": ["sh", "-c", "sleep 0.05"], "every": "10ms"},
    {"name": "tick-3", "command": ["true"], "every": "10ms"},
    {"name": "tick-4", "command": ["true"], "every": "10ms"}
  ])");
  Process a({"--db", cli.url, "serve", "--config", config.string(), "--server-id", "a"}, cli.dir.path, "serve-a");
  Process b({"--db", cli.url, "serve", "--config", config.string(), "--server-id", "b"}, cli.dir.path, "serve-b");
  std::this_thread::sleep_for(6s);
  kill(a.pid, SIGTERM);
  kill(b.pid, SIGTERM);
  CHECK(a.wait().status == 0);
  CHECK(b.wait().status == 0);
  const auto runs = cli({"runs", "--limit", "-1", "--json"}).parsed();
  std::set<std::string> servers;
  for (const auto& run : runs) servers.insert(run["server_id"]);
  CHECK(runs.size() > 20);
  CHECK(servers == std::set<std::string>{"a", "b"});
  const auto audit = cli({"audit", "--json"});
  CHECK(audit.status == 0);
  CHECK(audit.parsed()["overlaps"].empty());
  CHECK(cli({"runs", "--status", "failed", "--json"}).parsed().empty());
}

TEST_CASE("cli: a bad serve config exits 2 naming the field, before touching the database") {
  TempDir dir{"jobrepo-cli"};
  const auto db = dir.path / "untouched.db";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"jobs": []})", "jobs: must be a non-empty array"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "10x"}]})", "jobs[0].every: \"10x\" is not a duration"},
      {R"({"jobs": [{"name": "x", "command": "true", "every": "1s"}]})", "jobs[0].command: must be a non-empty array"},
      {R"({"jobs": [{"name": "x", "command": ["true"]}]})", "jobs[0].every: is missing"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "evry": "1s"}]})", "jobs[0].evry: unknown field"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s"}, {"name": "x", "command": ["true"], "every": "1s"}]})",
       "jobs[1].name: \"x\" is defined twice"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "working_directory": "/no/such/dir"}]})",
       "jobs[0].working_directory"},
      {R"({"worker_threads": 0, "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})", "worker_threads"},
      {R"({"jobs": [)", "not valid JSON"},
      {R"({"jobs": [{"name": "a\u0000b", "command": ["true"], "every": "1s"}]})",
       R"(jobs[0].name: "a\x00b" contains a NUL byte)"},
      {R"({"jobs": [{"name": "x", "description": "d\u0000", "command": ["true"], "every": "1s"}]})",
       "jobs[0].description"},
      {R"({"plugin_id": "p\u0000", "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})", "plugin_id"},
      {R"({"jobs": [{"name": "x", "command": ["true", "a\u0000b"], "every": "1s"}]})", "jobs[0].command[1]"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "every": "2s"}]})",
       "jobs[0].every: appears twice"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s"}], "jobs": []})", "jobs: appears twice"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "environment": {"A": "1", "A": "2"}}]})",
       "jobs[0].environment.A: appears twice"},
      {R"({"worker_threads": 4294967297, "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})",
       "worker_threads: must be an integer from 1 to 1024"},
      {R"({"worker_threads": 1025, "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})",
       "worker_threads: must be an integer from 1 to 1024"},
      {R"({"worker_threads": -1, "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})",
       "worker_threads: must be an integer from 1 to 1024"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "environment": {"A\u0000B": "1"}}]})",
       "jobs[0].environment"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "environment": {"A=B": "1"}}]})",
       "jobs[0].environment"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "environment": {"A": "1\u00002"}}]})",
       "jobs[0].environment.A"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "36526d"}]})",
       "jobs[0].every: \"36526d\" is more than 100 years"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "working_directory": ")" +
           std::string(5000, 'w') + R"("}]})",
       "jobs[0].working_directory"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "working_directory": ")" +
           (dir.path / "loop" / "inside").string() + R"("}]})",
       "jobs[0].working_directory"},
      // Names are counted in characters as the library counts them: 100 two-byte characters are fine
      // (the error is the next job's), 128 are too many.
      {R"({"jobs": [{"name": ")" + repeat_text("\xc3\xa9", 100) +
           R"(", "command": ["true"], "every": "1s"}, {"name": "y", "command": ["true"], "every": "1x"}]})",
       "jobs[1].every"},
      {R"({"jobs": [{"name": ")" + repeat_text("\xc3\xa9", 128) + R"(", "command": ["true"], "every": "1s"}]})",
       "jobs[0].name: \"" + repeat_text("\xc3\xa9", 60) + "...\" has 128 characters, more than 127"},
      {R"({"jobs": [{"name": "   ", "command": ["true"], "every": "1s"}]})", "jobs[0].name: \"   \" is blank"},
  };
  fs::create_symlink(dir.path / "loop", dir.path / "loop");
  for (const auto& [text, expected] : cases) {
    const auto path = dir.path / "bad.json";
    std::ofstream(path) << text;
    const auto result = Process({"--db", "sqlite:" + db.string(), "serve", "--config", path.string()}, dir.path, "bad")
                            .wait_at_most(std::chrono::seconds(20));
    INFO(text << "\n" << result.err);
    CHECK(result.status == 2);
    CHECK(result.err.find(expected) != std::string::npos);
    CHECK(result.err.find("bad.json") != std::string::npos);
  }
  CHECK(!fs::exists(db));
  const auto missing = Process({"serve", "--config", (dir.path / "none.json").string()}, dir.path, "bad").wait();
  CHECK(missing.status == 2);
  CHECK(missing.err.find("cannot read") != std::string::npos);
}

int main(int argc, char* argv[]) { return jobrepo::test::run_on_backend(argc, argv, "cli tests"); }
