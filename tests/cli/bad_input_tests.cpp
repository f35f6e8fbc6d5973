// Every bad input gets its documented error (docs/architecture.md, "Errors"
// and "Inputs: ranges and text rules"; docs/cli.md): three tables of bad
// inputs, each row with the error code or exit status it must get and a
// fragment of its message, run on SQLite or PostgreSQL (JOBREPO_TEST_BACKEND):
//   1. the library: every Repository method, the Scheduler's options,
//      register_job and run_now, open_store's URLs and StoreOptions;
//   2. jobctl's command line;
//   3. the config files of jobctl serve.
// No error message, stdout or stderr ever holds the test password: on
// PostgreSQL every database URL carries it (the test server trusts local
// logins, so any password connects), and rows with bad PostgreSQL URLs carry
// it on both backends.
#include "cli_support.hpp"
#include "error_of.hpp"

#include <jobrepo/jobrepo.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::literals;
using jobrepo::ErrorCode;
using std::chrono::microseconds;
namespace fs = std::filesystem;

namespace {

using jobrepo::test::Cli;
using jobrepo::test::Process;
using jobrepo::test::TempDir;

// The password of every URL here. It appears nowhere else, so output that
// holds it, or its middle, leaked it.
constexpr std::string_view password = "Pw-7f3kq9Zx";
constexpr std::string_view password_middle = "7f3kq9";

// The rows of each table (at least), so that a table cannot shrink silently.
constexpr std::size_t min_library_rows = 267;
constexpr std::size_t min_cli_rows = 207;
constexpr std::size_t min_config_rows = 170;
static_assert(min_library_rows + min_cli_rows + min_config_rows >= 150);

bool leaks(std::string_view text) {
  return text.find(password) != std::string_view::npos || text.find(password_middle) != std::string_view::npos;
}

// One line of valid UTF-8 without a NUL byte: what every message must be.
bool one_clean_line(std::string_view text) {
  return !jobrepo::encoding_problem(text) && text.find('\n') == std::string_view::npos &&
         text.find('\r') == std::string_view::npos;
}

std::string repeat(std::string_view piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}

// `url` with the password in its user info (PostgreSQL URLs; others as they are).
std::string with_password(const std::string& url) {
  if (url.rfind("postgres", 0) != 0) return url;
  const auto start = url.find("://");
  const auto at = url.find('@');
  REQUIRE(start != std::string::npos);
  REQUIRE(at != std::string::npos);
  REQUIRE(url.find(':', start + 3) > at);  // no password yet
  return url.substr(0, at) + ":" + std::string(password) + url.substr(at);
}

// A PostgreSQL URL with the password, of a server that refuses at once.
std::string refused_url() { return "postgresql://u:" + std::string(password) + "@127.0.0.1:1/db"; }

// PostgreSQL URLs holding the password that libpq could misread: refused
// before libpq sees them, and shown as "postgresql://***".
struct UnclearUrl {
  std::string what, url, reason;
};
std::vector<UnclearUrl> unclear_urls() {
  const std::string pw(password);
  return {
      {"an unencoded '/' in the password", "postgresql://u:" + pw + "/x@127.0.0.1:1/db", "the user info is unclear"},
      {"an unencoded '@' in the password", "postgresql://u:" + pw + "@x@127.0.0.1:1/db", "the user info is unclear"},
      {"a raw '%' in the password", "postgresql://u:" + pw + "%zz@127.0.0.1:1/db", "a '%' is not followed by"},
      {"%00 in the password", "postgresql://u:" + pw + "%00@127.0.0.1:1/db", "a '%' is not followed by"},
      {"an IPv6 host without ']'", "postgresql://u:" + pw + "@[::1/db", "an IPv6 address has no closing ']'"},
      {"a port that is not a number", "postgresql://u:" + pw + "@127.0.0.1:port/db", "a port is not a number"},
      {"only a user and a password", "postgres://u:" + pw, "a port is not a number"},
      {"a database name that is a connection string", "postgresql://u:" + pw + "@127.0.0.1:1/host%3Dx",
       "the database name is itself a connection string"},
      {"a password parameter that is not one key=value pair", "postgresql://u@127.0.0.1:1/db?password=" + pw + "=x",
       "a query parameter is not one key=value pair"},
  };
}

// --- 1. the library ------------------------------------------------------------

struct LibraryRow {
  std::string input;  // "operation: what is bad"
  std::function<void()> call;
  ErrorCode code;
  std::string fragment;  // of the message, which starts with "operation: "
};

std::ostream& operator<<(std::ostream& out, const LibraryRow& row) {
  return out << "library: " << row.input << " -> " << jobrepo::to_string(row.code) << ", \"" << row.fragment << "\"";
}

jobrepo::Store& migrated(jobrepo::Store& store) {
  store.migrate();
  return store;
}

// A fresh database of the backend with a job of each kind and a run in
// each state: running, completed, failed, interrupted.
struct Seeded {
  std::string url;
  std::unique_ptr<jobrepo::Store> store = jobrepo::open_store(url);
  jobrepo::Repository repo{migrated(*store)};
  std::string running, completed, failed, interrupted;

  explicit Seeded(std::string database_url) : url(std::move(database_url)) {
    for (const auto* name : {"idle", "running", "completed", "failed", "interrupted"}) {
      repo.create_job(name, "a job of the bad input tests");
    }
    running = claim("running", "s1");
    completed = claim("completed", "s1");
    repo.complete_run(completed, 1h);
    failed = claim("failed", "s1");
    repo.fail_run(failed, {.retry_in = 1h});
    interrupted = claim("interrupted", "gone");
    REQUIRE(repo.interrupt_runs(0us, {.server_id = "gone"}).size() == 1);
  }

