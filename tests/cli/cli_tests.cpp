// jobctl, run as a user would: every subcommand (happy path, bad input, JSON
// schema), serve (success, failure, timeout, progress, cancellation, two
// processes, config errors), and --help against docs/cli.md. On SQLite or
// PostgreSQL (JOBREPO_TEST_BACKEND, see ../scheduler/backend.hpp).
#include "cli_support.hpp"

#include <jobrepo/jobrepo.hpp>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
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

const std::set<std::string> job_keys = {
    "plugin_id",     "name",         "description",       "next_scheduled_run",   "due_state",
    "schedule",      "paused",       "run_requested",     "consecutive_failures", "last_status",
    "last_end_time", "last_message", "last_success_time", "requested_payload"};
// jobs and job show add what the cluster knows of each job.
const std::set<std::string> listed_job_keys = [] {
  auto keys = job_keys;
  keys.insert({"running", "servers", "unserved", "drifted"});
  return keys;
}();
const std::set<std::string> run_keys = {"private_id",       "job_plugin_id", "job_name", "server_id",
                                        "create_time",      "update_time",   "end_time", "completed_count",
                                        "total_count",      "status",        "message",  "attempt",
                                        "cancel_requested", "work_end_time", "payload"};

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
  CHECK(from_help.size() == 21);
  CHECK(from_help == from_docs);
  // Each command has its own --help.
  const auto one = cli.bare({"job", "create", "--help"});
  CHECK(one.status == 0);
  CHECK(one.out.find("job create NAME DESCRIPTION") != std::string::npos);
}

TEST_CASE("cli: after a lone -- every word is an argument, so a run id that starts with -- can be named") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  // An id of the run-id alphabet that starts with "--" (a store may make one).
  const std::string id = "--x7GhKq2LmN4pR8sT0vW1y";
  const auto as_option = cli({"run", "show", id});
  CHECK(as_option.status == 2);
  CHECK(as_option.err.find("unknown option") != std::string::npos);
  const auto as_argument = cli({"run", "show", "--", id});
  INFO(as_argument.err);
  CHECK(as_argument.status == 1);
  CHECK(as_argument.err.find("record_not_found") != std::string::npos);
  // Options before the -- still count.
  const auto json_error = cli({"--json", "run", "show", "--", id});
  CHECK(json_error.status == 1);
  CHECK(json_error.parsed()["error"]["code"] == "record_not_found");
}

TEST_CASE("cli: cron next shows fire times in UTC and in the zone, and touches no database") {
  Cli cli;
  const auto berlin = cli.bare(
      {"cron", "next", "30 2 * * *", "--time-zone", "Europe/Berlin", "--from", "2026-03-28T12:00:00Z", "--count", "2"});
  CHECK(berlin.status == 0);
  CHECK(berlin.out ==
        "2026-03-29T01:00:00Z  2026-03-29 03:00:00 CEST (+02:00)\n"
        "2026-03-30T00:30:00Z  2026-03-30 02:30:00 CEST (+02:00)\n");
  // The same instant with an offset; JSON: UTC in whole seconds.
  const auto fall = cli.bare({"cron", "next", "*/15 2 * * *", "--time-zone=Europe/Berlin", "--from",
                              "2026-10-24T14:00:00.250+02:00", "--count", "5", "--json"});
  CHECK(fall.status == 0);
  CHECK(fall.parsed() == json{"2026-10-25T00:00:00Z", "2026-10-25T00:15:00Z", "2026-10-25T00:30:00Z",
                              "2026-10-25T00:45:00Z", "2026-10-26T01:00:00Z"});
  // Defaults: UTC, from now, 5 fire times, each after the one before.
  const auto defaults = cli.bare({"cron", "next", "@hourly", "--json"});
  CHECK(defaults.status == 0);
  const auto times = defaults.parsed();
  REQUIRE(times.size() == 5);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CHECK(std::regex_match(times[i].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:00:00Z)")));
    if (i > 0) CHECK(times[i - 1] < times[i]);
  }
  CHECK(cli.bare({"cron", "next", "0 0 1 1 *", "--from", "2026-06-01T00:00:00-07:00", "--count", "1"}).out ==
        "2027-01-01T00:00:00Z  2027-01-01 00:00:00 UTC (+00:00)\n");
  // The end of what a Timestamp holds.
  const auto last = cli.bare({"cron", "next", "@yearly", "--from", "2261-06-01T00:00:00Z", "--count", "3"});
  CHECK(last.status == 0);
  CHECK(last.out.find("2262-01-01T00:00:00Z  2262-01-01 00:00:00 UTC (+00:00)\n(no later fire time") == 0);
  // --from takes both ends of the range its message names, to the second, and nothing beyond.
  const auto latest = cli.bare({"cron", "next", "* * * * * *", "--from", "2262-04-11T23:47:16Z"});
  CHECK(latest.status == 0);
  CHECK(latest.out == "(no later fire time: jobrepo's times end at 2262-04-11T23:47:16Z)\n");
  const auto earliest = cli.bare({"cron", "next", "*/30 * * * * *", "--from", "1677-09-21T00:12:44Z", "--count", "1"});
  CHECK(earliest.status == 0);
  CHECK(earliest.out == "1677-09-21T00:13:00Z  1677-09-21 00:13:00 UTC (+00:00)\n");
  for (const auto* outside : {"2262-04-11T23:47:17Z", "2262-04-11T23:47:16.000001Z", "2262-04-12T01:47:17+02:00",
                              "1677-09-21T00:12:43Z", "1677-09-21T00:12:43.999999999Z"}) {
    INFO(outside);
    const auto refused = cli.bare({"cron", "next", "@daily", "--from", outside});
    CHECK(refused.status == 2);
    CHECK(refused.err.rfind("jobctl cron next: --from: \"" + std::string(outside) +
                                "\" is outside what jobrepo handles (1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z)\n",
                            0) == 0);
  }

  // No database: an unreadable URL file, a missing SQLite file are not touched.
  const auto no_db = cli.bare({"--db", "sqlite:" + (cli.dir.path / "none.db").string(), "cron", "next", "@daily"},
                              {"JOBREPO_DATABASE_URL_FILE=/nonexistent/url"});
  CHECK(no_db.status == 0);
  CHECK(!fs::exists(cli.dir.path / "none.db"));
  CHECK(cli.bare({"cron", "next", "@daily"}, {"JOBREPO_DATABASE_URL_FILE=/nonexistent/url"}).status == 0);

  // Bad input: exit 2 with the message.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"cron", "next", "61 * * * *"},
       R"(jobctl cron next: cron expression "61 * * * *": minute field "61": 61 is not between 0 and 59)"},
      {{"cron", "next", "@reboot"}, R"(jobctl cron next: cron expression "@reboot": unknown macro)"},
      {{"cron", "next", "0 0 30 2 *"}, R"(jobctl cron next: cron expression "0 0 30 2 *": never fires)"},
      {{"cron", "next", "@daily", "--time-zone", "Mars/Olympus"},
       R"(jobctl cron next: cron time zone "Mars/Olympus": not in the tz database)"},
      {{"cron", "next", "@daily", "--time-zone", "localtime"}, R"(jobctl cron next: cron time zone "localtime")"},
      {{"cron", "next", "@daily", "--from", "2026-03-28T12:00:00"},
       R"(jobctl cron next: --from: "2026-03-28T12:00:00" is not a time with an offset)"},
      {{"cron", "next", "@daily", "--from", "2026-02-29T12:00:00Z"},
       R"(jobctl cron next: --from: "2026-02-29T12:00:00Z" is not a valid date and time)"},
      {{"cron", "next", "@daily", "--from", "now"}, R"(jobctl cron next: --from: "now" is not a time)"},
      {{"cron", "next", "@daily", "--from", "2300-01-01T00:00:00Z"},
       R"(jobctl cron next: --from: "2300-01-01T00:00:00Z" is outside what jobrepo handles)"},
      {{"cron", "next", "@daily", "--count", "0"}, "jobctl cron next: --count: 0 is not between 1 and 1000"},
      {{"cron", "next", "@daily", "--count", "1001"}, "jobctl cron next: --count: 1001 is not between 1 and 1000"},
      {{"cron", "next", "@daily", "--count", "x"}, R"(jobctl cron next: --count: "x" is not an integer)"},
      {{"cron", "next", "0", "3", "*", "*", "*"},
       R"(jobctl cron next: expected 1 argument(s), got 5 (quote the expression: jobctl cron next "0 3 * * *"))"},
      {{"cron", "next"}, "jobctl cron next: expected 1 argument(s), got 0"},
      {{"cron", "next", "@daily", "--limit", "3"}, "jobctl cron next: unknown option --limit"},
  };
  for (const auto& [args, message] : bad) {
    INFO(message);
    const auto result = cli.bare(args);
    CHECK(result.status == 2);
    CHECK(result.out.empty());
    CHECK(result.err.rfind(message, 0) == 0);
  }
  const auto json_bad = cli.bare({"cron", "next", "* * *", "--json"});
  CHECK(json_bad.status == 2);
  CHECK(json_bad.out.empty());
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
  CHECK(keys(listed[0]) == listed_job_keys);
  CHECK(keys(cli({"job", "show", "report", "--json"}).parsed()) == listed_job_keys);
  CHECK(listed[0]["paused"] == false);
  CHECK(listed[0]["running"].is_null());
  CHECK(listed[0]["unserved"] == true);  // no server serves a job made by hand
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