  std::string claim(const std::string& job, const std::string& server) {
    const auto runs = repo.run_jobs(server, {.only_jobs = std::vector<std::string>{job}});
    REQUIRE(runs.size() == 1);
    return runs.front().private_id;
  }
};

// A well-formed run id that no store made.
const std::string unknown_run = "AAAAAAAAAAAAAAAAAAAAAA";

std::shared_ptr<jobrepo::JobHandler> handler(std::string name, std::string description = "d") {
  return jobrepo::make_job(std::move(name), std::move(description), [](jobrepo::JobContext&) { return 1h; });
}

// The error of the last update of a batch (the ones before must succeed).
void last_update_fails(jobrepo::Repository& repo, const std::vector<jobrepo::RunUpdate>& updates) {
  const auto results = repo.update_runs(updates);
  REQUIRE(results.size() == updates.size());
  for (std::size_t i = 0; i + 1 < results.size(); ++i) {
    CHECK(results[i].run.has_value());
    CHECK(!results[i].error.has_value());
  }
  if (results.back().error) throw *results.back().error;
}

std::vector<LibraryRow> library_rows(Seeded& db, jobrepo::Scheduler& scheduler, const fs::path& dir) {
  auto& repo = db.repo;
  auto& store = *db.store;
  constexpr auto ip = ErrorCode::invalid_parameter;
  constexpr auto cc = ErrorCode::check_constraint;
  constexpr auto nf = ErrorCode::record_not_found;
  constexpr auto fin = ErrorCode::invalid_job_run_state;
  const auto max = jobrepo::max_offset;
  const auto over = max + 1us;
  const auto under = -max - 1us;
  const auto huge = microseconds::max();
  const auto tiny = microseconds::min();
  const std::string over_text = std::to_string(over.count()) + "us is out of range (more than 100 years)";
  const std::string under_text = std::to_string(under.count()) + "us is out of range (more than 100 years)";
  const std::string huge_text = std::to_string(huge.count()) + "us is out of range";
  // For a due time, microseconds::max() means never (repository.hpp): one less is out of range.
  const auto almost_max = huge - 1us;
  const std::string almost_max_text = std::to_string(almost_max.count()) + "us is out of range";
  const std::string tiny_text = std::to_string(tiny.count()) + "us is out of range";
  const std::string long_name = repeat("n", 128), long_description = repeat("d", 1024);
  const std::string long_server = repeat("s", 256), long_accented = repeat("\xc3\xa9", 128);
  const std::string nul = "a\0b"s, bad_utf8 = "a\xff", overlong = "\xc0\xaf", surrogate = "\xed\xa0\x80";
  const std::string beyond = "\xf4\x90\x80\x80", cut_short = "a\xc3";
  const std::string payload_over = "\"" + repeat("x", jobrepo::max_payload_bytes - 1) + "\"";  // 65537 bytes
  const std::string nested_65 = repeat("[", 65) + repeat("]", 65);
  const std::string& running = db.running;
  const std::string& completed = db.completed;
  const std::string& failed = db.failed;
  const std::string& interrupted = db.interrupted;
  const auto scheduler_with = [&store](std::function<void(jobrepo::SchedulerOptions&)> change,
                                       std::string server = "s1") {
    return [&store, change = std::move(change), server = std::move(server)] {
      jobrepo::SchedulerOptions options;
      change(options);
      jobrepo::Scheduler unused(server, store, options);
    };
  };
  const auto repository_for = [&store](std::string plugin) {
    return [&store, plugin = std::move(plugin)] { jobrepo::Repository unused(store, {.plugin_id = plugin}); };
  };
  const auto open = [](std::string url, jobrepo::StoreOptions options = {}) {
    return [url = std::move(url), options] { jobrepo::open_store(url, options); };
  };
  const auto update = [&repo](std::vector<jobrepo::RunUpdate> updates) {
    return [&repo, updates = std::move(updates)] { last_update_fails(repo, updates); };
  };
  const std::string sqlite_file = "sqlite:" + (dir / "library.db").string();
  using jobrepo::RunUpdate;
  using jobrepo::Status;

  std::vector<LibraryRow> rows = {
      // RepositoryOptions::plugin_id
      {"Repository: plugin_id empty", repository_for(""), ip, "Repository: plugin_id is missing"},
      {"Repository: plugin_id blank", repository_for("   "), cc, "Repository: plugin_id \"   \" is blank"},
      {"Repository: plugin_id of 128 characters", repository_for(long_name), cc,
       "Repository: plugin_id \"nnn" /* cut */},
      {"Repository: plugin_id of 128 accented characters", repository_for(long_accented), cc,
       "has 128 characters, more than 127"},
      {"Repository: plugin_id with a NUL byte", repository_for(nul), ip,
       "Repository: plugin_id \"a\\x00b\" contains a NUL byte"},
      {"Repository: plugin_id not UTF-8", repository_for(bad_utf8), ip,
       "Repository: plugin_id \"a\\xff\" is not valid UTF-8"},
      {"Repository: plugin_id overlong UTF-8", repository_for(overlong), ip, "\"\\xc0\\xaf\" is not valid UTF-8"},
      {"Repository: plugin_id a UTF-16 surrogate", repository_for(surrogate), ip,
       "\"\\xed\\xa0\\x80\" is not valid UTF-8"},

      // create_job
      {"create_job: name empty", [=, &repo] { repo.create_job("", "d"); }, ip,
       "create_job: name is missing"},
      {"create_job: name blank", [=, &repo] { repo.create_job("  ", "d"); }, cc,
       "create_job: name \"  \" is blank"},
      {"create_job: name of 128 characters", [=, &repo] { repo.create_job(long_name, "d"); }, cc,
       "create_job: name \"" + repeat("n", 60) + "...\" has 128 characters, more than 127"},
      {"create_job: name of 128 accented characters", [=, &repo] { repo.create_job(long_accented, "d"); },
       cc, "create_job: name \"" + repeat("\xc3\xa9", 60) + "...\" has 128 characters"},
      {"create_job: name with a NUL byte", [=, &repo] { repo.create_job(nul, "d"); }, ip,
       "create_job: name \"a\\x00b\" contains a NUL byte"},
      {"create_job: name not UTF-8", [=, &repo] { repo.create_job(bad_utf8, "d"); }, ip,
       "create_job: name \"a\\xff\" is not valid UTF-8"},
      {"create_job: name beyond U+10FFFF", [=, &repo] { repo.create_job(beyond, "d"); }, ip,
       "create_job: name \"\\xf4\\x90\\x80\\x80\" is not valid UTF-8"},
      {"create_job: name with a cut UTF-8 sequence", [=, &repo] { repo.create_job(cut_short, "d"); }, ip,
       "create_job: name \"a\\xc3\" is not valid UTF-8"},
      {"create_job: name with a surrogate", [=, &repo] { repo.create_job(surrogate, "d"); }, ip,
       "create_job: name"},
      {"create_job: description empty", [=, &repo] { repo.create_job("new", ""); }, ip,
       "create_job: description is missing"},
      {"create_job: description blank", [=, &repo] { repo.create_job("new", " "); }, cc,
       "create_job: description \" \" is blank"},
      {"create_job: description of 1024 characters",
       [=, &repo] { repo.create_job("new", long_description); }, cc, "create_job: description \"ddd"},
      {"create_job: description with a NUL byte", [=, &repo] { repo.create_job("new", nul); }, ip,
       "create_job: description \"a\\x00b\" contains a NUL byte"},
      {"create_job: description not UTF-8", [=, &repo] { repo.create_job("new", bad_utf8); }, ip,
       "create_job: description \"a\\xff\" is not valid UTF-8"},
      {"create_job: next_run_in max_offset + 1us",
       [=, &repo] { repo.create_job("new", "d", {.next_run_in = over}); }, ip,
       "create_job: next_run_in " + over_text},
      {"create_job: next_run_in -max_offset - 1us",
       [=, &repo] { repo.create_job("new", "d", {.next_run_in = under}); }, ip,
       "create_job: next_run_in " + under_text},
      {"create_job: next_run_in microseconds::max() - 1us",
       [=, &repo] { repo.create_job("new", "d", {.next_run_in = almost_max}); }, ip,
       "create_job: next_run_in " + almost_max_text},
      {"create_job: next_run_in microseconds::min()",
       [=, &repo] { repo.create_job("new", "d", {.next_run_in = tiny}); }, ip,
       "create_job: next_run_in " + tiny_text},
      {"create_job: an existing name", [=, &repo] { repo.create_job("idle", "d"); }, ErrorCode::not_unique,
       "create_job: job \"idle\" in plugin \"pi_system\": already exists"},
      {"create_job: blank name and NUL description (invalid_parameter first)",
       [=, &repo] { repo.create_job(" ", nul); }, ip,
       "create_job: description \"a\\x00b\" contains a NUL byte"},
      {"create_job: long name and empty description (invalid_parameter first)",
       [=, &repo] { repo.create_job(long_name, ""); }, ip, "create_job: description is missing"},
      {"create_job: existing name, bad next_run_in (invalid_parameter first)",
       [=, &repo] { repo.create_job("idle", "d", {.next_run_in = over}); }, ip, "create_job: next_run_in"},

      // ensure_job
      {"ensure_job: name empty", [=, &repo] { repo.ensure_job("", "d"); }, ip,
       "ensure_job: name is missing"},
      {"ensure_job: name blank", [=, &repo] { repo.ensure_job("   ", "d"); }, cc,
       "ensure_job: name \"   \" is blank"},
      {"ensure_job: name of 128 characters", [=, &repo] { repo.ensure_job(long_name, "d"); }, cc,
       "has 128 characters, more than 127"},
      {"ensure_job: name with a NUL byte", [=, &repo] { repo.ensure_job(nul, "d"); }, ip,
       "ensure_job: name \"a\\x00b\" contains a NUL byte"},
      {"ensure_job: name not UTF-8", [=, &repo] { repo.ensure_job(overlong, "d"); }, ip,
       "ensure_job: name \"\\xc0\\xaf\""},
      {"ensure_job: description of 1024 characters (existing job)",
       [=, &repo] { repo.ensure_job("idle", long_description); }, cc, "ensure_job: description \"ddd"},
      {"ensure_job: description with a NUL byte", [=, &repo] { repo.ensure_job("idle", nul); }, ip,
       "ensure_job: description \"a\\x00b\" contains a NUL byte"},
      {"ensure_job: description empty", [=, &repo] { repo.ensure_job("idle", ""); }, ip,
       "ensure_job: description is missing"},
      {"ensure_job: next_run_in max_offset + 1us",
       [=, &repo] { repo.ensure_job("idle", "d", {.next_run_in = over}); }, ip,
       "ensure_job: next_run_in " + over_text},
      {"ensure_job: next_run_in microseconds::min()",
       [=, &repo] { repo.ensure_job("new", "d", {.next_run_in = tiny}); }, ip,
       "ensure_job: next_run_in " + tiny_text},

      // lookup_job, list_jobs
      {"lookup_job: name empty", [=, &repo] { repo.lookup_job(""); }, ip, "lookup_job: name is missing"},
      {"lookup_job: name with a NUL byte", [=, &repo] { repo.lookup_job(nul); }, ip,
       "lookup_job: name \"a\\x00b\" contains a NUL byte"},
      {"lookup_job: name not UTF-8", [=, &repo] { repo.lookup_job(bad_utf8); }, ip,
       "lookup_job: name \"a\\xff\" is not valid UTF-8"},
      {"list_jobs: name filter with a NUL byte", [=, &repo] { repo.list_jobs({.name = nul}); }, ip,
       "list_jobs: name \"a\\x00b\" contains a NUL byte"},
      {"list_jobs: name filter not UTF-8", [=, &repo] { repo.list_jobs({.name = cut_short}); }, ip,
       "list_jobs: name \"a\\xc3\" is not valid UTF-8"},

      // update_job_next_run
      {"update_job_next_run: name empty", [=, &repo] { repo.update_job_next_run("", 1s); }, ip,
       "update_job_next_run: name is missing"},
      {"update_job_next_run: name with a NUL byte", [=, &repo] { repo.update_job_next_run(nul, 1s); }, ip,
       "update_job_next_run: name \"a\\x00b\" contains a NUL byte"},
      {"update_job_next_run: name not UTF-8", [=, &repo] { repo.update_job_next_run(bad_utf8, 1s); }, ip,
       "update_job_next_run: name \"a\\xff\" is not valid UTF-8"},
      {"update_job_next_run: unknown job", [=, &repo] { repo.update_job_next_run("nope", 1s); }, nf,
       "update_job_next_run: no job \"nope\" in plugin \"pi_system\""},
      {"update_job_next_run: unknown job of 200 characters",
       [=, &repo] { repo.update_job_next_run(repeat("x", 200), 1s); }, nf,
       "update_job_next_run: no job \"xxx"},
      {"update_job_next_run: next_run_in max_offset + 1us",
       [=, &repo] { repo.update_job_next_run("idle", over); }, ip,
       "update_job_next_run: next_run_in " + over_text},
      {"update_job_next_run: next_run_in -max_offset - 1us",
       [=, &repo] { repo.update_job_next_run("idle", under); }, ip,
       "update_job_next_run: next_run_in " + under_text},
      {"update_job_next_run: next_run_in microseconds::max() - 1us",
       [=, &repo] { repo.update_job_next_run("idle", almost_max); }, ip,
       "update_job_next_run: next_run_in " + almost_max_text},
      {"update_job_next_run: next_run_in microseconds::min()",
       [=, &repo] { repo.update_job_next_run("idle", tiny); }, ip,
       "update_job_next_run: next_run_in " + tiny_text},
      {"update_job_next_run: unknown job, bad duration (invalid_parameter first)",
       [=, &repo] { repo.update_job_next_run("nope", over); }, ip, "update_job_next_run: next_run_in"},

      // delete_job
      {"delete_job: name empty", [=, &repo] { repo.delete_job(""); }, ip, "delete_job: name is missing"},
      {"delete_job: name with a NUL byte", [=, &repo] { repo.delete_job("idle\0"s); }, ip,
       "delete_job: name \"idle\\x00\" contains a NUL byte"},
      {"delete_job: name not UTF-8", [=, &repo] { repo.delete_job(surrogate); }, ip,
       "delete_job: name \"\\xed\\xa0\\x80\""},
      {"delete_job: unknown job", [=, &repo] { repo.delete_job("nope"); }, nf,
       "delete_job: no job \"nope\" in plugin \"pi_system\""},

      // run_jobs
      {"run_jobs: server_id empty", [=, &repo] { repo.run_jobs(""); }, ip,
       "run_jobs: server_id is missing"},
      {"run_jobs: server_id blank", [=, &repo] { repo.run_jobs("  "); }, cc,
       "run_jobs: server_id \"  \" is blank"},
      {"run_jobs: server_id of 256 characters", [=, &repo] { repo.run_jobs(long_server); }, cc,
       "has 256 characters, more than 255"},
      {"run_jobs: server_id with a NUL byte", [=, &repo] { repo.run_jobs(nul); }, ip,
       "run_jobs: server_id \"a\\x00b\" contains a NUL byte"},
      {"run_jobs: server_id not UTF-8", [=, &repo] { repo.run_jobs(bad_utf8); }, ip,
       "run_jobs: server_id \"a\\xff\" is not valid UTF-8"},
      {"run_jobs: an only_jobs name empty",
       [=, &repo] {
         repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"idle", ""}});
       },
       ip, "run_jobs: only_jobs name is missing"},
      {"run_jobs: an only_jobs name with a NUL byte",
       [=, &repo] { repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{nul}}); }, ip,
       "run_jobs: only_jobs name \"a\\x00b\" contains a NUL byte"},
      {"run_jobs: an only_jobs name not UTF-8",
       [=, &repo] { repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{bad_utf8}}); }, ip,
       "run_jobs: only_jobs name \"a\\xff\" is not valid UTF-8"},
      {"run_jobs: blank server_id and a NUL only_jobs name (invalid_parameter first)",
       [=, &repo] { repo.run_jobs(" ", {.only_jobs = std::vector<std::string>{nul}}); }, cc,
       "run_jobs: server_id \" \" is blank"},

      // update_progress
      {"update_progress: run id empty", [=, &repo] { repo.update_progress("", 1, 2); }, ip,
       "update_progress: run id is missing"},
      {"update_progress: run id with a space", [=, &repo] { repo.update_progress("abc def", 1, 2); }, ip,
       "update_progress: run id \"abc def\" has characters other than A-Z a-z 0-9 - _"},
      {"update_progress: run id with a '/'", [=, &repo] { repo.update_progress("../etc", 1, 2); }, ip,
       "update_progress: run id \"../etc\" has characters other than"},
      {"update_progress: run id with a quote", [=, &repo] { repo.update_progress("a'b", 1, 2); }, ip,
       "update_progress: run id \"a'b\" has characters other than"},
      {"update_progress: run id with an accent", [=, &repo] { repo.update_progress("caf\xc3\xa9", 1, 2); },
       ip, "update_progress: run id \"caf\xc3\xa9\" has characters other than"},
      {"update_progress: run id with a NUL byte",
       [=, &repo] { repo.update_progress(running + "\0"s, 1, 2); }, ip, "contains a NUL byte"},
      {"update_progress: run id not UTF-8", [=, &repo] { repo.update_progress("run\xff", 1, 2); }, ip,
       "update_progress: run id \"run\\xff\" is not valid UTF-8"},
      {"update_progress: unknown run", [=, &repo] { repo.update_progress(unknown_run, 1, 2); }, nf,
       "update_progress: no run \"" + unknown_run + "\" in plugin \"pi_system\""},
      {"update_progress: completed count negative", [=, &repo] { repo.update_progress(running, -1, 2); },
       cc, "update_progress: run \"" + running + "\": completed count -1 is negative"},
      {"update_progress: total count negative", [=, &repo] { repo.update_progress(running, 0, -2); }, cc,
       "update_progress: run \"" + running + "\": total count -2 is negative"},
      {"update_progress: completed > total", [=, &repo] { repo.update_progress(running, 11, 10); }, cc,
       "update_progress: run \"" + running + "\": completed count 11 exceeds total count 10"},
      {"update_progress: counts of INT64_MIN",
       [=, &repo] {
         repo.update_progress(running, std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::min());
       },
       cc, "completed count -9223372036854775808 is negative"},
      {"update_progress: a completed run", [=, &repo] { repo.update_progress(completed, 1, 2); }, fin,
       "update_progress: run \"" + completed + "\" is already completed"},
      {"update_progress: a failed run", [=, &repo] { repo.update_progress(failed, 1, 2); }, fin,
       "update_progress: run \"" + failed + "\" is already failed"},
      {"update_progress: an interrupted run", [=, &repo] { repo.update_progress(interrupted, 1, 2); }, fin,
       "update_progress: run \"" + interrupted + "\" is already interrupted"},
      {"update_progress: unknown run, bad counts (record_not_found first)",
       [=, &repo] { repo.update_progress(unknown_run, 5, 1); }, nf, "update_progress: no run"},
      {"update_progress: completed run, bad counts (invalid_job_run_state first)",
       [=, &repo] { repo.update_progress(completed, -1, -1); }, fin, "is already completed"},
      {"update_progress: bad id, bad counts (invalid_parameter first)",
       [=, &repo] { repo.update_progress("a b", -1, -1); }, ip, "update_progress: run id \"a b\""},

      // complete_run
      {"complete_run: run id empty", [=, &repo] { repo.complete_run("", 1s); }, ip,
       "complete_run: run id is missing"},
      {"complete_run: run id with a '.'", [=, &repo] { repo.complete_run("a.b", 1s); }, ip,
       "complete_run: run id \"a.b\" has characters other than"},
      {"complete_run: run id with a newline", [=, &repo] { repo.complete_run("a\nb", 1s); }, ip,
       "complete_run: run id \"a\\nb\" has characters other than"},
      {"complete_run: unknown run", [=, &repo] { repo.complete_run(unknown_run, 1s); }, nf,
       "complete_run: no run \"" + unknown_run + "\""},
      {"complete_run: a completed run", [=, &repo] { repo.complete_run(completed, 1s); }, fin,
       "complete_run: run \"" + completed + "\" is already completed"},
      {"complete_run: a failed run", [=, &repo] { repo.complete_run(failed, 1s); }, fin,
       "complete_run: run \"" + failed + "\" is already failed"},
      {"complete_run: an interrupted run", [=, &repo] { repo.complete_run(interrupted, 1s); }, fin,
       "complete_run: run \"" + interrupted + "\" is already interrupted"},
      {"complete_run: next_run_in max_offset + 1us", [=, &repo] { repo.complete_run(running, over); }, ip,
       "complete_run: next_run_in " + over_text},
      {"complete_run: next_run_in -max_offset - 1us", [=, &repo] { repo.complete_run(running, under); }, ip,
       "complete_run: next_run_in " + under_text},
      {"complete_run: next_run_in microseconds::max() - 1us",
       [=, &repo] { repo.complete_run(running, almost_max); }, ip,
       "complete_run: next_run_in " + almost_max_text},
      {"complete_run: next_run_in microseconds::min()", [=, &repo] { repo.complete_run(running, tiny); },
       ip, "complete_run: next_run_in " + tiny_text},
      {"complete_run: unknown run, bad duration (invalid_parameter first)",
       [=, &repo] { repo.complete_run(unknown_run, over); }, ip, "complete_run: next_run_in"},
      {"complete_run: final run, bad duration (invalid_parameter first)",
       [=, &repo] { repo.complete_run(completed, tiny); }, ip, "complete_run: next_run_in"},

      // fail_run
      {"fail_run: run id empty", [=, &repo] { repo.fail_run(""); }, ip, "fail_run: run id is missing"},
      {"fail_run: run id with a '+'", [=, &repo] { repo.fail_run("a+b"); }, ip,
       "fail_run: run id \"a+b\" has characters other than"},
      {"fail_run: run id not UTF-8", [=, &repo] { repo.fail_run("\xfe"); }, ip,
       "fail_run: run id \"\\xfe\" is not valid"},
      {"fail_run: unknown run", [=, &repo] { repo.fail_run(unknown_run); }, nf,
       "fail_run: no run \"" + unknown_run + "\""},
      {"fail_run: a completed run", [=, &repo] { repo.fail_run(completed); }, fin,
       "fail_run: run \"" + completed + "\" is already completed"},
      {"fail_run: a failed run", [=, &repo] { repo.fail_run(failed); }, fin,
       "fail_run: run \"" + failed + "\" is already failed"},
      {"fail_run: an interrupted run", [=, &repo] { repo.fail_run(interrupted); }, fin,
       "fail_run: run \"" + interrupted + "\" is already interrupted"},
      {"fail_run: retry_in max_offset + 1us", [=, &repo] { repo.fail_run(running, {.retry_in = over}); },
       ip, "fail_run: retry_in " + over_text},
      {"fail_run: retry_in -max_offset - 1us", [=, &repo] { repo.fail_run(running, {.retry_in = under}); },
       ip, "fail_run: retry_in " + under_text},
      {"fail_run: retry_in microseconds::max() - 1us",
       [=, &repo] { repo.fail_run(running, {.retry_in = almost_max}); }, ip,
       "fail_run: retry_in " + almost_max_text},
      {"fail_run: retry_in microseconds::min()", [=, &repo] { repo.fail_run(running, {.retry_in = tiny}); },
       ip, "fail_run: retry_in " + tiny_text},
      {"fail_run: failed run, bad retry_in (invalid_parameter first)",
       [=, &repo] { repo.fail_run(failed, {.retry_in = over}); }, ip, "fail_run: retry_in"},

      // update_runs: each update gets the error its single call would have
      {"update_runs: run id empty", update({RunUpdate{.run_id = ""}}), ip, "update_runs: run id is missing"},
      {"update_runs: run id with a space", update({RunUpdate{.run_id = "a b"}}), ip,
       "update_runs: run id \"a b\" has characters other than"},
      {"update_runs: run id with a NUL byte", update({RunUpdate{.run_id = nul}}), ip,
       "update_runs: run id \"a\\x00b\" contains a NUL byte"},
      {"update_runs: unknown run", update({RunUpdate{.run_id = unknown_run}}), nf,
       "update_runs: no run \"" + unknown_run + "\""},
      {"update_runs: completion of a completed run",
       update({RunUpdate{.run_id = completed, .status = Status::completed}}), fin,
       "update_runs: run \"" + completed + "\" is already completed"},
      {"update_runs: heartbeat of a failed run", update({RunUpdate{.run_id = failed}}), fin,
       "update_runs: run \"" + failed + "\" is already failed"},
      {"update_runs: failure of an interrupted run",
       update({RunUpdate{.run_id = interrupted, .status = Status::failed}}), fin,
       "update_runs: run \"" + interrupted + "\" is already interrupted"},
      {"update_runs: status out of the enum", update({RunUpdate{.run_id = running, .status = static_cast<Status>(9)}}),
       ip, "update_runs: run \"" + running + "\": status unknown is not running, completed, failed or interrupted"},
      {"update_runs: only one count", update({RunUpdate{.run_id = running, .completed_count = 1}}), ip,
       "update_runs: run \"" + running + "\": give both counts or neither"},
      {"update_runs: negative count", update({RunUpdate{.run_id = running, .completed_count = -1, .total_count = 1}}),
       cc, "update_runs: run \"" + running + "\": completed count -1 is negative"},
      {"update_runs: completed > total", update({RunUpdate{.run_id = running, .completed_count = 3, .total_count = 2}}),
       cc, "update_runs: run \"" + running + "\": completed count 3 exceeds total count 2"},
      {"update_runs: next_run_in max_offset + 1us",
       update({RunUpdate{.run_id = running, .status = Status::completed, .next_run_in = over}}), ip,
       "update_runs: run \"" + running + "\": next_run_in " + over_text},
      {"update_runs: next_run_in microseconds::min()",
       update({RunUpdate{.run_id = running, .status = Status::failed, .next_run_in = tiny}}), ip,
       "next_run_in " + tiny_text},
      {"update_runs: unknown run, bad counts (record_not_found first)",
       update({RunUpdate{.run_id = unknown_run, .completed_count = -1, .total_count = 1}}), nf, "update_runs: no run"},
      {"update_runs: final run, bad counts (invalid_job_run_state first)",
       update({RunUpdate{.run_id = completed, .completed_count = 2, .total_count = 1}}), fin, "is already completed"},
      {"update_runs: a heartbeat, then an unknown run",
       update({RunUpdate{.run_id = running}, RunUpdate{.run_id = unknown_run, .status = Status::completed}}), nf,
       "update_runs: no run \"" + unknown_run + "\""},
      {"update_runs: a heartbeat, then bad counts",
       update({RunUpdate{.run_id = running}, RunUpdate{.run_id = running, .completed_count = 5, .total_count = 4}}), cc,
       "completed count 5 exceeds total count 4"},

      // interrupt_runs
      {"interrupt_runs: threshold -1us", [=, &repo] { repo.interrupt_runs(-1us); }, ip,
       "interrupt_runs: threshold -1us is negative"},
      {"interrupt_runs: threshold max_offset + 1us", [=, &repo] { repo.interrupt_runs(over); }, ip,
       "interrupt_runs: threshold " + over_text},
      {"interrupt_runs: threshold microseconds::max()", [=, &repo] { repo.interrupt_runs(huge); }, ip,
       "interrupt_runs: threshold " + huge_text},
      {"interrupt_runs: threshold microseconds::min()", [=, &repo] { repo.interrupt_runs(tiny); }, ip,
       "interrupt_runs: threshold " + std::to_string(tiny.count()) + "us is negative"},
      {"interrupt_runs: server_id filter with a NUL byte",
       [=, &repo] { repo.interrupt_runs(1h, {.server_id = nul}); }, ip,
       "interrupt_runs: server_id \"a\\x00b\" contains a NUL byte"},
      {"interrupt_runs: server_id filter not UTF-8",
       [=, &repo] { repo.interrupt_runs(1h, {.server_id = bad_utf8}); }, ip,
       "interrupt_runs: server_id \"a\\xff\" is not valid UTF-8"},

      {"interrupt_runs: an observed run id with a '%'",
       [=, &repo] {
         repo.interrupt_runs(1h, {.runs = std::vector<jobrepo::ObservedRun>{{"a%20b", jobrepo::Timestamp{}}}});
       },
       ip, "interrupt_runs: run id \"a%20b\" has characters other than"},

      // record_server, record_work_end
      {"record_server: instance empty",
       [=, &repo] { repo.record_server("s", 1min, {.instance = ""}); }, ip,
       "record_server: instance is missing"},
      {"record_server: instance of 256 characters",
       [=, &repo] { repo.record_server("s", 1min, {.instance = std::string(256, 'i')}); }, cc,
       "record_server: instance \"iii"},
      {"record_server: address not UTF-8",
       [=, &repo] { repo.record_server("s", 1min, {.instance = "i", .address = bad_utf8}); }, ip,
       "record_server: address \"a\\xff\" is not valid UTF-8"},
      {"record_server: address of 256 characters",
       [=, &repo] { repo.record_server("s", 1min, {.instance = "i", .address = std::string(256, 'a')}); },
       cc, "record_server: address \"aaa"},
      {"record_work_end: unknown run", [=, &repo] { repo.record_work_end(unknown_run, jobrepo::Clock::now()); },
       nf, "record_work_end: no run \"" + unknown_run + "\""},
      {"record_work_end: ended before 1970",
       [=, &repo] { repo.record_work_end(running, jobrepo::Timestamp{} - 1s); }, ip,
       "record_work_end: ended -1000000us since the epoch is out of range"},

      // lookup_run, list_runs, prune_runs
      {"lookup_run: run id empty", [=, &repo] { repo.lookup_run(""); }, ip,
       "lookup_run: run id is missing"},
      {"lookup_run: run id with a '%'", [=, &repo] { repo.lookup_run("a%20b"); }, ip,
       "lookup_run: run id \"a%20b\" has characters other than"},
      {"lookup_run: run id with a NUL byte", [=, &repo] { repo.lookup_run(nul); }, ip,
       "lookup_run: run id \"a\\x00b\" contains a NUL byte"},
      {"lookup_run: run id not UTF-8", [=, &repo] { repo.lookup_run(bad_utf8); }, ip,
       "lookup_run: run id \"a\\xff\" is not valid UTF-8"},
      {"list_runs: job_name filter with a NUL byte", [=, &repo] { repo.list_runs({.job_name = nul}); }, ip,
       "list_runs: job_name \"a\\x00b\" contains a NUL byte"},
      {"list_runs: job_name filter not UTF-8", [=, &repo] { repo.list_runs({.job_name = overlong}); }, ip,
       "list_runs: job_name \"\\xc0\\xaf\" is not valid UTF-8"},
      {"prune_runs: older_than -1us", [=, &repo] { repo.prune_runs(-1us); }, ip,
       "prune_runs: older_than -1us is negative"},
      {"prune_runs: older_than max_offset + 1us", [=, &repo] { repo.prune_runs(over); }, ip,
       "prune_runs: older_than " + over_text},
      {"prune_runs: older_than microseconds::max()", [=, &repo] { repo.prune_runs(huge); }, ip,
       "prune_runs: older_than " + huge_text},
      {"prune_runs: older_than microseconds::min()", [=, &repo] { repo.prune_runs(tiny); }, ip,
       "prune_runs: older_than " + std::to_string(tiny.count()) + "us is negative"},

      // prune_job_runs
      {"prune_job_runs: name empty", [=, &repo] { repo.prune_job_runs("", {.keep_last = 1}); }, ip,
       "prune_job_runs: name is missing"},
      {"prune_job_runs: name with a NUL byte", [=, &repo] { repo.prune_job_runs(nul, {.keep_last = 1}); }, ip,
       "prune_job_runs: name \"a\\x00b\" contains a NUL byte"},
      {"prune_job_runs: name not UTF-8", [=, &repo] { repo.prune_job_runs(bad_utf8, {.keep_last = 1}); }, ip,
       "prune_job_runs: name \"a\\xff\" is not valid UTF-8"},
      {"prune_job_runs: unknown job", [=, &repo] { repo.prune_job_runs("nope", {.keep_last = 1}); }, nf,
       "prune_job_runs: no job \"nope\" in plugin \"pi_system\""},
      {"prune_job_runs: unknown job, no rule", [=, &repo] { repo.prune_job_runs("nope", {}); }, nf,
       "prune_job_runs: no job \"nope\" in plugin \"pi_system\""},
      {"prune_job_runs: keep_last 0", [=, &repo] { repo.prune_job_runs("completed", {.keep_last = 0}); }, ip,
       "prune_job_runs: keep_last 0 is less than 1"},
      {"prune_job_runs: keep_last INT64_MIN",
       [=, &repo] { repo.prune_job_runs("completed", {.keep_last = std::numeric_limits<std::int64_t>::min()}); }, ip,
       "prune_job_runs: keep_last -9223372036854775808 is less than 1"},
      {"prune_job_runs: older_than -1us", [=, &repo] { repo.prune_job_runs("completed", {.older_than = -1us}); }, ip,
       "prune_job_runs: older_than -1us is negative"},
      {"prune_job_runs: older_than max_offset + 1us",
       [=, &repo] { repo.prune_job_runs("completed", {.older_than = over}); }, ip,
       "prune_job_runs: older_than " + over_text},
      {"prune_job_runs: older_than microseconds::max()",
       [=, &repo] { repo.prune_job_runs("completed", {.older_than = huge}); }, ip,
       "prune_job_runs: older_than " + huge_text},
      {"prune_job_runs: older_than microseconds::min()",
       [=, &repo] { repo.prune_job_runs("completed", {.older_than = tiny}); }, ip,
       "prune_job_runs: older_than " + std::to_string(tiny.count()) + "us is negative"},
      {"prune_job_runs: limit -1", [=, &repo] { repo.prune_job_runs("completed", {.keep_last = 1, .limit = -1}); },
       ip, "prune_job_runs: limit -1 is out of range (1 to 10000, or 0 for 10000)"},
      {"prune_job_runs: limit 10001",
       [=, &repo] { repo.prune_job_runs("completed", {.keep_last = 1, .limit = 10001}); }, ip,
       "prune_job_runs: limit 10001 is out of range"},
      {"prune_job_runs: unknown job, keep_last 0 (invalid_parameter first)",
       [=, &repo] { repo.prune_job_runs("nope", {.keep_last = 0}); }, ip, "prune_job_runs: keep_last 0"},

      // Scheduler: server id and options
      {"Scheduler: server_id empty", scheduler_with([](auto&) {}, ""), ip, "Scheduler: server_id is missing"},
      {"Scheduler: server_id blank", scheduler_with([](auto&) {}, "   "), cc, "Scheduler: server_id \"   \" is blank"},
      {"Scheduler: server_id of 256 characters", scheduler_with([](auto&) {}, long_server), cc,
       "Scheduler: server_id \"sss"},
      {"Scheduler: server_id with a NUL byte", scheduler_with([](auto&) {}, nul), ip,
       "Scheduler: server_id \"a\\x00b\" contains a NUL byte"},
      {"Scheduler: server_id not UTF-8", scheduler_with([](auto&) {}, bad_utf8), ip,
       "Scheduler: server_id \"a\\xff\" is not valid UTF-8"},
      {"Scheduler: plugin_id empty", scheduler_with([](auto& o) { o.plugin_id = ""; }), ip,
       "Scheduler: plugin_id is missing"},
      {"Scheduler: plugin_id of 128 characters", scheduler_with([=](auto& o) { o.plugin_id = long_name; }), cc,
       "Scheduler: plugin_id \"nnn"},
      {"Scheduler: plugin_id with a NUL byte", scheduler_with([=](auto& o) { o.plugin_id = nul; }), ip,
       "Scheduler: plugin_id \"a\\x00b\" contains a NUL byte"},
      {"Scheduler: worker_threads 0", scheduler_with([](auto& o) { o.worker_threads = 0; }), ip,
       "Scheduler: worker_threads 0 is less than 1"},
      {"Scheduler: worker_threads INT_MIN",
       scheduler_with([](auto& o) { o.worker_threads = std::numeric_limits<int>::min(); }), ip,
       "Scheduler: worker_threads -2147483648 is less than 1"},
      {"Scheduler: claim_interval 0", scheduler_with([](auto& o) { o.claim_interval = 0us; }), ip,
       "Scheduler: claim_interval 0ms must be positive"},
      {"Scheduler: claim_interval beyond 100 years", scheduler_with([=](auto& o) { o.claim_interval = over; }), ip,
       "Scheduler: claim_interval 3155760000.000001s is more than 100 years"},
      {"Scheduler: claim_interval microseconds::min()", scheduler_with([=](auto& o) { o.claim_interval = tiny; }), ip,
       "Scheduler: claim_interval -9223372036854.775808s must be positive"},
      {"Scheduler: monitor_interval -1us", scheduler_with([](auto& o) { o.monitor_interval = -1us; }), ip,
       "Scheduler: monitor_interval -1us must be positive"},
      {"Scheduler: interrupt_threshold 0", scheduler_with([](auto& o) { o.interrupt_threshold = 0us; }), ip,
       "Scheduler: interrupt_threshold 0ms must be positive"},
      {"Scheduler: interrupt_threshold microseconds::max()",
       scheduler_with([=](auto& o) { o.interrupt_threshold = huge; }), ip,
       "Scheduler: interrupt_threshold 9223372036854.775807s is more than 100 years"},
      {"Scheduler: claim_limit -1", scheduler_with([](auto& o) { o.claim_limit = -1; }), ip,
       "Scheduler: claim_limit -1 is negative"},
      {"Scheduler: stop_timeout -1ms", scheduler_with([](auto& o) { o.stop_timeout = -1ms; }), ip,
       "Scheduler: stop_timeout -1ms is negative"},
      {"Scheduler: stop_timeout beyond 100 years", scheduler_with([=](auto& o) { o.stop_timeout = over; }), ip,
       "Scheduler: stop_timeout 3155760000.000001s is more than 100 years"},
      {"Scheduler: backoff.initial -1s", scheduler_with([](auto& o) { o.backoff.initial = -1s; }), ip,
       "Scheduler: backoff.initial -1s is not between 0 and 100 years"},
      {"Scheduler: backoff.max below backoff.initial",
       scheduler_with([](auto& o) { o.backoff.initial = 2s, o.backoff.max = 1s; }), ip,
       "Scheduler: backoff.max 1s is not between backoff.initial and 100 years"},
      {"Scheduler: backoff.max beyond 100 years", scheduler_with([=](auto& o) { o.backoff.max = huge; }), ip,
       "Scheduler: backoff.max 9223372036854.775807s is not between"},
      {"Scheduler: backoff.multiplier 0.5", scheduler_with([](auto& o) { o.backoff.multiplier = 0.5; }), ip,
       "Scheduler: backoff.multiplier 0.500000 is not between 1 and 1000"},
      {"Scheduler: backoff.multiplier NaN",
       scheduler_with([](auto& o) { o.backoff.multiplier = std::numeric_limits<double>::quiet_NaN(); }), ip,
       "Scheduler: backoff.multiplier nan is not between 1 and 1000"},
      {"Scheduler: backoff.multiplier infinite",
       scheduler_with([](auto& o) { o.backoff.multiplier = std::numeric_limits<double>::infinity(); }), ip,
       "Scheduler: backoff.multiplier inf is not between 1 and 1000"},
      {"Scheduler: backoff.jitter 1", scheduler_with([](auto& o) { o.backoff.jitter = 1.0; }), ip,
       "Scheduler: backoff.jitter 1.000000 is not in [0, 1)"},
      {"Scheduler: backoff.jitter -0.1", scheduler_with([](auto& o) { o.backoff.jitter = -0.1; }), ip,
       "Scheduler: backoff.jitter -0.100000 is not in [0, 1)"},
      {"Scheduler: grace microseconds::max()", scheduler_with([=](auto& o) { o.grace = huge; }), ip,
       "Scheduler: grace 9223372036854.775807s is more than 100 years"},
      {"Scheduler: backoff.initial beyond 100 years", scheduler_with([=](auto& o) { o.backoff.initial = over; }), ip,
       "Scheduler: backoff.initial 3155760000.000001s is not between 0 and 100 years"},
      {"Scheduler: backoff.give_up without max_attempts", scheduler_with([](auto& o) { o.backoff.give_up = true; }), ip,
       "Scheduler: backoff.give_up needs max_attempts (the failures in a row after which the job gives up)"},
      {"Scheduler: monitor_interval microseconds::max()", scheduler_with([=](auto& o) { o.monitor_interval = huge; }),
       ip, "Scheduler: monitor_interval 9223372036854.775807s is more than 100 years"},
      {"Scheduler: grace -1ms", scheduler_with([](auto& o) { o.grace = -1ms; }), ip,
       "Scheduler: grace -1ms must not be negative"},
      {"Scheduler: monitor_interval above a quarter of interrupt_threshold",
       scheduler_with([](auto& o) { o.monitor_interval = 7501ms; }), ip,
       "Scheduler: monitor_interval 7.501s must be at most a quarter of interrupt_threshold 30s"},
      {"Scheduler: grace breaks the fence rule",
       scheduler_with([](auto& o) { o.interrupt_threshold = 4s, o.grace = 5s; }), ip,
       "Scheduler: grace 5s does not fit in interrupt_threshold 4s"},
      {"Scheduler: grace just breaks the fence rule (3/4 T + 100ms + grace + 100ms = T)",
       scheduler_with([](auto& o) { o.interrupt_threshold = 2s, o.monitor_interval = 250ms, o.grace = 300ms; }), ip,
       "Scheduler: grace 300ms does not fit in interrupt_threshold 2s"},

      // register_job and run_now
      {"register_job: no handler", [=, &scheduler] { scheduler.register_job(nullptr); }, ip,
       "register_job: missing handler"},
      {"register_job: timeout -1us",
       [=, &scheduler] { scheduler.register_job(handler("t"), {.timeout = -1us}); }, ip,
       "register_job: \"t\": timeout -1us is not between 0 and 100 years"},
      {"register_job: timeout beyond 100 years",
       [=, &scheduler] { scheduler.register_job(handler("t"), {.timeout = over}); }, ip,
       "register_job: \"t\": timeout 3155760000.000001s is not between 0 and 100 years"},
      {"register_job: timeout microseconds::min()",
       [=, &scheduler] { scheduler.register_job(handler("t"), {.timeout = tiny}); }, ip,
       "register_job: \"t\": timeout -9223372036854.775808s is not between 0 and 100 years"},
      {"register_job: a name registered here already",
       [=, &scheduler] { scheduler.register_job(handler("registered")); }, ip,
       "register_job: \"registered\" is registered already"},
      {"register_job: name empty", [=, &scheduler] { scheduler.register_job(handler("")); }, ip,
       "register_job: name is missing"},
      {"register_job: name blank", [=, &scheduler] { scheduler.register_job(handler("  ")); }, cc,
       "register_job: name \"  \" is blank"},
      {"register_job: name of 128 characters", [=, &scheduler] { scheduler.register_job(handler(long_name)); },
       cc, "register_job: name \"nnn"},
      {"register_job: name with a NUL byte", [=, &scheduler] { scheduler.register_job(handler(nul)); }, ip,
       "register_job: name \"a\\x00b\" contains a NUL byte"},
      {"register_job: name not UTF-8", [=, &scheduler] { scheduler.register_job(handler(bad_utf8)); }, ip,
       "register_job: name \"a\\xff\" is not valid UTF-8"},
      {"register_job: description blank", [=, &scheduler] { scheduler.register_job(handler("t", " ")); }, cc,
       "register_job: description \" \" is blank"},
      {"register_job: description of 1024 characters",
       [=, &scheduler] { scheduler.register_job(handler("t", long_description)); }, cc,
       "register_job: description \"ddd"},
      {"register_job: description empty, replacing",
       [=, &scheduler] { scheduler.register_job(handler("registered", ""), {.replace = true}); }, ip,
       "register_job: description is missing"},
      {"register_job: next_run_in beyond 100 years",
       [=, &scheduler] { scheduler.register_job(handler("t"), {.next_run_in = over}); }, ip,
       "register_job: next_run_in " + over_text},
      {"register_job: next_run_in microseconds::min()",
       [=, &scheduler] { scheduler.register_job(handler("t"), {.next_run_in = tiny}); }, ip,
       "register_job: next_run_in " + tiny_text},
      {"register_job: NUL name and a bad timeout",
       [=, &scheduler] { scheduler.register_job(handler(nul), {.timeout = -1s}); }, ip,
       "register_job: \"a\\x00b\": timeout -1s"},
      {"run_now: unknown job", [=, &scheduler] { scheduler.run_now("nope"); }, nf,
       "run_now: no job \"nope\" in plugin \"pi_system\""},
      {"run_now: name empty", [=, &scheduler] { scheduler.run_now(""); }, ip, "run_now: name is missing"},
      {"run_now: name with a NUL byte", [=, &scheduler] { scheduler.run_now(nul); }, ip,
       "run_now: name \"a\\x00b\" contains a NUL byte"},
      // run_now's payload (Scheduler and Repository): the rule of text.hpp, checked before the job is looked up
      {"run_now: payload not JSON", [=, &scheduler] { scheduler.run_now("idle", "{"); }, ip,
       "run_now: payload of job \"idle\" is not valid JSON: at the end: expected a string (a key of the object)"},
      {"run_now: payload empty", [=, &scheduler] { scheduler.run_now("idle", ""); }, ip,
       "run_now: payload of job \"idle\" is empty (leave it out for a run without arguments)"},
      {"run_now: payload of 65537 bytes", [=, &repo] { repo.run_now("idle", payload_over); }, ip,
       "run_now: payload of job \"idle\" has 65537 bytes, more than 65536"},
      {"run_now: payload with a trailing comma", [=, &repo] { repo.run_now("idle", "[1,]"); }, ip,
       "is not valid JSON: at byte 4 (\"]\"): expected a value"},
      {"run_now: payload with single quotes", [=, &repo] { repo.run_now("idle", "{'a': 1}"); }, ip,
       "is not valid JSON: at byte 2 (\"'a': 1}\"): expected a string (a key of the object)"},
      {"run_now: payload of two values", [=, &repo] { repo.run_now("idle", "{} {}"); }, ip,
       "expected the end of the text (one JSON value only)"},
      {"run_now: payload NaN", [=, &repo] { repo.run_now("idle", "NaN"); }, ip,
       "is not valid JSON: at byte 1 (\"NaN\")"},
      {"run_now: payload with a comment", [=, &repo] { repo.run_now("idle", "[1] // c"); }, ip,
       "is not valid JSON: at byte 5"},
      {"run_now: payload not UTF-8", [=, &repo] { repo.run_now("idle", "\"a\xff\""); }, ip,
       "at byte 3 (\"\\xff\\\"\"): not valid UTF-8"},
      {"run_now: payload with a raw line break in a string", [=, &repo] { repo.run_now("idle", "\"a\nb\""); },
       ip, "a control character in a string"},
      {"run_now: payload with a NUL byte", [=, &repo] { repo.run_now("idle", "[1]\0"s); }, ip,
       "at byte 4 (\"\\x00\"): expected the end of the text"},
      {"run_now: payload with a lone escaped surrogate", [=, &repo] { repo.run_now("idle", "\"\\uD800\""); },
       ip, "an escaped high surrogate without a low one after it"},
      {"run_now: payload number beyond a double", [=, &repo] { repo.run_now("idle", "[1e400]"); }, ip,
       "the number is beyond what a double holds"},
      {"run_now: payload nested 65 deep", [=, &repo] { repo.run_now("idle", nested_65); }, ip,
       "arrays and objects are nested deeper than 64"},
      {"run_now: bad payload of an unknown job", [=, &repo] { repo.run_now("nope", "{"); }, ip,
       "run_now: payload of job \"nope\" is not valid JSON"},
      {"run_now: payload of an unknown job", [=, &scheduler] { scheduler.run_now("nope", "{}"); }, nf,
       "run_now: no job \"nope\" in plugin \"pi_system\""},
      {"run_now: payload while another one waits for its run",
       [=, &repo] {
         repo.run_now("running", "[1]");  // waits for the run after the running one
         repo.run_now("running", "[2]");
       },
       fin,
       "run_now: job \"running\" in plugin \"pi_system\" already has a run requested with other arguments, "
       "\"[1]\", that no server has claimed yet"},

      // open_store: URLs and StoreOptions
      {"open_store: empty URL", open(""), ip, "open_store: the URL has no scheme"},
      {"open_store: no scheme", open("jobs.db"), ip, "open_store: the URL has no scheme"},
      {"open_store: libpq's key=value form with the password",
       open("host=127.0.0.1 port=1 password=" + std::string(password)), ip, "open_store: the URL has no scheme"},
      {"open_store: unknown scheme with the password", open("oracle://u:" + std::string(password) + "@h/db"), ip,
       "open_store: no backend for scheme \"oracle\" is linked (linked: mariadb, mysql, postgres, postgresql, sqlite)"},
      {"open_store: pool_size -1", open(sqlite_file, {.pool_size = -1}), ip, "open_store: pool_size -1 is negative"},
      {"open_store: busy_timeout -1ms", open(sqlite_file, {.busy_timeout = -1ms}), ip,
       "open_store: busy_timeout -1ms is negative"},
      {"open_store: PostgreSQL URL with the password, pool_size -1", open(refused_url(), {.pool_size = -1}), ip,
       "open_store: pool_size -1 is negative"},
      {"open_store: PostgreSQL URL with the password, busy_timeout -5ms", open(refused_url(), {.busy_timeout = -5ms}),
       ip, "open_store: busy_timeout -5ms is negative"},
      {"open_store: sqlite without a path", open("sqlite:"), ip, "open_store: missing sqlite database path"},
      {"open_store: sqlite with an unknown parameter", open(sqlite_file + "?synchronous=off"), ip,
       "open_store: unknown sqlite URL parameter \"synchronous=off\""},
      {"open_store: sqlite with an empty query", open(sqlite_file + "?"), ip,
       "open_store: unknown sqlite URL parameter"},
      {"open_store: sqlite with two parameters", open(sqlite_file + "?synchronous=full&x=1"), ip,
       "open_store: unknown sqlite URL parameter \"synchronous=full&x=1\""},
      {"open_store: sqlite path with a NUL byte", open("sqlite:" + (dir / "cut").string() + "\0.db"s), ip,
       "open_store: the URL contains a NUL byte"},
      {"open_store: PostgreSQL URL with a NUL byte before the password",
       open("postgresql://u@127.0.0.1:1/db\0?password="s + std::string(password)), ip,
       "open_store: the URL contains a NUL byte"},
      {"open_store: sqlite file missing, create_if_missing false",
       open("sqlite:" + (dir / "missing.db").string(), {.create_if_missing = false}), ErrorCode::unavailable,
       "open_store: sqlite database " + jobrepo::quote_text((dir / "missing.db").string()) + " does not exist"},
      {"open_store: sqlite file in a missing directory", open("sqlite:" + (dir / "no" / "such.db").string()),
       ErrorCode::unavailable,
       "open_store: cannot create sqlite database " + jobrepo::quote_text((dir / "no" / "such.db").string()) +
           ": No such file or directory"},
      {"open_store: sqlite path that is a directory", open("sqlite:" + dir.string()), ErrorCode::unavailable,
       "open_store: sqlite database " + jobrepo::quote_text(dir.string())},
      {"open_store: PostgreSQL refusing, password in the user info", open(refused_url()), ErrorCode::unavailable,
       "open_store: cannot connect to postgresql://u:***@127.0.0.1:1/db"},
      {"open_store: PostgreSQL refusing, password in the query",
       open("postgresql://u@127.0.0.1:1/db?password=" + std::string(password)), ErrorCode::unavailable,
       "postgresql://u@127.0.0.1:1/db?password=***"},
      {"open_store: PostgreSQL refusing, percent-encoded password key",
       open("postgresql://u@127.0.0.1:1/db?passwor%64=" + std::string(password)), ErrorCode::unavailable,
       "?passwor%64=***"},
      {"open_store: PostgreSQL, a password key libpq does not know",
       open("postgresql://u@127.0.0.1:1/db?PASSWORD=" + std::string(password)), ip,
       "open_store: invalid PostgreSQL URL postgresql://u@127.0.0.1:1/db?PASSWORD=***"},
      {"open_store: PostgreSQL without '//' (key=value read)", open("postgresql:u:" + std::string(password) + "@h"), ip,
       "open_store: invalid PostgreSQL URL postgresql:***"},
  };
  for (const auto& url : unclear_urls()) {
    rows.push_back(
        {"open_store: PostgreSQL URL with " + url.what, open(url.url), ip,
         "open_store: invalid PostgreSQL URL " + std::string(jobrepo::url_scheme(url.url)) + "://***: " + url.reason});
  }
  return rows;
}