TEST_CASE("cli: job run-now --arg: the next run's arguments, byte for byte, in text and JSON; a bad one exits 2") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "report", "d", "--next-run-in", "1h"}).status == 0);
  // A line break and a tab between tokens, an escape, a two-byte character: kept as given.
  const std::string payload = "{\"day\": \"2026-12-01\",\n\t\"note\": \"caf\xc3\xa9 \\\"q\\\"\"}";
  const auto asked = cli({"job", "run-now", "report", "--arg", payload, "--json"});
  REQUIRE(asked.status == 0);
  CHECK(keys(asked.parsed()) == job_keys);
  CHECK(asked.parsed()["requested_payload"] == payload);
  CHECK(asked.parsed()["run_requested"] == false);
  CHECK(cli({"job", "show", "report", "--json"}).parsed()["requested_payload"] == payload);
  // On one line, by the one visible rule: its backslashes doubled.
  const std::string shown = "{\"day\": \"2026-12-01\",  \"note\": \"caf\xc3\xa9 \\\\\"q\\\\\"\"}";
  CHECK(cli({"job", "show", "report"}).out.find("arguments:    " + shown + " (for its next run)\n") !=
        std::string::npos);
  // Another --arg while it waits: refused, nothing changes; the same one or none keeps it.
  const auto other = cli({"job", "run-now", "report", "--arg", "[2]"});
  CHECK(other.status == 1);
  CHECK(other.err.rfind("jobctl job run-now: job \"report\" in plugin \"pi_system\" already has a run requested with "
                        "other arguments, \"{\\\"day\\\": ",
                        0) == 0);
  CHECK(other.err.find("(invalid_job_run_state)\n") != std::string::npos);
  CHECK(cli({"job", "run-now", "report", "--arg", payload}).status == 0);
  CHECK(cli({"job", "run-now", "report", "--json"}).parsed()["requested_payload"] == payload);

  const auto claimed = cli({"claim", "--server", "s1", "--json"}).parsed();
  REQUIRE(claimed.size() == 1);
  CHECK(keys(claimed[0]) == run_keys);
  CHECK(claimed[0]["payload"] == payload);
  const std::string id = claimed[0]["private_id"];
  CHECK(cli({"job", "show", "report", "--json"}).parsed()["requested_payload"].is_null());
  CHECK(cli({"runs", "--json"}).parsed()[0]["payload"] == payload);
  CHECK(cli({"run", "show", id, "--json"}).parsed()["payload"] == payload);
  CHECK(cli({"run", "show", id}).out.find("\narguments:    " + shown + "\n") != std::string::npos);
  const auto table = cli({"runs"}).out;
  CHECK(table.find("ARGUMENTS") != std::string::npos);
  CHECK(table.find("{\"day\": \"2026-12-01\",  \"note\":... ") != std::string::npos);  // cut after 30 characters
  // A run without arguments: null, "-", no arguments line.
  REQUIRE(cli({"job", "create", "plain", "d"}).status == 0);
  const auto plain = cli({"claim", "--server", "s1", "--json"}).parsed();
  REQUIRE(plain.size() == 1);
  CHECK(plain[0]["payload"].is_null());
  CHECK(cli({"run", "show", plain[0]["private_id"]}).out.find("arguments:") == std::string::npos);
  // Any JSON value: null is the text "null", not the absence of arguments.
  REQUIRE(cli({"run", "complete", id, "--next-run-in", "1h"}).status == 0);
  CHECK(cli({"job", "run-now", "report", "--arg", "null", "--json"}).parsed()["requested_payload"] == "null");

  // Refused by the library's rule: exit 2, nothing on stdout, before the database is opened.
  const std::string largest = "\"" + repeat_text("x", 65534) + "\"";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "jobctl job run-now: --arg is not valid JSON: at the end: expected a string (a key of the object)\n"},
      {"{'a': 1}",
       "jobctl job run-now: --arg is not valid JSON: at byte 2 (\"'a': 1}\"): expected a string (a key of the "
       "object)\n"},
      {"[1,]",
       "jobctl job run-now: --arg is not valid JSON: at byte 4 (\"]\"): expected a value (an object, array, "
       "string, number, true, false or null)\n"},
      {"", "jobctl job run-now: --arg is empty (leave it out for a run without arguments)\n"},
      {largest + " ", "jobctl job run-now: --arg has 65537 bytes, more than 65536\n"},
  };
  for (const auto& [arg, message] : bad) {
    INFO(message);
    const auto refused = cli({"job", "run-now", "plain", "--arg", arg});
    CHECK(refused.status == 2);
    CHECK(refused.out.empty());
    CHECK(refused.err.rfind(message, 0) == 0);
    const auto as_json = cli({"job", "run-now", "plain", "--arg", arg, "--json"});
    CHECK(as_json.status == 2);
    CHECK(as_json.out.empty());
    // No database is opened: one nobody listens on gives the same usage error.
    const auto unreachable =
        cli.bare({"--db", "postgresql://u@127.0.0.1:1/none", "job", "run-now", "plain", "--arg", arg});
    CHECK(unreachable.status == 2);
    CHECK(unreachable.err.rfind(message, 0) == 0);
  }
  CHECK(cli({"job", "show", "plain", "--json"}).parsed()["requested_payload"].is_null());
  // 64 KiB exactly is taken.
  const auto big = cli({"job", "run-now", "plain", "--arg", largest, "--json"});
  CHECK(big.status == 0);
  CHECK(big.parsed()["requested_payload"] == largest);
  CHECK(cli({"job", "run-now", "--arg", "{}"}).status == 2);  // NAME is still required
}

TEST_CASE("cli: jobs and job show say on demand and gave up where no time makes a job due; JSON has due_state") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  {
    // The three states as the library leaves them: a time; never, with no
    // failure (on demand); never after failures (gave up: what a back-off
    // with give_up stores after its last attempt).
    auto store = jobrepo::open_store(cli.url);
    jobrepo::Repository repo(*store);
    const auto at = jobrepo::Timestamp(std::chrono::sys_days{std::chrono::year{2030} / 1 / 2} + 3h + 4min + 5s);
    repo.create_job("timed", "Runs at a time", {.next_run_at = at});
    repo.create_job("asked", "Runs when asked",
                    {.next_run_in = std::chrono::microseconds::max(), .schedule = "on demand"});
    repo.create_job("broken", "Fails every time");
    for (int attempt = 1; attempt <= 3; ++attempt) {
      const auto run = repo.run_jobs("s1").at(0);
      REQUIRE(run.job_name == "broken");
      jobrepo::FailRunOptions failed{.message = "exit 3"};
      if (attempt == 3) failed.retry_in = std::chrono::microseconds::max();
      repo.fail_run(run.private_id, failed);
    }
  }
  const std::vector<std::string> utc = {"TZ=UTC"};  // local times, as the table shows them, in UTC

  std::map<std::string, json> listed;
  for (const auto& job : cli({"jobs", "--json"}).parsed()) listed[job["name"].get<std::string>()] = job;
  REQUIRE(listed.size() == 3);
  for (const auto& [name, job] : listed) CHECK(keys(job) == listed_job_keys);
  CHECK(listed["timed"]["due_state"] == "scheduled");
  CHECK(listed["timed"]["next_scheduled_run"] == "2030-01-02T03:04:05.000000Z");
  CHECK(listed["asked"]["due_state"] == "on_demand");
  CHECK(listed["asked"]["next_scheduled_run"].is_null());
  CHECK(listed["broken"]["due_state"] == "gave_up");
  CHECK(listed["broken"]["next_scheduled_run"].is_null());
  CHECK(listed["broken"]["consecutive_failures"] == 3);
  CHECK(cli({"job", "show", "broken", "--json"}).parsed()["due_state"] == "gave_up");

  const auto table = cli({"jobs"}, utc);
  INFO(table.out);
  REQUIRE(table.status == 0);
  std::map<std::string, std::string> rows;
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);) rows[line.substr(0, line.find(' '))] = line;
  CHECK(std::regex_search(rows["timed"], std::regex(R"(^timed +idle +2030-01-02 03:04:05 \(in \d)")));
  CHECK(std::regex_search(rows["asked"], std::regex(R"(^asked +idle +on demand +- )")));
  CHECK(std::regex_search(rows["broken"], std::regex(R"(^broken +idle +gave up \(3 failures\) +failed )")));
  CHECK(table.out.find("2262") == std::string::npos);  // the time that stands for never is not shown
  const auto show = [&](const std::string& name) { return cli({"job", "show", name}, utc).out; };
  CHECK(show("broken").find("\nnext run:     gave up (3 failures); jobctl job run-now broken retries it\n") !=
        std::string::npos);
  CHECK(show("asked").find("\nnext run:     on demand (jobctl job run-now asked)\n") != std::string::npos);
  CHECK(show("timed").find("\nnext run:     2030-01-02 03:04:05 (in ") != std::string::npos);

  // Paused, it still says what makes it due (resuming it alone runs nothing).
  REQUIRE(cli({"job", "pause", "asked"}).status == 0);
  CHECK(std::regex_search(cli({"jobs"}, utc).out, std::regex(R"(\nasked +paused +on demand +- )")));
  // run-now makes it due now: a time again.
  const auto retried = cli({"job", "run-now", "broken", "--json"}).parsed();
  CHECK(retried["due_state"] == "scheduled");
  CHECK(iso_time(retried["next_scheduled_run"]));
  CHECK(retried["consecutive_failures"] == 3);  // until a run completes
  const auto moved = cli({"job", "next-run", "asked", "1h", "--json"}).parsed();
  CHECK(moved["due_state"] == "scheduled");
  CHECK(cli({"jobs"}, utc).out.find("2262") == std::string::npos);
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
  const auto no_backend = cli.bare({"--db", "oracle://u:hunter2@h/db", "jobs"});
  CHECK(no_backend.status == 1);
  CHECK(no_backend.err.find("(invalid_parameter)") != std::string::npos);
  CHECK(no_backend.err.find("hunter2") == std::string::npos);
  // A MariaDB/MySQL server that is not there: unavailable, the URL shown without its password.
  const auto no_server = cli.bare({"--db", "mysql://u:hunter2@127.0.0.1:1/db", "jobs"});
  CHECK(no_server.status == 1);
  CHECK(no_server.err.find("(unavailable)") != std::string::npos);
  CHECK(no_server.err.find("mysql://u:***@127.0.0.1:1/db") != std::string::npos);
  CHECK(no_server.err.find("hunter2") == std::string::npos);
  // JOBREPO_DATABASE_URL is the default database.
  const auto from_env = cli.bare({"jobs", "--json"}, {"JOBREPO_DATABASE_URL=" + cli.url});
  CHECK(from_env.status == 0);
  CHECK(from_env.parsed().size() == 1);
}

TEST_CASE("cli: a password in a URL never reaches stdout or stderr, whatever its shape") {
  Cli cli;
  // Each holds the password "hunter2" (or pieces of it); port 1 refuses at once.
  const std::vector<std::string> urls = {
      "postgresql://u:hunter2@127.0.0.1:1/db",
      "postgresql://u:hun%zzter2@127.0.0.1:1/db",  // a raw '%'
      "postgresql://u:hun/ter2@127.0.0.1:1/db",    // an unencoded '/'
      "postgresql://u:12/hunter2@127.0.0.1:1/db",
      "postgresql://u:hun@ter2@127.0.0.1:1/db",  // an unencoded '@'
      "postgresql://u@127.0.0.1:1/db?passwor%64=hunter2",
      "postgresql://u@127.0.0.1:1/db?password=hunter2=x",
      "postgresql://u:hunter2@[::1/db",
      "postgresql://u:hunter2@[::1]:1/db",
      "postgresql:u:hunter2@127.0.0.1:1/db",
      "postgres://u:hunter2",
  };
  const auto config =
      jobrepo::test::write_config(cli.dir.path, R"([{"name": "x", "command": ["true"], "every": "1h"}])");
  for (const auto& url : urls) {
    INFO(url);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--db", url, "jobs"}, {"--db", url, "jobs", "--json"}, {"--db", url, "migrate"}}) {
      const auto result = cli.bare(args);
      INFO(result.out << result.err);
      CHECK(result.status == 1);
      for (const auto* piece : {"hunter2", "ter2", "zzter"}) {
        CHECK(result.out.find(piece) == std::string::npos);
        CHECK(result.err.find(piece) == std::string::npos);
      }
    }
    const auto from_env = cli.bare({"jobs", "--json"}, {"JOBREPO_DATABASE_URL=" + url});
    INFO(from_env.out << from_env.err);
    CHECK(from_env.status == 1);
    CHECK(from_env.parsed()["error"]["message"].get<std::string>().find("ter2") == std::string::npos);
    CHECK(from_env.err.find("ter2") == std::string::npos);
    // serve: refused at once, or (unreachable) waiting and logging what it waits for.
    Process serve({"--db", url, "serve", "--config", config.string(), "--server-id", "leak"}, cli.dir.path, "leak");
    const auto served = serve.wait_at_most(1500ms);
    INFO(served.out << served.err);
    CHECK(served.err.find("ter2") == std::string::npos);
    CHECK(served.out.find("ter2") == std::string::npos);
  }
}

namespace {

// Writes `text` to `path` with `mode`.
fs::path write_file(const fs::path& path, const std::string& text, fs::perms mode) {
  std::ofstream(path) << text;
  fs::permissions(path, mode);
  return path;
}

}  // namespace