// The operation a row calls: its input up to the first ": ".
std::string operation_of(const std::string& input) { return input.substr(0, input.find(": ")); }

void check(const LibraryRow& row) {
  INFO(row);
  std::string message;
  ErrorCode code = ErrorCode::internal;
  bool threw = false;
  try {
    row.call();
  } catch (const jobrepo::Error& e) {
    threw = true;
    code = e.code();
    message = e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("not a jobrepo::Error: " << e.what());
    return;
  }
  INFO("message: " << message);
  CHECK(threw);
  if (!threw) return;
  CHECK(jobrepo::to_string(code) == jobrepo::to_string(row.code));
  CHECK(message.find(row.fragment) != std::string::npos);
  // It names the operation the caller called, first.
  REQUIRE(operation_of(row.input).find(' ') == std::string::npos);
  CHECK(message.rfind(operation_of(row.input) + ": ", 0) == 0);
  CHECK(one_clean_line(message));
  CHECK(!leaks(message));
}

// --- 2. jobctl -------------------------------------------------------------------

struct CliRow {
  std::string input;
  std::vector<std::string> args;  // --db URL comes first unless they give a database
  int status;                     // 1: the operation failed, 2: usage
  std::string fragment;           // of stderr
  std::vector<std::string> env{};
};

std::ostream& operator<<(std::ostream& out, const CliRow& row) {
  out << "jobctl: " << row.input << ":";
  for (const auto& e : row.env) out << " " << jobrepo::quote_text(e);
  for (const auto& a : row.args) out << " " << jobrepo::quote_text(a);
  return out << " -> exit " << row.status << ", \"" << row.fragment << "\"";
}