TEST_CASE("cli: --db-file and JOBREPO_DATABASE_URL_FILE give the URL where ps cannot see it") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "j", "d"}).status == 0);
  const auto owner_only = fs::perms::owner_read | fs::perms::owner_write;
  const auto file = write_file(cli.dir.path / "db-url", cli.url + "\n# the rest is ignored\n", owner_only);
  const auto from_option = cli.bare({"--db-file", file.string(), "jobs", "--json"});
  INFO(from_option.err);
  CHECK(from_option.status == 0);
  CHECK(from_option.parsed().size() == 1);
  const auto from_env = cli.bare({"jobs", "--json"}, {"JOBREPO_DATABASE_URL_FILE=" + file.string()});
  INFO(from_env.err);
  CHECK(from_env.status == 0);
  CHECK(from_env.parsed().size() == 1);
  CHECK(cli.bare({"--db-file=" + file.string(), "job", "show", "j"}).status == 0);

  // Ambiguous or unreadable: usage errors that name the file, never its text.
  CHECK(cli.bare({"--db", cli.url, "--db-file", file.string(), "jobs"}).status == 2);
  CHECK(cli.bare({"jobs"}, {"JOBREPO_DATABASE_URL=" + cli.url, "JOBREPO_DATABASE_URL_FILE=" + file.string()}).status ==
        2);
  const auto missing = cli.bare({"--db-file", (cli.dir.path / "none").string(), "jobs"});
  CHECK(missing.status == 2);
  CHECK(missing.err.find("none") != std::string::npos);
  const auto empty = cli.bare({"--db-file", write_file(cli.dir.path / "empty", "\n", owner_only).string(), "jobs"});
  CHECK(empty.status == 2);
  CHECK(empty.err.find("empty") != std::string::npos);

  // A password in a file others may read: refused (world) or warned about (group).
  const std::string secret = "postgresql://u:hunter2@127.0.0.1:1/db";
  const auto world = write_file(cli.dir.path / "world", secret + "\n", owner_only | fs::perms::others_read);
  for (const auto& result : {cli.bare({"--db-file", world.string(), "jobs"}),
                             cli.bare({"jobs"}, {"JOBREPO_DATABASE_URL_FILE=" + world.string()})}) {
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.err.find(world.string()) != std::string::npos);
    CHECK(result.err.find("chmod 600") != std::string::npos);
    CHECK(result.err.find("hunter2") == std::string::npos);
  }
  const auto group = write_file(cli.dir.path / "group", secret + "\n", owner_only | fs::perms::group_read);
  const auto warned = cli.bare({"--db-file", group.string(), "jobs"});
  INFO(warned.err);
  CHECK(warned.status == 1);  // unreachable, but read
  CHECK(warned.err.find("warning") != std::string::npos);
  CHECK(warned.err.find("hunter2") == std::string::npos);
  // Without a password the file is no secret.
  const auto open_file = write_file(cli.dir.path / "open", cli.url + "\n", owner_only | fs::perms::others_read);
  CHECK(cli.bare({"--db-file", open_file.string(), "jobs"}).status == 0);

  const auto help = cli.bare({"--help"});
  CHECK(help.out.find("--db-file PATH") != std::string::npos);
  CHECK(help.out.find("JOBREPO_DATABASE_URL_FILE") != std::string::npos);
}

TEST_CASE("cli: libpq's own ways to give the password work: a service file, PGPASSFILE") {
  if (!jobrepo::test::scheduler_on_postgres()) return;  // PostgreSQL only
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "j", "d"}).status == 0);
  // The test database's URL, taken apart by libpq.
  std::map<std::string, std::string> parts;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(cli.url.c_str(), &error);
  REQUIRE(options != nullptr);
  for (auto* o = options; o->keyword; ++o) {
    if (o->val) parts[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  const auto owner_only = fs::perms::owner_read | fs::perms::owner_write;
  // A service file names host, port, database, user and password: the URL
  // names only the service, so it works only when libpq reads the file.
  const auto services =
      write_file(cli.dir.path / "pg_service.conf",
                 "[jobrepo]\nhost=" + parts["host"] + "\nport=" + parts["port"] + "\ndbname=" + parts["dbname"] +
                     "\nuser=" + parts["user"] + "\noptions=" + parts["options"] + "\npassword=hunter2\n",
                 owner_only);
  const auto by_service =
      cli.bare({"--db", "postgresql://?service=jobrepo", "jobs", "--json"}, {"PGSERVICEFILE=" + services.string()});
  INFO(by_service.err);
  CHECK(by_service.status == 0);
  CHECK(by_service.parsed().size() == 1);
  const auto by_env = cli.bare({"--db", "postgresql://", "jobs", "--json"},
                               {"PGSERVICEFILE=" + services.string(), "PGSERVICE=jobrepo"});
  CHECK(by_env.status == 0);
  // A password file and PGPASSWORD with a URL that has no password (the test
  // server trusts local logins: this shows the URL needs none, not that
  // libpq sent it).
  const auto passfile = write_file(
      cli.dir.path / "pgpass", parts["host"] + ":" + parts["port"] + ":*:" + parts["user"] + ":hunter2\n", owner_only);
  CHECK(cli({"jobs", "--json"}, {"PGPASSFILE=" + passfile.string()}).status == 0);
  CHECK(cli({"jobs", "--json"}, {"PGPASSWORD=hunter2"}).status == 0);
  const auto bad_service =
      cli.bare({"--db", "postgresql://?service=nosuch", "jobs"}, {"PGSERVICEFILE=" + services.string()});
  CHECK(bad_service.status == 1);
  CHECK(bad_service.err.find("hunter2") == std::string::npos);
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
  if (!jobrepo::test::scheduler_on_sqlite()) return;  // PostgreSQL and MariaDB cannot hold such text
  // SQLite holds what old versions or SQL written by hand stored: printed with U+FFFD.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(cli.url.substr(7).c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "INSERT INTO job (plugin_id, name, description, next_scheduled_run)"
                       " VALUES ('pi_system', CAST(X'726177FF' AS TEXT), CAST(X'64FE' AS TEXT), 0);"
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

TEST_CASE("cli: an option's value that starts with -- is given as --name=VALUE") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "j", "d"}).status == 0);
  const auto claimed = cli({"claim", "--server", "s1", "--json"});
  REQUIRE(claimed.status == 0);
  const std::string id = claimed.parsed()[0]["private_id"];
  const auto failed = cli({"run", "fail", id, "--message=--by-hand", "--json"});
  CHECK(failed.status == 0);
  CHECK(failed.parsed()["message"] == "--by-hand");
  const auto other = cli({"--plugin=--odd", "jobs", "--json"});
  CHECK(other.status == 0);
  CHECK(other.parsed() == json::array());
  // Followed by an option, it is a usage error, whatever comes after.
  const auto forgotten = cli({"jobs", "--plugin", "--json"});
  CHECK(forgotten.status == 2);
  CHECK(forgotten.out.empty());
  CHECK(forgotten.err.rfind("jobctl: option --plugin needs a value (write --plugin=VALUE for a value that starts "
                            "with --)\n",
                            0) == 0);
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