bool gives_database(const CliRow& row) {
  for (const auto& a : row.args) {
    if (a.rfind("--db", 0) == 0) return true;
  }
  for (const auto& e : row.env) {
    if (e.rfind("JOBREPO_DATABASE_URL", 0) == 0) return true;
  }
  return false;
}

// A TCP socket listening on a port of 127.0.0.1 that the kernel chose.
struct Listener {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = 0;
  Listener() {
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    port = ntohs(address.sin_port);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() { ::close(fd); }
};

fs::path write_file(const fs::path& path, const std::string& text, fs::perms mode) {
  std::ofstream(path) << text;
  fs::permissions(path, mode);
  return path;
}

// `busy`: ADDR:PORT of a port that another socket listens on.
std::vector<CliRow> cli_rows(const Seeded& db, const fs::path& dir, const std::string& busy) {
  const auto owner_only = fs::perms::owner_read | fs::perms::owner_write;
  const auto world = write_file(dir / "world-url", refused_url() + "\n", owner_only | fs::perms::others_read).string();
  const auto world_query =
      write_file(dir / "world-query-url", "postgresql://u@127.0.0.1:1/db?password=" + std::string(password) + "\n",
                 owner_only | fs::perms::others_read)
          .string();
  const auto group = write_file(dir / "group-url", refused_url() + "\n", owner_only | fs::perms::group_read).string();
  const auto blank = write_file(dir / "blank-url", "  \n" + refused_url() + "\n", owner_only).string();
  const auto good_config =
      write_file(dir / "good.json", R"({"jobs": [{"name": "x", "command": ["true"], "every": "1h"}]})", owner_only)
          .string();
  const std::string not_a_dir = good_config + "/url";
  const std::string& running = db.running;
  const std::string& completed = db.completed;
  const std::string& failed = db.failed;
  const std::string& interrupted = db.interrupted;
  const std::string pw(password);

  std::vector<CliRow> rows = {
      // the command line
      {"no command", {}, 2, "jobctl: missing command"},
      {"unknown command", {"frobnicate"}, 2, "jobctl: unknown command \"frobnicate\""},
      {"unknown subcommand", {"job", "frob"}, 2, "jobctl: unknown command \"job frob\""},
      {"a command's first word alone",
       {"run"},
       2,
       "jobctl: run needs a subcommand: show, cancel, progress, complete, fail (jobctl run --help shows them)"},
      {"unknown command not UTF-8", {"\xff\xfe"}, 2, "jobctl: unknown command \"\\xff\\xfe\""},
      {"unknown command with a newline", {"a\nb"}, 2, "jobctl: unknown command \"a\\nb\""},
      {"unknown option", {"jobs", "--frob", "x"}, 2, "jobctl jobs: unknown option --frob"},
      {"unknown option not UTF-8", {"jobs", "--fr\xc3=x"}, 2, "jobctl jobs: unknown option \"--fr\\xc3\""},
      {"another command's option", {"jobs", "--limit", "3"}, 2, "jobctl jobs: unknown option --limit"},
      {"an option without its value", {"runs", "--limit"}, 2, "jobctl: option --limit needs a value"},
      {"--plugin without its value", {"jobs", "--plugin"}, 2, "option --plugin needs a value"},
      // An option's value is never the option after it (--name=VALUE gives a value that starts with --).
      {"--plugin followed by an option", {"jobs", "--plugin", "--json"}, 2, "jobctl: option --plugin needs a value"},
      {"--db followed by an option", {"--db", "--json", "jobs"}, 2, "jobctl: option --db needs a value"},
      {"--db-file followed by an option", {"--db-file", "--plugin", "p", "jobs"}, 2, "option --db-file needs a value"},
      {"--limit followed by an option", {"runs", "--limit", "--status", "running"}, 2, "option --limit needs a value"},
      {"--message followed by an option",
       {"run", "fail", running, "--message", "--json"},
       2,
       "option --message needs a value (write --message=VALUE for a value that starts with --)"},
      {"missing argument", {"job", "show"}, 2, "jobctl job show: expected 1 argument(s), got 0"},
      {"extra argument", {"job", "show", "a", "b"}, 2, "jobctl job show: expected 1 argument(s), got 2"},
      {"job create without a description",
       {"job", "create", "only-name"},
       2,
       "jobctl job create: expected 2 argument(s), got 1"},
      {"run progress without TOTAL",
       {"run", "progress", running, "1"},
       2,
       "jobctl run progress: expected 3 argument(s), got 2"},
      {"run progress with an extra argument",
       {"run", "progress", running, "1", "2", "3"},
       2,
       "expected 3 argument(s), got 4"},
      {"an argument to jobs", {"jobs", "extra"}, 2, "jobctl jobs: expected 0 argument(s), got 1"},
      {"claim without --server", {"claim"}, 2, "jobctl claim: missing --server"},
      {"run complete without --next-run-in",
       {"run", "complete", running},
       2,
       "jobctl run complete: missing --next-run-in"},
      {"interrupt without --threshold", {"interrupt"}, 2, "jobctl interrupt: missing --threshold"},
      {"prune without --older-than", {"prune"}, 2, "jobctl prune: missing --older-than"},
      {"serve without --config", {"serve"}, 2, "jobctl serve: missing --config"},

      // durations
      {"a duration with an unknown unit",
       {"job", "next-run", "idle", "10x"},
       2,
       "jobctl job next-run: \"10x\" is not a duration (like 90s, 5m, 1h30m, 250ms)"},
      {"an empty duration", {"job", "next-run", "idle", ""}, 2, "jobctl job next-run: \"\" is not a duration"},
      {"a duration without a unit", {"job", "next-run", "idle", "5"}, 2, "\"5\" is not a duration"},
      {"a duration with a fraction", {"job", "next-run", "idle", "1.5h"}, 2, "\"1.5h\" is not a duration"},
      {"a duration of years", {"job", "next-run", "idle", "1y"}, 2, "\"1y\" is not a duration"},
      {"a duration with a trailing number", {"job", "next-run", "idle", "5s5"}, 2, "\"5s5\" is not a duration"},
      {"a duration with spaces", {"job", "next-run", "idle", " 5s"}, 2, "\" 5s\" is not a duration"},
      {"a duration with a plus", {"job", "next-run", "idle", "+5s"}, 2, "\"+5s\" is not a duration"},
      {"a duration of a lone '-'", {"job", "next-run", "idle", "-"}, 2, "\"-\" is not a duration"},
      {"a duration in capitals", {"job", "next-run", "idle", "5S"}, 2, "\"5S\" is not a duration"},
      {"a duration not UTF-8", {"job", "next-run", "idle", "5\xff"}, 2, "\"5\\xff\" is not a duration"},
      {"a duration with a newline", {"job", "next-run", "idle", "5s\n"}, 2, "\"5s\\n\" is not a duration"},
      {"a duration of 36526 days",
       {"job", "next-run", "idle", "36526d"},
       2,
       "jobctl job next-run: \"36526d\" is more than 100 years (36525d)"},
      {"a duration of -36526 days", {"job", "next-run", "idle", "-36526d"}, 2, "\"-36526d\" is more than 100 years"},
      {"a duration 1us beyond 100 years",
       {"job", "next-run", "idle", "36525d1us"},
       2,
       "\"36525d1us\" is more than 100 years"},
      {"a duration that overflows 64 bits",
       {"job", "create", "new", "d", "--next-run-in", "99999999999999999999us"},
       2,
       "jobctl job create: --next-run-in: \"99999999999999999999us\" is more than 100 years"},
      {"a duration of INT64_MAX us", {"job", "next-run", "idle", "9223372036854775807us"}, 2, "is more than 100 years"},
      {"a duration of many components", {"job", "next-run", "idle", repeat("36525d", 50)}, 2, "is more than 100 years"},
      {"--next-run-in not a duration",
       {"job", "create", "new", "d", "--next-run-in", "soon"},
       2,
       "jobctl job create: --next-run-in: \"soon\" is not a duration"},
      {"--next-run-in without a value",
       {"job", "create", "new", "d", "--next-run-in"},
       2,
       "option --next-run-in needs a value"},
      {"run complete --next-run-in beyond 100 years",
       {"run", "complete", running, "--next-run-in", "36526d"},
       2,
       "jobctl run complete: --next-run-in: \"36526d\" is more than 100 years"},
      {"interrupt --threshold not a duration",
       {"interrupt", "--threshold", "1 s"},
       2,
       "jobctl interrupt: --threshold: \"1 s\" is not a duration"},
      {"interrupt --threshold beyond 100 years",
       {"interrupt", "--threshold", "876625h"},
       2,
       "\"876625h\" is more than 100 years"},
      {"interrupt --threshold negative",
       {"interrupt", "--threshold=-1s"},
       1,
       "jobctl interrupt: threshold -1000000us is negative (invalid_parameter)"},
      {"prune --older-than not a duration",
       {"prune", "--older-than", "abc"},
       2,
       "jobctl prune: --older-than: \"abc\" is not a duration"},
      {"prune --older-than negative",
       {"prune", "--older-than=-5m"},
       1,
       "jobctl prune: older_than -300000000us is negative (invalid_parameter)"},
      {"prune --keep without --job", {"prune", "--keep", "3"}, 2, "jobctl prune: --keep needs --job NAME"},
      {"prune --job without a rule",
       {"prune", "--job", "completed"},
       2,
       "jobctl prune: --job needs --keep N, --older-than D, or both"},
      {"prune --job without a value", {"prune", "--job"}, 2, "option --job needs a value"},
      {"prune --job --keep 0",
       {"prune", "--job", "completed", "--keep", "0"},
       2,
       "jobctl prune: --keep: \"0\" is not a count of at least 1"},
      {"prune --job --keep -1",
       {"prune", "--job", "completed", "--keep=-1"},
       2,
       "jobctl prune: --keep: \"-1\" is not a count of at least 1"},
      {"prune --job --keep not a number",
       {"prune", "--job", "completed", "--keep", "many"},
       2,
       "jobctl prune: --keep: \"many\" is not an integer"},
      {"prune --job --keep beyond 64 bits",
       {"prune", "--job", "completed", "--keep", "99999999999999999999"},
       2,
       "jobctl prune: --keep: \"99999999999999999999\" is not an integer"},
      {"prune --job --older-than negative",
       {"prune", "--job", "completed", "--older-than=-1s"},
       1,
       "jobctl prune: older_than -1000000us is negative (invalid_parameter)"},
      {"prune --job of an unknown job",
       {"prune", "--job", "nope", "--keep", "1"},
       1,
       "jobctl prune: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"prune --job empty",
       {"prune", "--job", "", "--keep", "1"},
       1,
       "jobctl prune: name is missing (invalid_parameter)"},

      // counts and limits
      {"COMPLETED not a number",
       {"run", "progress", running, "abc", "10"},
       2,
       "jobctl run progress: COMPLETED: \"abc\" is not an integer"},
      {"TOTAL with a unit", {"run", "progress", running, "1", "10x"}, 2, "TOTAL: \"10x\" is not an integer"},
      {"COMPLETED beyond 64 bits",
       {"run", "progress", running, "99999999999999999999", "1"},
       2,
       "COMPLETED: \"99999999999999999999\" is not an integer"},
      {"COMPLETED empty", {"run", "progress", running, "", "1"}, 2, "COMPLETED: \"\" is not an integer"},
      {"TOTAL a fraction", {"run", "progress", running, "1", "2.5"}, 2, "TOTAL: \"2.5\" is not an integer"},
      {"TOTAL not UTF-8", {"run", "progress", running, "1", "2\xff"}, 2, "TOTAL: \"2\\xff\" is not an integer"},
      {"COMPLETED negative",
       {"run", "progress", running, "-1", "10"},
       1,
       "jobctl run progress: run \"" + running + "\": completed count -1 is negative (check_constraint)"},
      {"TOTAL negative", {"run", "progress", running, "0", "-10"}, 1, "total count -10 is negative (check_constraint)"},
      {"COMPLETED > TOTAL",
       {"run", "progress", running, "11", "10"},
       1,
       "completed count 11 exceeds total count 10 (check_constraint)"},
      {"--limit 0", {"runs", "--limit", "0"}, 2, "jobctl runs: --limit: 0 is neither a count of at least 1 nor -1"},
      {"--limit -5", {"runs", "--limit", "-5"}, 2, "jobctl runs: --limit: -5 is neither"},
      {"--limit abc", {"runs", "--limit", "abc"}, 2, "jobctl runs: --limit: \"abc\" is not an integer"},
      {"--limit empty", {"runs", "--limit="}, 2, "jobctl runs: --limit: \"\" is not an integer"},
      {"--limit beyond int", {"runs", "--limit", "4294967296"}, 2, "--limit: \"4294967296\" is not an integer"},
      {"--limit not UTF-8", {"runs", "--limit", "1\xc3"}, 2, "--limit: \"1\\xc3\" is not an integer"},
      {"claim --limit 0", {"claim", "--server", "s1", "--limit", "0"}, 2, "jobctl claim: --limit: 0 is neither"},
      {"claim --limit -2", {"claim", "--server", "s1", "--limit", "-2"}, 2, "jobctl claim: --limit: -2 is neither"},
      {"claim --limit 1.0", {"claim", "--server", "s1", "--limit", "1.0"}, 2, "--limit: \"1.0\" is not an integer"},
      {"--status unknown",
       {"runs", "--status", "sleeping"},
       2,
       "jobctl runs: --status: \"sleeping\" is not one of running, completed, failed, interrupted"},
      {"--status in capitals", {"runs", "--status", "RUNNING"}, 2, "--status: \"RUNNING\" is not one of"},
      {"--status not UTF-8", {"runs", "--status", "run\xff"}, 2, "--status: \"run\\xff\" is not one of"},

      // the database
      {"--db= empty", {"--db=", "jobs"}, 2, "jobctl: --db: empty URL"},
      {"--db empty", {"--db", "", "jobs"}, 2, "jobctl: --db: empty URL"},
      {"--db and --db-file",
       {"--db", refused_url(), "--db-file", group, "jobs"},
       2,
       "jobctl: give --db or --db-file, not both"},
      {"--db-file empty", {"--db-file=", "jobs"}, 2, "jobctl: --db-file needs a file"},
      {"--db-file missing",
       {"--db-file", (dir / "none").string(), "jobs"},
       2,
       "jobctl jobs: --db-file " + (dir / "none").string() + ": cannot read: No such file or directory"},
      {"--db-file a directory",
       {"--db-file", dir.string(), "jobs"},
       2,
       "jobctl jobs: --db-file " + dir.string() + ": cannot read"},
      {"--db-file below a file", {"--db-file", not_a_dir, "jobs"}, 2, ": cannot read: Not a directory"},
      {"--db-file missing, its name not UTF-8",
       {"--db-file", (dir / "none\xff").string(), "jobs"},
       2,
       "jobctl jobs: --db-file " + jobrepo::quote_text((dir / "none\xff").string()) + ": cannot read"},
      {"--db-file missing, a line break in its name",
       {"--db-file", (dir / "a\nb").string(), "jobs"},
       2,
       "jobctl jobs: --db-file " + jobrepo::quote_text((dir / "a\nb").string()) + ": cannot read"},
      {"serve --config missing",
       {"serve", "--config", (dir / "none.json").string()},
       2,
       "jobctl serve: " + (dir / "none.json").string() + ": cannot read: No such file or directory"},
      {"serve --config missing, its name not UTF-8",
       {"serve", "--config", (dir / "none\xff.json").string()},
       2,
       "jobctl serve: " + jobrepo::quote_text((dir / "none\xff.json").string()) + ": cannot read"},
      {"serve --config a directory",
       {"serve", "--config", dir.string()},
       2,
       "jobctl serve: " + dir.string() + ": cannot read: Is a directory"},
      {"--db-file whose first line is blank",
       {"--db-file", blank, "jobs"},
       2,
       "jobctl jobs: --db-file " + blank + ": the first line is empty"},
      {"--db-file with a password everyone may read",
       {"--db-file", world, "jobs"},
       2,
       "jobctl jobs: --db-file " + world + " holds a password and every user may read it (mode 0604): chmod 600"},
      {"--db-file with a query password everyone may read",
       {"--db-file", world_query, "jobs"},
       2,
       "holds a password and every user may read it"},
      {"--db-file with a password its group may read",
       {"--db-file", group, "jobs"},
       1,
       "jobctl: warning: --db-file " + group + " holds a password and its group may read it (mode 0640)"},
      {"JOBREPO_DATABASE_URL_FILE with a password everyone may read",
       {"jobs"},
       2,
       "JOBREPO_DATABASE_URL_FILE " + world + " holds a password and every user may read it",
       {"JOBREPO_DATABASE_URL_FILE=" + world}},
      {"JOBREPO_DATABASE_URL and JOBREPO_DATABASE_URL_FILE",
       {"jobs"},
       2,
       "jobctl: JOBREPO_DATABASE_URL and JOBREPO_DATABASE_URL_FILE are both set: unset one",
       {"JOBREPO_DATABASE_URL=" + refused_url(), "JOBREPO_DATABASE_URL_FILE=" + group}},
      {"JOBREPO_DATABASE_URL refused",
       {"jobs", "--json"},
       1,
       "(unavailable)",
       {"JOBREPO_DATABASE_URL=" + refused_url()}},
      {"--db without a scheme",
       {"--db", "jobs.db", "jobs"},
       1,
       "jobctl jobs: the URL has no scheme (expected sqlite:PATH, sqlite::memory:, postgresql://... or mariadb://...) "
       "(invalid_parameter)"},
      {"--db of an unknown scheme with the password",
       {"--db", "oracle://u:" + pw + "@h/db", "jobs"},
       1,
       "jobctl jobs: no backend for scheme \"oracle\" is linked"},
      {"--db of a missing SQLite file",
       {"--db", "sqlite:" + (dir / "typo.db").string(), "jobs"},
       1,
       "does not exist; jobctl migrate creates it (unavailable)"},
      {"--db of a SQLite file in a missing directory",
       {"--db", "sqlite:" + (dir / "no/x.db").string(), "migrate"},
       1,
       "(unavailable)"},
      {"--db with an unknown SQLite parameter",
       {"--db", "sqlite:" + (dir / "p.db").string() + "?mode=ro", "jobs"},
       1,
       "unknown sqlite URL parameter \"mode=ro\" (expected synchronous=full or synchronous=normal) "
       "(invalid_parameter)"},
      {"--db of a MariaDB URL with an unencoded '@' in its password",
       {"--db", "mariadb://u:" + pw + "@x@127.0.0.1:1/db", "jobs"},
       1,
       "invalid MariaDB URL mariadb://***: an '@' in the user name or password must be percent-encoded (%40) "
       "(invalid_parameter)"},
      {"--db refused, password in the user info",
       {"--db", refused_url(), "jobs"},
       1,
       "postgresql://u:***@127.0.0.1:1/db"},
      {"--db refused, migrate", {"--db", refused_url(), "migrate"}, 1, "(unavailable)"},
      {"--db refused, serve",
       {"--db", refused_url(), "serve", "--config", good_config, "--server-id", ""},
       1,
       "jobctl serve: server_id is missing (invalid_parameter)"},
      {"--db refused, password in the query",
       {"--db", "postgresql://u@127.0.0.1:1/db?password=" + pw, "jobs", "--json"},
       1,
       "(unavailable)"},

      // job run-now --arg: the library's payload rule, a usage error before the database is opened
      {"--arg not JSON",
       {"job", "run-now", "idle", "--arg", "{"},
       2,
       "jobctl job run-now: --arg is not valid JSON: at the end: expected a string (a key of the object)"},
      {"--arg empty",
       {"job", "run-now", "idle", "--arg="},
       2,
       "jobctl job run-now: --arg is empty (leave it out for a run without arguments)"},
      {"--arg of 65537 bytes",
       {"job", "run-now", "idle", "--arg", "\"" + repeat("x", jobrepo::max_payload_bytes - 1) + "\""},
       2,
       "jobctl job run-now: --arg has 65537 bytes, more than 65536"},
      {"--arg with a trailing comma", {"job", "run-now", "idle", "--arg", "{\"a\": 1,}"}, 2, "at byte 9 (\"}\")"},
      {"--arg of two values", {"job", "run-now", "idle", "--arg", "1 2"}, 2, "one JSON value only"},
      {"--arg not UTF-8",
       {"job", "run-now", "idle", "--arg", "[\"\xc3\"]"},
       2,
       "at byte 3 (\"\\xc3\\\"]\"): not valid UTF-8"},
      {"--arg with a raw tab in a string",
       {"job", "run-now", "idle", "--arg", "\"a\tb\""},
       2,
       "a control character in a string"},
      {"--arg a bare word", {"job", "run-now", "idle", "--arg", "yes"}, 2, "--arg is not valid JSON: at byte 1"},
      {"--arg with --json", {"job", "run-now", "idle", "--arg", "[", "--json"}, 2, "--arg is not valid JSON"},
      {"--arg without its value", {"job", "run-now", "idle", "--arg"}, 2, "jobctl: option --arg needs a value"},
      {"--arg of another command", {"jobs", "--arg", "{}"}, 2, "jobctl jobs: unknown option --arg"},
      {"--arg not JSON, the database unreachable",
       {"--db", refused_url(), "job", "run-now", "idle", "--arg", "{"},
       2,
       "jobctl job run-now: --arg is not valid JSON"},

      // record_not_found, invalid_job_run_state, not_unique
      {"job show of an unknown job",
       {"job", "show", "nope"},
       1,
       "jobctl job show: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"job next-run of an unknown job",
       {"job", "next-run", "nope", "1h"},
       1,
       "jobctl job next-run: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"job run-now of an unknown job",
       {"job", "run-now", "nope"},
       1,
       "jobctl job run-now: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"job run-now --arg of an unknown job",
       {"job", "run-now", "nope", "--arg", "{}"},
       1,
       "jobctl job run-now: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"job delete of an unknown job",
       {"job", "delete", "nope"},
       1,
       "jobctl job delete: no job \"nope\" in plugin \"pi_system\" (record_not_found)"},
      {"job show in another plugin",
       {"--plugin", "other", "job", "show", "idle"},
       1,
       "jobctl job show: no job \"idle\" in plugin \"other\" (record_not_found)"},
      {"run show of an unknown run",
       {"run", "show", unknown_run},
       1,
       "jobctl run show: no run \"" + unknown_run + "\" in plugin \"pi_system\" (record_not_found)"},
      {"run fail of an unknown run",
       {"run", "fail", unknown_run},
       1,
       "jobctl run fail: no run \"" + unknown_run + "\" in plugin \"pi_system\" (record_not_found)"},
      {"run complete of an unknown run",
       {"run", "complete", unknown_run, "--next-run-in", "1h"},
       1,
       "jobctl run complete: no run \"" + unknown_run + "\""},
      {"run progress of an unknown run",
       {"run", "progress", unknown_run, "1", "2"},
       1,
       "jobctl run progress: no run \"" + unknown_run + "\""},
      {"run progress of another plugin's run",
       {"--plugin", "other", "run", "progress", running, "1", "2"},
       1,
       "no run \"" + running + "\" in plugin \"other\" (record_not_found)"},
      {"run complete of a completed run",
       {"run", "complete", completed, "--next-run-in", "1h"},
       1,
       "jobctl run complete: run \"" + completed + "\" is already completed (invalid_job_run_state)"},
      {"run fail of a failed run",
       {"run", "fail", failed},
       1,
       "jobctl run fail: run \"" + failed + "\" is already failed (invalid_job_run_state)"},
      {"run progress of an interrupted run",
       {"run", "progress", interrupted, "1", "2"},
       1,
       "jobctl run progress: run \"" + interrupted + "\" is already interrupted (invalid_job_run_state)"},
      {"run progress of a completed run, bad counts",
       {"run", "progress", completed, "3", "2"},
       1,
       "is already completed (invalid_job_run_state)"},
      {"job create of an existing job",
       {"job", "create", "idle", "d"},
       1,
       "jobctl job create: job \"idle\" in plugin \"pi_system\": already exists"},

      // text
      {"job create with an empty name",
       {"job", "create", "", "d"},
       1,
       "jobctl job create: name is missing (invalid_parameter)"},
      {"job create with a blank name",
       {"job", "create", "   ", "d"},
       1,
       "jobctl job create: name \"   \" is blank (check_constraint)"},
      {"job create with a name of 128 characters",
       {"job", "create", repeat("n", 128), "d"},
       1,
       "has 128 characters, more than 127 (check_constraint)"},
      {"job create with a name not UTF-8",
       {"job", "create", "caf\xe9", "d"},
       1,
       "jobctl job create: name \"caf\\xe9\" is not valid UTF-8 (invalid_parameter)"},
      {"job create with a surrogate name",
       {"job", "create", "\xed\xb0\x80", "d"},
       1,
       "name \"\\xed\\xb0\\x80\" is not valid UTF-8"},
      {"job create with an empty description",
       {"job", "create", "new", ""},
       1,
       "jobctl job create: description is missing (invalid_parameter)"},
      {"job create with a blank description",
       {"job", "create", "new", " "},
       1,
       "description \" \" is blank (check_constraint)"},
      {"job create with a description of 1024 characters",
       {"job", "create", "new", repeat("d", 1024)},
       1,
       "has 1024 characters, more than 1023 (check_constraint)"},
      {"job create with a description not UTF-8",
       {"job", "create", "new", "\xc0\x80"},
       1,
       "description \"\\xc0\\x80\" is not valid UTF-8 (invalid_parameter)"},
      {"job show of a name not UTF-8",
       {"job", "show", "\xff\xfe"},
       1,
       "jobctl job show: name \"\\xff\\xfe\" is not valid UTF-8 (invalid_parameter)"},
      {"job show of an empty name", {"job", "show", ""}, 1, "jobctl job show: name is missing (invalid_parameter)"},
      {"job delete of an empty name",
       {"job", "delete", ""},
       1,
       "jobctl job delete: name is missing (invalid_parameter)"},
      {"job next-run of a name not UTF-8", {"job", "next-run", "\x80", "1h"}, 1, "name \"\\x80\" is not valid UTF-8"},
      {"runs --job not UTF-8",
       {"runs", "--job", "\xc3"},
       1,
       "jobctl runs: job_name \"\\xc3\" is not valid UTF-8 (invalid_parameter)"},
      {"claim --server empty", {"claim", "--server="}, 1, "jobctl claim: server_id is missing (invalid_parameter)"},
      {"claim --server blank", {"claim", "--server", "  "}, 1, "server_id \"  \" is blank (check_constraint)"},
      {"claim --server of 256 characters",
       {"claim", "--server", repeat("s", 256)},
       1,
       "has 256 characters, more than 255 (check_constraint)"},
      {"claim --server not UTF-8", {"claim", "--server", "\xff"}, 1, "server_id \"\\xff\" is not valid UTF-8"},
      {"interrupt --server not UTF-8",
       {"interrupt", "--threshold", "1h", "--server", "s\xff"},
       1,
       "jobctl interrupt: server_id \"s\\xff\" is not valid UTF-8 (invalid_parameter)"},
      {"--plugin empty", {"--plugin=", "jobs"}, 1, "jobctl jobs: plugin_id is missing (invalid_parameter)"},
      {"--plugin blank", {"--plugin", " ", "jobs"}, 1, "plugin_id \" \" is blank (check_constraint)"},
      {"--plugin of 128 characters",
       {"--plugin", repeat("p", 128), "jobs"},
       1,
       "has 128 characters, more than 127 (check_constraint)"},
      {"--plugin not UTF-8", {"--plugin", "p\xff", "jobs"}, 1, "plugin_id \"p\\xff\" is not valid UTF-8"},
      {"--plugin empty for serve",
       {"--plugin=", "serve", "--config", good_config, "--server-id", "s"},
       1,
       "plugin_id is missing (invalid_parameter)"},
      {"serve --server-id of 256 characters",
       {"serve", "--config", good_config, "--server-id", repeat("s", 256)},
       1,
       "has 256 characters, more than 255 (check_constraint)"},
      {"serve --server-id not UTF-8",
       {"serve", "--config", good_config, "--server-id", "s\xff"},
       1,
       "server_id \"s\\xff\" is not valid UTF-8 (invalid_parameter)"},
      {"run show of an id with a space",
       {"run", "show", "a b"},
       1,
       "jobctl run show: run id \"a b\" has characters other than A-Z a-z 0-9 - _ (invalid_parameter)"},
      {"run fail of a path", {"run", "fail", "../x"}, 1, "run id \"../x\" has characters other than"},
      {"run complete of an id not UTF-8",
       {"run", "complete", "\xff", "--next-run-in", "1s"},
       1,
       "run id \"\\xff\" is not valid UTF-8"},
      {"run progress of an empty id",
       {"run", "progress", "", "1", "2"},
       1,
       "jobctl run progress: run id is missing (invalid_parameter)"},

      // --json: the error as JSON on stdout too
      {"--json: unknown job", {"job", "show", "nope", "--json"}, 1, "(record_not_found)"},
      {"--json: existing job", {"job", "create", "idle", "d", "--json"}, 1, "(not_unique)"},
      {"--json: completed run",
       {"run", "complete", completed, "--next-run-in", "1h", "--json"},
       1,
       "(invalid_job_run_state)"},
      {"--json: name not UTF-8", {"--json", "job", "create", "\xff", "d"}, 1, "(invalid_parameter)"},
      {"--json: counts", {"run", "progress", running, "5", "4", "--json"}, 1, "(check_constraint)"},
      {"--json: unknown scheme with the password",
       {"--db", "oracle://u:" + pw + "@h/db", "jobs", "--json"},
       1,
       "(invalid_parameter)"},
      {"--json: refused with the password", {"--db", refused_url(), "runs", "--json"}, 1, "(unavailable)"},
      {"--json: a usage error stays on stderr", {"runs", "--limit", "0", "--json"}, 2, "--limit: 0 is neither"},
      {"--json: serve cannot listen on its --http port",
       {"--json", "serve", "--config", good_config, "--server-id", "s", "--log-level", "error", "--http", busy},
       1,
       "jobctl serve: --http " + busy +
           ": cannot listen there: Address already in use (another process, or another jobctl serve, listens "
           "there) (unavailable)"},
      {"serve cannot listen on its --http port",
       {"serve", "--config", good_config, "--server-id", "s", "--log-level", "error", "--http", busy},
       1,
       "jobctl serve: --http " + busy + ": cannot listen there"},

      // A long value is echoed cut after 60 characters, as every value.
      {"--db of a 100 KB scheme",
       {"--db", repeat("s", 100000) + ":x", "jobs"},
       1,
       "jobctl jobs: no backend for scheme \"" + repeat("s", 60) + "...\" is linked"},
      {"--db of a PostgreSQL URL with a 100 KB database name",
       {"--db", "postgresql://u:" + pw + "@127.0.0.1:1/" + repeat("d", 100000), "jobs", "--json"},
       1,
       "\"postgresql://u:***@127.0.0.1:1/" + repeat("d", 29) + "...\""},
      {"--db of a MariaDB URL with a 100 KB database name",
       {"--db", "mariadb://u:" + pw + "@127.0.0.1:1/" + repeat("d", 100000), "jobs"},
       1,
       "\"mariadb://u:***@127.0.0.1:1/" + repeat("d", 32) + "...\""},
      {"serve --http of a 100 KB host",
       {"serve", "--config", good_config, "--http", repeat("h", 100000) + ":9100"},
       2,
       "jobctl serve: --http: \"" + repeat("h", 60) + "...\" has an address that is not a host name or IP address"},
      {"serve --http of a host name of 254 characters",
       {"serve", "--config", good_config, "--http", repeat("h", 254) + ":9100"},
       2,
       "has an address that is not a host name or IP address"},
      {"--limit of 100,000 zeros", {"runs", "--limit", repeat("0", 100000)}, 2, "--limit: \"000"},
      {"cron next --count of 100,000 zeros before 5000",
       {"cron", "next", "@daily", "--count", repeat("0", 100000) + "5000"},
       2,
       "jobctl cron next: --count: \"000"},
      {"job show of a 100 KB name",
       {"job", "show", repeat("n", 100000)},
       1,
       "jobctl job show: no job \"" + repeat("n", 60) + "...\""},
  };
  for (const auto& url : unclear_urls()) {
    const std::string message =
        "invalid PostgreSQL URL " + std::string(jobrepo::url_scheme(url.url)) + "://***: " + url.reason;
    rows.push_back(
        {"--db: a PostgreSQL URL with " + url.what, {"--db", url.url, "jobs"}, 1, "jobctl jobs: " + message});
    rows.push_back({"--db: --json, a PostgreSQL URL with " + url.what,
                    {"--db", url.url, "job", "show", "x", "--json"},
                    1,
                    "jobctl job show: " + message});
  }
  return rows;
}

void check(const CliRow& row, const std::string& url, const fs::path& dir) {
  INFO(row);
  auto args = row.args;
  if (!gives_database(row)) args.insert(args.begin(), {"--db", url});
  const auto result = Process(args, dir, "jobctl", row.env).wait_at_most(std::chrono::seconds(20));
  INFO("exit " << result.status << "\nstdout: " << result.out << "\nstderr: " << result.err);
  CHECK(result.status == row.status);
  CHECK(result.err.find(row.fragment) != std::string::npos);
  CHECK(!leaks(result.out));
  CHECK(!leaks(result.err));
  // Values are echoed cut (60 characters), so no message is long, whatever the input.
  CHECK(result.err.size() < 2000);
  // stderr: lines of valid UTF-8, the last one naming the command.
  CHECK(!jobrepo::encoding_problem(result.err));
  CHECK(result.err.rfind("jobctl", 0) == 0);
  if (row.status == 2) {
    CHECK(result.out.empty());
    return;
  }
  // A failed operation: one line `jobctl COMMAND: MESSAGE (CODE)`, and with
  // --json the same error as JSON on stdout.
  REQUIRE(result.err.size() > 4);
  const auto last = result.err.substr(result.err.rfind('\n', result.err.size() - 2) + 1);
  const auto open = last.rfind(" (");
  REQUIRE(open != std::string::npos);
  const auto code = last.substr(open + 2, last.size() - open - 4);
  CHECK(last.substr(last.size() - 2) == ")\n");
  if (std::find(row.args.begin(), row.args.end(), "--json") != row.args.end()) {
    nlohmann::json parsed;
    REQUIRE_NOTHROW(parsed = result.parsed());
    CHECK(parsed["error"]["code"] == code);
    const std::string message = parsed["error"]["message"];
    CHECK(!message.empty());
    CHECK(last.find(": " + message + " (" + code + ")") != std::string::npos);
  } else {
    CHECK(result.out.empty());
  }
}

// --- 3. serve configs --------------------------------------------------------------

struct ConfigRow {
  std::string input;
  std::string config;    // the file's text
  int status;            // 2: a bad config, before the database is touched
  std::string fragment;  // of stderr, after "jobctl serve: FILE: "
};

std::ostream& operator<<(std::ostream& out, const ConfigRow& row) {
  return out << "serve config: " << row.input << ": " << jobrepo::quote_text(row.config) << " -> exit " << row.status
             << ", \"" << row.fragment << "\"";
}

const std::string ok_job = R"({"name": "x", "command": ["true"], "every": "1h"})";

// A config with top-level `fields` (members, without the last comma) and one valid job.
std::string top(const std::string& fields) { return "{" + fields + R"(, "jobs": [)" + ok_job + "]}"; }
// A config of one job of these members.
std::string job(const std::string& members) { return R"({"jobs": [{)" + members + "}]}"; }
// A config of one valid job with `members` more.
std::string job_with(const std::string& members) {
  return job(R"("name": "x", "command": ["true"], "every": "1h", )" + members);
}
// A JSON string literal of `text` (escaped as JSON needs).
std::string json_string(const std::string& text) { return nlohmann::json(text).dump(); }

std::vector<ConfigRow> config_rows(const fs::path& dir) {
  const auto regular_file = write_file(dir / "a-file", "x", fs::perms::owner_all).string();
  fs::create_symlink(dir / "loop", dir / "loop");
  const std::string long_path = "/" + repeat("w", 5000);
  const std::string loop = (dir / "loop" / "inside").string();
  const std::string cmd = R"("command": ["true"])";
  const std::string every = R"("every": "1h")";
  const std::string named = R"("name": "x")";
  std::vector<ConfigRow> rows = {
      // JSON
      {"an empty file", "", 2, "not valid JSON"},
      {"an unclosed object", "{", 2, "not valid JSON"},
      {"an unclosed array", R"({"jobs": [)", 2, "not valid JSON"},
      {"text after the object", top(R"("grace": "1s")") + " x", 2, "not valid JSON"},
      {"a trailing comma", R"({"jobs": [)" + ok_job + ",]}", 2, "not valid JSON"},
      {"a comment", "// jobs\n" + top(R"("grace": "1s")"), 2, "not valid JSON"},
      {"single quotes", R"({'jobs': []})", 2, "not valid JSON"},
      {"a number no double holds", top(R"("worker_threads": 1e999)"), 2, "not valid JSON"},
      {"invalid UTF-8 in a string",
       job(R"("name": "caf)"
           "\xe9"
           R"(", )" +
           cmd + ", " + every),
       2, "not valid JSON"},
      {"a line break in a string", job("\"name\": \"a\nb\", " + cmd + ", " + every), 2, "not valid JSON"},
      {"a lone surrogate escape", job(R"("name": "\ud800", )" + cmd + ", " + every), 2, "not valid JSON"},
      {"the top level an array", "[" + ok_job + "]", 2, "(top level): must be an object"},
      {"the top level a string", R"("jobs")", 2, "(top level): must be an object"},
      {"the top level null", "null", 2, "(top level): must be an object"},

      // duplicate keys and unknown fields
      {"jobs twice", R"({"jobs": [], "jobs": [)" + ok_job + "]}", 2, "jobs: appears twice"},
      {"plugin_id twice", top(R"("plugin_id": "a", "plugin_id": "b")"), 2, "plugin_id: appears twice"},
      {"grace twice", top(R"("grace": "1s", "grace": "2s")"), 2, "grace: appears twice"},
      {"every twice", job_with(R"("every": "2h")"), 2, "jobs[0].every: appears twice"},
      {"name twice in the second job", R"({"jobs": [)" + ok_job + R"(, {"name": "y", "name": "z"}]})", 2,
       "jobs[1].name: appears twice"},
      {"an environment name twice", job_with(R"("environment": {"A": "1", "A": "2"})"), 2,
       "jobs[0].environment.A: appears twice"},
      {"a key twice with a newline in it", top(R"("a\nb": 1, "a\nb": 2)"), 2, R"("a\nb": appears twice)"},
      {"an unknown top-level field", top(R"("job": {})"), 2, "job: unknown field"},
      {"an unknown job field", job_with(R"("evry": "1s")"), 2, "jobs[0].evry: unknown field"},
      {"a field in capitals", top(R"("Grace": "1s")"), 2, "Grace: unknown field"},
      {"an unknown field with a newline", top(R"("a\nb": 1)"), 2, R"("a\nb": unknown field)"},
      {"an unknown field with a NUL", top(R"("a\u0000b": 1)"), 2, R"("a\x00b": unknown field)"},
      {"an unknown field that is empty", top(R"("": 1)"), 2, R"("": unknown field)"},