TEST_CASE("cli: prune --job keeps that job's newest final runs and its running run, and no other job's runs go") {
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  for (const auto* name : {"a", "b"}) REQUIRE(cli({"job", "create", name, "d"}).status == 0);
  // Five rounds: a's run completes, b's fails; each due again at once.
  std::vector<std::string> a_runs;
  for (int round = 0; round < 5; ++round) {
    const auto claimed = cli({"claim", "--server", "s1", "--limit", "-1", "--json"}).parsed();
    REQUIRE(claimed.size() == 2);
    for (const auto& run : claimed) {
      const std::string id = run["private_id"];
      if (run["job_name"] == "a") {
        a_runs.push_back(id);
        const auto completed = cli({"run", "complete", id, "--next-run-in", "0s"});
        INFO(completed.err);
        REQUIRE(completed.status == 0);
      } else {
        const auto failed = cli({"run", "fail", id});
        INFO(failed.err);
        REQUIRE(failed.status == 0);
      }
    }
  }
  const auto running = cli({"claim", "--server", "s1", "--limit", "-1", "--json"}).parsed();
  REQUIRE(running.size() == 2);
  REQUIRE(a_runs.size() == 5);

  const auto pruned = cli({"prune", "--job", "a", "--keep", "2", "--json"});
  INFO(pruned.err);
  REQUIRE(pruned.status == 0);
  CHECK(pruned.parsed() == json{{"job", "a"}, {"deleted", 3}});
  const auto left = jobrepo::test::runs_of(cli, "a");  // oldest first
  REQUIRE(left.size() == 3);
  CHECK(left[0]["private_id"] == a_runs[3]);
  CHECK(left[1]["private_id"] == a_runs[4]);
  CHECK(left[2]["status"] == "running");
  CHECK(jobrepo::test::runs_of(cli, "b").size() == 6);
  CHECK(cli({"prune", "--job", "a", "--keep", "2"}).out == "deleted 0 final runs of job a\n");
  // --older-than alone, and both: b's final runs all ended before now.
  CHECK(cli({"prune", "--job", "b", "--keep", "4", "--older-than", "1h", "--json"}).parsed()["deleted"] == 1);
  CHECK(cli({"prune", "--job", "b", "--older-than", "0s"}).out == "deleted 4 final runs of job b\n");
  const auto b_left = jobrepo::test::runs_of(cli, "b");
  REQUIRE(b_left.size() == 1);
  CHECK(b_left[0]["status"] == "running");
  CHECK(jobrepo::test::runs_of(cli, "a").size() == 3);
  const auto unknown = cli({"prune", "--job", "nope", "--keep", "1"});
  CHECK(unknown.status == 1);
  CHECK(unknown.err == "jobctl prune: no job \"nope\" in plugin \"pi_system\" (record_not_found)\n");
  CHECK(cli({"prune", "--keep", "1"}).status == 2);
  CHECK(cli({"--help"}).out.find("prune --older-than D | --job NAME [--keep N] [--older-than D]") != std::string::npos);
}

namespace {

// A config with short intervals; `jobs` is the JSON of the jobs array.
fs::path write_config(const fs::path& dir, const std::string& jobs) { return jobrepo::test::write_config(dir, jobs); }

}  // namespace