      // jobs
      {"jobs missing", R"({"grace": "1s"})", 2, "jobs: is missing"},
      {"jobs empty", R"({"jobs": []})", 2, "jobs: must be a non-empty array"},
      {"jobs an object", R"({"jobs": {"name": "x"}})", 2, "jobs: must be a non-empty array"},
      {"jobs null", R"({"jobs": null})", 2, "jobs: must be a non-empty array"},
      {"a job that is a number", R"({"jobs": [1]})", 2, "jobs[0]: must be an object"},
      {"a second job that is a string", R"({"jobs": [)" + ok_job + R"(, "y"]})", 2, "jobs[1]: must be an object"},
      {"two jobs of one name", R"({"jobs": [)" + ok_job + ", " + ok_job + "]}", 2,
       "jobs[1].name: \"x\" is defined twice"},
      {"two jobs of one accented name",
       R"({"jobs": [{"name": "é", "command": ["true"], "every": "1s"}, {"name": "é", "command": ["true"], "every": "1s"}]})",
       2, "jobs[1].name: \"é\" is defined twice"},

      // names
      {"name missing", job(cmd + ", " + every), 2, "jobs[0].name: is missing"},
      {"name a number", job(R"("name": 5, )" + cmd + ", " + every), 2, "jobs[0].name: must be a string"},
      {"name null", job(R"("name": null, )" + cmd + ", " + every), 2, "jobs[0].name: must be a string"},
      {"name empty", job(R"("name": "", )" + cmd + ", " + every), 2, "jobs[0].name: is empty"},
      {"name blank", job(R"("name": "   ", )" + cmd + ", " + every), 2, "jobs[0].name: \"   \" is blank"},
      {"name of 128 characters", job(R"("name": ")" + repeat("n", 128) + R"(", )" + cmd + ", " + every), 2,
       "jobs[0].name: \"" + repeat("n", 60) + "...\" has 128 characters, more than 127"},
      {"name with a NUL", job(R"("name": "a\u0000b", )" + cmd + ", " + every), 2,
       R"(jobs[0].name: "a\x00b" contains a NUL byte)"},
      {"two jobs of one name with a newline",
       R"({"jobs": [{"name": "a\nb", "command": ["true"], "every": "1s"}, {"name": "a\nb", "command": ["true"], "every": "1s"}]})",
       2, R"(jobs[1].name: "a\nb" is defined twice)"},
      {"description a number", job_with(R"("description": 1)"), 2, "jobs[0].description: must be a string"},
      {"description empty", job_with(R"("description": "")"), 2, "jobs[0].description: is empty"},
      {"description blank", job_with(R"("description": "  ")"), 2, "jobs[0].description: \"  \" is blank"},
      {"description of 1024 characters", job_with(R"("description": ")" + repeat("d", 1024) + "\""), 2,
       "jobs[0].description: \"ddd"},
      {"description with a NUL", job_with(R"("description": "\u0000")"), 2,
       R"(jobs[0].description: "\x00" contains a NUL byte)"},
      {"plugin_id empty", top(R"("plugin_id": "")"), 2, "plugin_id: is empty"},
      {"http of a 100 KB host", top(R"("http": ")" + repeat("h", 100000) + R"(:9100")"), 2,
       "http: \"" + repeat("h", 60) + "...\" has an address that is not a host name or IP address"},
      {"the second job's name empty",
       R"({"jobs": [)" + ok_job + R"(, {"name": "", "command": ["true"], "every": "1h"}]})", 2,
       "jobs[1].name: is empty"},
      {"plugin_id blank", top(R"("plugin_id": " ")"), 2, "plugin_id: \" \" is blank"},
      {"plugin_id of 128 characters", top(R"("plugin_id": ")" + repeat("p", 128) + "\""), 2, "plugin_id: \"ppp"},
      {"plugin_id with a NUL", top(R"("plugin_id": "p\u0000")"), 2, R"(plugin_id: "p\x00" contains a NUL byte)"},
      {"plugin_id a number", top(R"("plugin_id": 7)"), 2, "plugin_id: must be a string"},

      // worker_threads
      {"worker_threads 0", top(R"("worker_threads": 0)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads 1025", top(R"("worker_threads": 1025)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads 4294967297", top(R"("worker_threads": 4294967297)"), 2,
       "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads 2^64 - 1", top(R"("worker_threads": 18446744073709551615)"), 2,
       "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads -1", top(R"("worker_threads": -1)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads -2^63", top(R"("worker_threads": -9223372036854775808)"), 2,
       "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads \"4\"", top(R"("worker_threads": "4")"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads 4.5", top(R"("worker_threads": 4.5)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads 4.0", top(R"("worker_threads": 4.0)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads true", top(R"("worker_threads": true)"), 2, "worker_threads: must be an integer from 1 to 1024"},
      {"worker_threads null", top(R"("worker_threads": null)"), 2, "worker_threads: must be an integer from 1 to 1024"},

      // durations
      {"every missing", job(named + ", " + cmd), 2,
       R"(jobs[0]: needs "every" (a duration) or "cron" (a cron expression), or "on_demand": true)"},
      {"every not a duration", job(named + ", " + cmd + R"(, "every": "10x")"), 2,
       "jobs[0].every: \"10x\" is not a duration (like 90s, 5m, 1h30m, 250ms)"},
      {"every empty", job(named + ", " + cmd + R"(, "every": "")"), 2, "jobs[0].every: \"\" is not a duration"},
      {"every 0", job(named + ", " + cmd + R"(, "every": "0")"), 2, "jobs[0].every: must be positive"},
      {"every -1s", job(named + ", " + cmd + R"(, "every": "-1s")"), 2, "jobs[0].every: must be positive"},
      {"every 36526d", job(named + ", " + cmd + R"(, "every": "36526d")"), 2,
       "jobs[0].every: \"36526d\" is more than 100 years (36525d)"},
      {"every a number", job(named + ", " + cmd + R"(, "every": 60)"), 2,
       "jobs[0].every: must be a duration string, like 90s, 5m, 1h30m, 250ms"},
      {"every null", job(named + ", " + cmd + R"(, "every": null)"), 2, "jobs[0].every: must be a duration string"},
      {"every with a NUL", job(named + ", " + cmd + R"(, "every": "1s\u0000")"), 2,
       R"(jobs[0].every: "1s\x00" is not a duration)"},
      {"on_demand with every", job_with(R"("on_demand": true)"), 2,
       R"(jobs[0].on_demand: an on-demand job has no "every" or "cron" (only run-now makes it due))"},
      {"on_demand with cron", job(named + ", " + cmd + R"(, "cron": "@daily", "on_demand": true)"), 2,
       R"(jobs[0].on_demand: an on-demand job has no "every" or "cron")"},
      {"on_demand a string", job(named + ", " + cmd + R"(, "on_demand": "yes")"), 2,
       "jobs[0].on_demand: must be true or false"},
      {"on_demand false, and no schedule", job(named + ", " + cmd + R"(, "on_demand": false)"), 2,
       R"(jobs[0]: needs "every" (a duration) or "cron" (a cron expression), or "on_demand": true)"},
      {"on_demand with a time zone", job(named + ", " + cmd + R"(, "on_demand": true, "time_zone": "UTC")"), 2,
       R"(jobs[0].time_zone: applies to "cron" jobs only)"},
      {"on_demand with misfire", job(named + ", " + cmd + R"(, "on_demand": true, "misfire": "skip")"), 2,
       R"(jobs[0].misfire: applies to "cron" jobs only)"},
      {"backoff.give_up without max_attempts", job_with(R"("backoff": {"give_up": true})"), 2,
       "jobs[0].backoff: give_up needs max_attempts (the failures in a row after which the job gives up)"},
      {"backoff.give_up with max_attempts 0 here, 3 at the top",
       R"({"backoff": {"max_attempts": 3, "give_up": true}, "jobs": [{"name": "x", "command": ["true"],
         "every": "1h", "backoff": {"max_attempts": 0}}]})",
       2, "jobs[0].backoff: give_up needs max_attempts"},
      {"backoff.give_up at the top without max_attempts", top(R"("backoff": {"give_up": true})"), 2,
       "backoff: give_up needs max_attempts"},
      {"backoff.give_up a string", job_with(R"("backoff": {"max_attempts": 3, "give_up": "yes"})"), 2,
       "jobs[0].backoff.give_up: must be true or false"},
      {"backoff.give_up null", job_with(R"("backoff": {"max_attempts": 3, "give_up": null})"), 2,
       "jobs[0].backoff.give_up: must be true or false"},
      {"an unknown backoff field", job_with(R"("backoff": {"giveup": true})"), 2,
       "jobs[0].backoff.giveup: unknown field"},
      {"timeout 0s", job_with(R"("timeout": "0s")"), 2, "jobs[0].timeout: must be positive"},
      {"timeout -5s", job_with(R"("timeout": "-5s")"), 2, "jobs[0].timeout: must be positive"},
      {"timeout 36526d", job_with(R"("timeout": "36526d")"), 2, "jobs[0].timeout: \"36526d\" is more than 100 years"},
      {"timeout a number", job_with(R"("timeout": 5)"), 2, "jobs[0].timeout: must be a duration string"},
      {"timeout 5 (no unit)", job_with(R"("timeout": "5")"), 2, "jobs[0].timeout: \"5\" is not a duration"},
      {"claim_interval 0s", top(R"("claim_interval": "0s")"), 2, "claim_interval: must be positive"},
      {"claim_interval -1ms", top(R"("claim_interval": "-1ms")"), 2, "claim_interval: must be positive"},
      {"claim_interval 36526d", top(R"("claim_interval": "36526d")"), 2, "claim_interval: \"36526d\" is more than 100"},
      {"claim_interval abc", top(R"("claim_interval": "abc")"), 2, "claim_interval: \"abc\" is not a duration"},
      {"monitor_interval 0", top(R"("monitor_interval": "0")"), 2, "monitor_interval: must be positive"},
      {"monitor_interval -1s", top(R"("monitor_interval": "-1s")"), 2, "monitor_interval: must be positive"},
      {"monitor_interval a number", top(R"("monitor_interval": 1)"), 2, "monitor_interval: must be a duration string"},
      {"monitor_interval above a quarter of interrupt_threshold", top(R"("monitor_interval": "10s")"), 2,
       "monitor_interval 10s must be at most a quarter of interrupt_threshold 30s"},
      {"interrupt_threshold 0s", top(R"("interrupt_threshold": "0s")"), 2, "interrupt_threshold: must be positive"},
      {"interrupt_threshold 36526d", top(R"("interrupt_threshold": "36526d")"), 2,
       "interrupt_threshold: \"36526d\" is more than 100 years"},
      {"interrupt_threshold a number", top(R"("interrupt_threshold": 30)"), 2,
       "interrupt_threshold: must be a duration string"},
      {"interrupt_threshold below 4 x monitor_interval", top(R"("interrupt_threshold": "3999ms")"), 2,
       "monitor_interval 1s must be at most a quarter of interrupt_threshold 3.999s"},
      {"grace -1s", top(R"("grace": "-1s")"), 2, "grace: must not be negative"},
      {"grace 36526d", top(R"("grace": "36526d")"), 2, "grace: \"36526d\" is more than 100 years"},
      {"grace a number", top(R"("grace": 5)"), 2, "grace: must be a duration string"},
      {"grace breaks the fence rule", top(R"("grace": "5s", "interrupt_threshold": "4s")"), 2,
       "grace 5s does not fit in interrupt_threshold 4s: a fenced run's processes may live until 8.2s after its last "
       "heartbeat"},
      {"grace at the fence rule's limit (equal is refused)",
       top(R"("interrupt_threshold": "2s", "monitor_interval": "250ms", "grace": "300ms")"), 2,
       "grace 300ms does not fit in interrupt_threshold 2s"},
      {"the default grace with a short threshold", top(R"("interrupt_threshold": "20s")"), 2,
       "grace 5s does not fit in interrupt_threshold 20s"},
      // cgroups
      {"cgroups yes", top(R"("cgroups": "yes")"), 2, R"(cgroups: "yes" is not auto, on or off)"},
      {"cgroups in capitals", top(R"("cgroups": "ON")"), 2, R"(cgroups: "ON" is not auto, on or off)"},
      {"cgroups true", top(R"("cgroups": true)"), 2, R"(cgroups: must be "auto", "on" or "off")"},
      // on_failure_when, on_failure_cancels
      {"on_failure_when a string", top(R"("on_failure_when": "exhausted")"), 2,
       R"(on_failure_when: must be a non-empty array of "every_attempt", "exhausted" and "recovery")"},
      {"on_failure_when empty", top(R"("on_failure_when": [])"), 2, "on_failure_when: must be a non-empty array"},
      {"on_failure_when unknown", top(R"("on_failure_when": ["exhausted", "always"])"), 2,
       "on_failure_when[1]: always is not every_attempt, exhausted or recovery"},
      {"on_failure_when of a number", top(R"("on_failure_when": [1])"), 2, "on_failure_when[0]: must be a string"},
      {"on_failure_cancels a string", top(R"("on_failure_cancels": "yes")"), 2,
       "on_failure_cancels: must be true or false"},
      {"timeout zero", top(R"("timeout": "0s")"), 2, "timeout: must be positive"},
      {"jitter negative", top(R"("jitter": "-1s")"), 2, "jitter: must not be negative"},
      {"a job's jitter as long as its timeout",
       job(named + R"(, "command": ["true"], "timeout": "1s", "jitter": "1s", )" + every), 2,
       "jobs[0].jitter: jitter 1s must be less than the timeout 1s"},
      // keep_runs, keep_for, prune_interval
      {"keep_runs 0", job_with(R"("keep_runs": 0)"), 2, "jobs[0].keep_runs: must be an integer from 1 to 1000000000"},
      {"keep_runs -1", job_with(R"("keep_runs": -1)"), 2, "jobs[0].keep_runs: must be an integer from 1 to 1000000000"},
      {"keep_runs 1000000001", job_with(R"("keep_runs": 1000000001)"), 2,
       "jobs[0].keep_runs: must be an integer from 1 to 1000000000"},
      {"keep_runs 2^64 - 1", job_with(R"("keep_runs": 18446744073709551615)"), 2,
       "jobs[0].keep_runs: must be an integer from 1 to 1000000000"},
      {"keep_runs 2.5", job_with(R"("keep_runs": 2.5)"), 2, "jobs[0].keep_runs: must be an integer from 1"},
      {"keep_runs \"100\"", job_with(R"("keep_runs": "100")"), 2, "jobs[0].keep_runs: must be an integer from 1"},
      {"keep_runs null", job_with(R"("keep_runs": null)"), 2, "jobs[0].keep_runs: must be an integer from 1"},
      {"keep_runs 0 at the top", top(R"("keep_runs": 0)"), 2, "keep_runs: must be an integer from 1 to 1000000000"},
      {"keep_runs true at the top", top(R"("keep_runs": true)"), 2, "keep_runs: must be an integer from 1"},
      {"keep_for 0s", job_with(R"("keep_for": "0s")"), 2, "jobs[0].keep_for: must be positive"},
      {"keep_for -1d", job_with(R"("keep_for": "-1d")"), 2, "jobs[0].keep_for: must be positive"},
      {"keep_for 36526d", job_with(R"("keep_for": "36526d")"), 2,
       "jobs[0].keep_for: \"36526d\" is more than 100 years (36525d)"},
      {"keep_for a number", job_with(R"("keep_for": 30)"), 2,
       "jobs[0].keep_for: must be a duration string, like 90s, 5m, 1h30m, 250ms"},
      {"keep_for 30 (no unit)", job_with(R"("keep_for": "30")"), 2, "jobs[0].keep_for: \"30\" is not a duration"},
      {"keep_for at the top 0s", top(R"("keep_for": "0s")"), 2, "keep_for: must be positive"},
      {"keep_for at the top 1 month", top(R"("keep_for": "1mo")"), 2, "keep_for: \"1mo\" is not a duration"},
      {"prune_interval 0s", top(R"("prune_interval": "0s")"), 2, "prune_interval: must be positive"},
      {"prune_interval -10m", top(R"("prune_interval": "-10m")"), 2, "prune_interval: must be positive"},
      {"prune_interval a number", top(R"("prune_interval": 600)"), 2, "prune_interval: must be a duration string"},
      {"prune_interval 36526d", top(R"("prune_interval": "36526d")"), 2,
       "prune_interval: \"36526d\" is more than 100 years"},
      {"a job's prune_interval", job_with(R"("prune_interval": "1m")"), 2, "jobs[0].prune_interval: unknown field"},
      {"keep_runs given twice", job_with(R"("keep_runs": 5, "keep_runs": 6)"), 2, "jobs[0].keep_runs: appears twice"},
      {"a job's on_failure_when unknown",
       job(named + R"(, "command": ["true"], "on_failure_when": ["never"], )" + every), 2,
       "jobs[0].on_failure_when[0]: never is not every_attempt, exhausted or recovery"},

      // command
      {"command missing", job(named + ", " + every), 2, "jobs[0].command: is missing"},
      {"command empty", job(named + R"(, "command": [], )" + every), 2,
       "jobs[0].command: must be a non-empty array of strings"},
      {"command a string", job(named + R"(, "command": "true", )" + every), 2,
       "jobs[0].command: must be a non-empty array of strings"},
      {"command an object", job(named + R"(, "command": {"0": "true"}, )" + every), 2,
       "jobs[0].command: must be a non-empty array"},
      {"command of a number", job(named + R"(, "command": [1], )" + every), 2, "jobs[0].command[0]: must be a string"},
      {"command with null", job(named + R"(, "command": ["true", null], )" + every), 2,
       "jobs[0].command[1]: must be a string"},
      {"command with an array", job(named + R"(, "command": ["sh", ["-c"]], )" + every), 2,
       "jobs[0].command[1]: must be a string"},
      {"command with a NUL", job(named + R"(, "command": ["true", "a\u0000b"], )" + every), 2,
       R"(jobs[0].command[1]: "a\x00b" contains a NUL byte)"},
      {"command's program with a NUL", job(named + R"(, "command": ["tr\u0000ue"], )" + every), 2,
       R"(jobs[0].command[0]: "tr\x00ue" contains a NUL byte)"},
      {"command's program empty", job(named + R"(, "command": [""], )" + every), 2,
       "jobs[0].command[0]: the program is empty"},

      // working_directory
      {"working_directory missing", job_with(R"("working_directory": "/no/such/dir")"), 2,
       "jobs[0].working_directory: \"/no/such/dir\": No such file or directory"},
      {"working_directory a file", job_with(R"("working_directory": )" + json_string(regular_file)), 2,
       "jobs[0].working_directory: " + jobrepo::quote_text(regular_file) + " is not a directory"},
      {"working_directory too long", job_with(R"("working_directory": )" + json_string(long_path)), 2,
       "jobs[0].working_directory: \"/www"},
      {"working_directory through a loop of links", job_with(R"("working_directory": )" + json_string(loop)), 2,
       "Too many levels of symbolic links"},
      {"working_directory below a file", job_with(R"("working_directory": )" + json_string(regular_file + "/d")), 2,
       "jobs[0].working_directory: " + jobrepo::quote_text(regular_file + "/d")},
      {"working_directory empty", job_with(R"("working_directory": "")"), 2,
       "jobs[0].working_directory: must not be empty"},
      {"working_directory a number", job_with(R"("working_directory": 1)"), 2,
       "jobs[0].working_directory: must be a string"},
      {"working_directory with a NUL", job_with(R"("working_directory": "/tmp\u0000/x")"), 2,
       R"(jobs[0].working_directory: "/tmp\x00/x" contains a NUL byte)"},

      // environment
      {"environment an array", job_with(R"("environment": ["A=1"])"), 2,
       "jobs[0].environment: must be an object of strings"},
      {"environment a string", job_with(R"("environment": "A=1")"), 2,
       "jobs[0].environment: must be an object of strings"},
      {"an environment name with '='", job_with(R"("environment": {"A=B": "1"})"), 2,
       "jobs[0].environment: the name \"A=B\" is empty or has a '='"},
      {"an environment name empty", job_with(R"("environment": {"": "1"})"), 2,
       "jobs[0].environment: the name \"\" is empty or has a '='"},
      {"an environment name with a NUL", job_with(R"("environment": {"A\u0000B": "1"})"), 2,
       R"(jobs[0].environment: the name "A\x00B" contains a NUL byte)"},
      {"an environment value a number", job_with(R"("environment": {"A": 1})"), 2,
       "jobs[0].environment.A: must be a string"},
      {"an environment value null", job_with(R"("environment": {"A": null})"), 2,
       "jobs[0].environment.A: must be a string"},
      {"an environment value with a NUL", job_with(R"("environment": {"A": "1\u00002"})"), 2,
       R"(jobs[0].environment.A: "1\x002" contains a NUL byte)"},
  };
  return rows;
}

void check(const ConfigRow& row, const std::string& url, const fs::path& dir) {
  INFO(row);
  const auto path = dir / "bad.json";
  std::ofstream(path, std::ios::trunc) << row.config;
  const auto result =
      Process({"--db", url, "serve", "--config", path.string(), "--server-id", "bad-input"}, dir, "serve")
          .wait_at_most(std::chrono::seconds(10));
  INFO("exit " << result.status << "\nstdout: " << result.out << "\nstderr: " << result.err);
  CHECK(result.status == row.status);
  // One line: jobctl serve: FILE: FIELD: PROBLEM
  CHECK(result.err.rfind("jobctl serve: " + path.string() + ": ", 0) == 0);
  CHECK(result.err.find(row.fragment) != std::string::npos);
  CHECK(result.err.find('\n') == result.err.size() - 1);
  CHECK(!jobrepo::encoding_problem(result.err));
  CHECK(result.out.empty());
  CHECK(!leaks(result.out));
  CHECK(!leaks(result.err));
}

std::string test_database() { return with_password(jobrepo::test::databases().make()); }

}  // namespace

TEST_CASE("bad input: the library gives each bad argument its documented code and a message naming it") {
  TempDir dir{"jobrepo-bad-input"};
  Seeded db(test_database());
  jobrepo::Scheduler scheduler("bad-input", *db.store);
  scheduler.register_job(handler("registered"));
  const auto rows = library_rows(db, scheduler, dir.path);
  CHECK(rows.size() >= min_library_rows);
  for (const auto& row : rows) check(row);
  // The edges of the ranges are accepted.
  CHECK_NOTHROW(db.repo.update_job_next_run("idle", jobrepo::max_offset));
  CHECK_NOTHROW(db.repo.update_job_next_run("idle", -jobrepo::max_offset));
  CHECK_NOTHROW(db.repo.interrupt_runs(jobrepo::max_offset));
  CHECK_NOTHROW(db.repo.prune_runs(jobrepo::max_offset));
  CHECK_NOTHROW(db.repo.update_progress(db.running, 0, 0));
  CHECK_NOTHROW(db.repo.create_job(repeat("\xc3\xa9", 127), repeat("d", 1023)));
  // Nothing was written by a failed call: the seeded runs are as they were.
  CHECK(db.repo.lookup_run(db.running)->status == jobrepo::Status::running);
  CHECK(db.repo.lookup_run(db.completed)->status == jobrepo::Status::completed);
  CHECK(db.repo.list_jobs().size() == 7);  // the five, "registered" and the one above
  CHECK(!fs::exists(dir.path / "cut"));    // the path cut at its NUL byte
  // A refused payload replaced none: the one that waits is the first.
  CHECK(db.repo.lookup_job("running")->requested_payload == std::optional<std::string>("[1]"));
  CHECK(!db.repo.lookup_job("idle")->requested_payload);
}