TEST_CASE("cli: tables and views show names by the visible rule: one row is one job, one line one field") {
  Cli cli;
  using jobrepo::test::lines_of;
  using jobrepo::test::visible_lines;
  // Text that another database writer may store: line breaks, a forged row,
  // terminal escapes (ESC, the C1 CSI), a backslash.
  const std::string name = "x\n2026-12-07 00:00:00  idle  forged\r\x1b[31m\xc2\x9b\\n";
  const std::string shown = R"(x\n2026-12-07 00:00:00  idle  forged\r\x1b[31m\xc2\x9b\\n)";
  const std::string server = "web\n1\t\x7f";
  const std::string server_shown = R"(web\n1\t\x7f)";
  REQUIRE(cli({"migrate"}).status == 0);
  const auto created = cli({"job", "create", name, "line one\nline two"});
  REQUIRE(created.status == 0);
  CHECK(visible_lines(created.out));
  CHECK(created.out.find("name:         " + shown + "\n") != std::string::npos);
  CHECK(created.out.find(R"(description:  line one\nline two)") != std::string::npos);
  const auto claimed = cli({"claim", "--server", server});
  REQUIRE(claimed.status == 0);
  const auto run_id = cli.last_run(name)["private_id"].get<std::string>();
  // One header and one row, whatever the name holds.
  for (const auto& args : std::vector<std::vector<std::string>>{{"jobs"}, {"runs"}, {"runs", "--job", name}}) {
    const auto table = cli(args);
    INFO(args.front() << ":\n" << table.out);
    REQUIRE(table.status == 0);
    CHECK(visible_lines(table.out));
    CHECK(lines_of(table.out).size() == 2);
    CHECK(table.out.find(shown) != std::string::npos);
    CHECK(table.out.find(server_shown) != std::string::npos);
  }
  CHECK(visible_lines(claimed.out));
  CHECK(lines_of(claimed.out).size() == 2);
  // Views: each line one field ("label:" first), values escaped.
  for (const auto& args : std::vector<std::vector<std::string>>{{"job", "show", name}, {"run", "show", run_id}}) {
    const auto view = cli(args);
    INFO(args.front() << ":\n" << view.out);
    REQUIRE(view.status == 0);
    CHECK(visible_lines(view.out));
    for (const auto& line : lines_of(view.out)) {
      CHECK(std::regex_search(line, std::regex("^(  [^ ]|[a-z ]+: )")));
    }
    CHECK(view.out.find(shown) != std::string::npos);
  }
  const auto cancelled = cli({"run", "cancel", run_id, "--no-wait"});
  CHECK(visible_lines(cancelled.out));
  CHECK(lines_of(cancelled.out).size() == 2);
  const auto interrupted = cli({"interrupt", "--threshold", "0s"});
  CHECK(visible_lines(interrupted.out));
  CHECK(lines_of(interrupted.out).size() == 2);
  // JSON stays JSON: the name as it is.
  CHECK(cli({"jobs", "--json"}).parsed()[0]["name"] == name);
  const auto deleted = cli({"job", "delete", name});
  CHECK(deleted.out == "deleted job " + shown + "\n");
}

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
  // Its runs fail (exit 3); the newest may be its retry, running (the
  // back-off is short): so the failed ones, and none completed.
  CHECK(!cli({"runs", "--job", "fails", "--status", "failed", "--json"}).parsed().empty());
  CHECK(cli({"runs", "--job", "fails", "--status", "completed", "--json"}).parsed().empty());
  CHECK(run_of("progress")["completed_count"] == 3);
  CHECK(run_of("progress")["total_count"] == 4);
  REQUIRE(wait_until([&] { return run_of("sleeper")["status"] == "running"; }, 5s));

  // Interrupted elsewhere (as a peer would): the command gets SIGTERM.
  const std::string first_sleeper = run_of("sleeper")["private_id"];
  // Again until it took: a heartbeat stored in the same instant as the
  // interrupt's clock reading is not older than 0 s, and the call ends nothing.
  REQUIRE(wait_until(
      [&] {
        REQUIRE(cli({"interrupt", "--threshold", "0s"}).status == 0);
        return cli({"run", "show", first_sleeper, "--json"}).parsed()["status"] == "interrupted";
      },
      10s));
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

TEST_CASE("cli: serve does not pass the database URL or password to its commands") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "env", "every": "1h", "command": ["sh", "-c",
      "echo url=${JOBREPO_DATABASE_URL-unset} file=${JOBREPO_DATABASE_URL_FILE-unset} pw=${PGPASSWORD-unset} own=$OWN"],
     "environment": {"OWN": "kept"}},
    {"name": "given", "every": "1h", "command": ["sh", "-c", "echo given=$JOBREPO_DATABASE_URL"],
     "environment": {"JOBREPO_DATABASE_URL": "sqlite:its-own.db"}}
  ])");
  // The URL from the environment, as a service would give it.
  Process serve({"serve", "--config", config.string(), "--server-id", "env"}, cli.dir.path, "serve-env",
                {"JOBREPO_DATABASE_URL=" + cli.url, "PGPASSWORD=hunter2", "JOBREPO_TEST_SERVE=env"});
  REQUIRE(wait_until([&] { return cli.last_run("env")["status"] == "completed"; }, 10s));
  REQUIRE(wait_until([&] { return cli.last_run("given")["status"] == "completed"; }, 5s));
  kill(serve.pid, SIGTERM);
  const auto result = serve.wait();
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(result.out.find("[env] url=unset file=unset pw=unset own=kept") != std::string::npos);
  CHECK(result.out.find("[given] given=sqlite:its-own.db") != std::string::npos);
  CHECK(result.out.find("hunter2") == std::string::npos);
}

namespace {

// Alive, not a zombie (without reaping it: Process::wait() does).
bool running(const Process& process) {
  const std::string stat = slurp("/proc/" + std::to_string(process.pid) + "/stat");
  const auto close = stat.rfind(')');
  return process.pid != 0 && close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

std::size_t count(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("cli: serve waits at start while the database is unavailable, then serves") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([{"name": "hello", "command": ["echo", "hi"], "every": "1h"}])");
  // SQLite: the directory of the database is not there yet (a mount at boot).
  const auto later = cli.dir.path / "later";
  const std::string url = "sqlite:" + (later / "jobs.db").string();
  Process serve({"--db", url, "serve", "--config", config.string(), "--server-id", "wait"}, cli.dir.path, "wait");
  REQUIRE(wait_until([&] { return serve.errors().find("waiting for the database") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(1500ms);
  CHECK(running(serve));
  CHECK(count(serve.errors(), "waiting for the database") == 1);  // said once
  fs::create_directory(later);
  const auto run_of_hello = [&] {
    const auto runs = cli.bare({"--db", url, "runs", "--json"});
    return runs.status == 0 && !runs.parsed().empty() ? runs.parsed()[0] : json();
  };
  CHECK(wait_until([&] { return run_of_hello()["status"] == "completed"; }, 15s));
  kill(serve.pid, SIGTERM);
  const auto result = serve.wait();
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.err.find("the database is ready after") != std::string::npos);
  CHECK(result.err.find("serving 1 job on") != std::string::npos);

  // SIGTERM while waiting stops it at once, cleanly.
  Process waiting({"--db", "sqlite:" + (cli.dir.path / "never" / "jobs.db").string(), "serve", "--config",
                   config.string(), "--server-id", "never"},
                  cli.dir.path, "never");
  REQUIRE(wait_until([&] { return waiting.errors().find("waiting for the database") != std::string::npos; }, 5s));
  kill(waiting.pid, SIGTERM);
  const auto stopped = waiting.wait_at_most(2s);
  INFO(stopped.err);
  CHECK(stopped.status == 0);
  CHECK(stopped.err.find("stopping on SIGTERM") != std::string::npos);

  // Errors that waiting cannot cure still end serve with exit 1.
  const auto bad_url = Process({"--db", "postgresql://u:ab/cd@127.0.0.1:1/db", "serve", "--config", config.string()},
                               cli.dir.path, "bad")
                           .wait_at_most(5s);
  CHECK(bad_url.status == 1);
  CHECK(bad_url.err.find("(invalid_parameter)") != std::string::npos);
}

TEST_CASE("cli: serve waits at start while PostgreSQL is read-only, then serves once it takes writes") {
  if (!jobrepo::test::scheduler_on_postgres()) return;  // PostgreSQL only
  Cli cli;
  REQUIRE(cli({"migrate"}).status == 0);
  const auto name = jobrepo::test::postgres_value(cli.url, "SELECT current_database()");
  const auto server = jobrepo::test::postgres_server_url();
  jobrepo::test::postgres_exec(server, "ALTER DATABASE " + name + " SET default_transaction_read_only = on");
  struct Reset {
    std::string server, name;
    ~Reset() {
      jobrepo::test::postgres_exec(server, "ALTER DATABASE " + name + " RESET default_transaction_read_only");
    }
  } reset{server, name};
  const auto config = write_config(cli.dir.path, R"([{"name": "hello", "command": ["echo", "hi"], "every": "1h"}])");
  auto serve = cli.serve(config, "standby");
  REQUIRE(wait_until([&] { return serve->errors().find("waiting for the database") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(2s);
  CHECK(running(*serve));
  const auto waiting = serve->errors();
  INFO(waiting);
  CHECK(waiting.find("read-only") != std::string::npos);
  CHECK(waiting.find("(unavailable)") != std::string::npos);
  CHECK(count(waiting, "waiting for the database") == 1);
  CHECK(cli.last_run("hello").is_null());

  jobrepo::test::postgres_exec(server, "ALTER DATABASE " + name + " RESET default_transaction_read_only");
  CHECK(wait_until([&] { return cli.last_run("hello")["status"] == "completed"; }, 15s));
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait();
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.out.find("[hello] hi") != std::string::npos);
  CHECK(result.err.find("the database is ready after") != std::string::npos);

  // A database migrated by a newer jobrepo cannot be waited out: exit 1.
  jobrepo::test::postgres_exec(cli.url, "INSERT INTO jobrepo_schema_version (version, name) VALUES (9999, 'future')");
  const auto newer = cli.serve(config, "newer")->wait_at_most(5s);
  CHECK(newer.status == 1);
  CHECK(newer.err.find("(schema_mismatch)") != std::string::npos);
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
  const auto failed = cli({"runs", "--status", "failed", "--json"}).parsed();
  INFO(failed.dump());
  CHECK(failed.empty());
}

TEST_CASE("cli: a bad serve config exits 2 naming the field, before touching the database") {
  TempDir dir{"jobrepo-cli"};
  const auto db = dir.path / "untouched.db";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"jobs": []})", "jobs: must be a non-empty array"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "10x"}]})", "jobs[0].every: \"10x\" is not a duration"},
      {R"({"jobs": [{"name": "x", "command": "true", "every": "1s"}]})", "jobs[0].command: must be a non-empty array"},
      {R"({"jobs": [{"name": "x", "command": ["true"]}]})",
       R"(jobs[0]: needs "every" (a duration) or "cron" (a cron expression), or "on_demand": true)"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "cron": "* * * * *"}]})",
       "jobs[0]: give \"every\" or \"cron\", not both"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "cron": "0 61 * * *"}]})",
       "jobs[0].cron: cron expression \"0 61 * * *\": hour field \"61\""},
      {R"({"jobs": [{"name": "x", "command": ["true"], "cron": "@daily", "time_zone": "Mars/Olympus"}]})",
       "jobs[0].time_zone: cron time zone \"Mars/Olympus\""},
      {R"({"time_zone": "Europe/Berln", "jobs": [{"name": "x", "command": ["true"], "cron": "@daily"}]})",
       "time_zone: cron time zone \"Europe/Berln\""},
      {R"({"jobs": [{"name": "x", "command": ["true"], "cron": "@daily", "misfire": "later"}]})",
       "jobs[0].misfire: \"later\" is not run_once or skip"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1h", "time_zone": "UTC"}]})",
       "jobs[0].time_zone: applies to \"cron\" jobs only"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "evry": "1s"}]})", "jobs[0].evry: unknown field"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s"}, {"name": "x", "command": ["true"], "every": "1s"}]})",
       "jobs[1].name: \"x\" is defined twice"},
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s", "working_directory": "/no/such/dir"}]})",
       "jobs[0].working_directory"},
      {R"({"worker_threads": 0, "jobs": [{"name": "x", "command": ["true"], "every": "1s"}]})", "worker_threads"},
      {R"({"jobs": [)", "not valid JSON"},
      // A number no double holds (found by the config fuzzer: it aborted serve).
      {R"({"jobs": [{"name": "x", "command": ["true"], "every": "1s"}], "n": 888e88887})", "not valid JSON"},
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