TEST_CASE("bad input: jobctl exits 2 for usage errors and 1 with the code for failed operations") {
  Cli cli;
  Seeded db(with_password(cli.url));
  const Listener listener;
  const auto rows = cli_rows(db, cli.dir.path, "127.0.0.1:" + std::to_string(listener.port));
  CHECK(rows.size() >= min_cli_rows);
  for (const auto& row : rows) check(row, db.url, cli.dir.path);
  CHECK(!fs::exists(cli.dir.path / "typo.db"));
}

TEST_CASE("bad input: a bad serve config exits 2 naming the field, before touching the database") {
  TempDir dir{"jobrepo-bad-input"};
  // A database that does not exist yet (SQLite) or is not migrated (PostgreSQL).
  const std::string url =
      jobrepo::test::scheduler_on_postgres() ? test_database() : "sqlite:" + (dir.path / "untouched.db").string();
  const auto rows = config_rows(dir.path);
  CHECK(rows.size() >= min_config_rows);
  for (const auto& row : rows) check(row, url, dir.path);
  if (jobrepo::test::scheduler_on_postgres()) {
    auto store = jobrepo::open_store(url);
    jobrepo::Repository repo(*store);
    std::string message;
    CHECK(jobrepo::test::code_of([&] { repo.list_jobs(); }, &message) == ErrorCode::schema_mismatch);
  } else {
    CHECK(!fs::exists(dir.path / "untouched.db"));
  }
}
