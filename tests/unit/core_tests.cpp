// Core: types, errors, the backend registry, run ids, and the Repository's
// argument checks (which must happen before any I/O).
#include <jobrepo/jobrepo.hpp>

#include "error_of.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using jobrepo::ErrorCode;
using jobrepo::Status;
using jobrepo::test::code_of;

namespace {

// A Store whose every call fails the test: proves a call did no I/O.
class NoIoStore : public jobrepo::Store {
 public:
  int calls = 0;
  jobrepo::StoreContract8 contract() const override { return {}; }
  void migrate() override { touch(); }
  jobrepo::Job create_job(const jobrepo::NewJob&) override { return touch(), jobrepo::Job{}; }
  jobrepo::Job ensure_job(const jobrepo::NewJob&) override { return touch(), jobrepo::Job{}; }
  std::optional<jobrepo::Job> lookup_job(const std::string&, const std::string&) override {
    return touch(), std::nullopt;
  }
  std::vector<jobrepo::Job> list_jobs(const jobrepo::JobQuery&) override {
    return touch(), std::vector<jobrepo::Job>{};
  }
  std::optional<jobrepo::Job> reschedule_job(const std::string&, const std::string&, const jobrepo::Due&) override {
    return touch(), std::nullopt;
  }
  jobrepo::Timestamp now() override { return touch(), jobrepo::Timestamp{}; }
  bool delete_job(const std::string&, const std::string&) override { return touch(), false; }
  std::vector<jobrepo::Run> list_runs(const jobrepo::RunQuery&) override {
    return touch(), std::vector<jobrepo::Run>{};
  }
  std::int64_t prune_runs(const std::string&, std::chrono::microseconds) override { return touch(), 0; }
  std::optional<std::int64_t> prune_job_runs(const std::string&, const jobrepo::JobRunsPrune&) override {
    return touch(), std::nullopt;
  }
  std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest&) override {
    return touch(), std::vector<jobrepo::Run>{};
  }
  std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition>) override {
    return touch(), std::vector<std::optional<jobrepo::Run>>{};
  }
  std::vector<jobrepo::Run> interrupt_stale_runs(const jobrepo::StaleRunQuery&) override {
    return touch(), std::vector<jobrepo::Run>{};
  }
  std::optional<jobrepo::Run> lookup_run(const std::string&, const std::string&) override {
    return touch(), std::nullopt;
  }
  std::optional<jobrepo::Job> set_job_paused(const std::string&, const std::string&, bool) override {
    return touch(), std::nullopt;
  }
  std::optional<jobrepo::Job> request_run(const std::string&, const std::string&,
                                          const std::optional<std::string>&) override {
    return touch(), std::nullopt;
  }
  std::optional<jobrepo::Run> request_cancel(const std::string&, const std::string&) override {
    return touch(), std::nullopt;
  }
  jobrepo::ServerLease record_server(const jobrepo::ServerRecord&) override { return touch(), jobrepo::ServerLease{}; }
  void remove_server(const std::string&, const std::string&, const std::string&) override { touch(); }
  std::optional<jobrepo::Run> record_work_end(const std::string&, const std::string&, jobrepo::Timestamp) override {
    return touch(), std::nullopt;
  }
  std::vector<jobrepo::Serving> list_servings(const std::string&, const std::optional<std::string>&) override {
    return touch(), std::vector<jobrepo::Serving>{};
  }

 private:
  void touch() { ++calls; }
};

}  // namespace

TEST_CASE("Status spells exactly the four words and parses them back") {
  for (const auto status : {Status::running, Status::completed, Status::failed, Status::interrupted}) {
    CHECK(jobrepo::parse_status(jobrepo::to_string(status)) == status);
  }
  CHECK(jobrepo::to_string(Status::interrupted) == "interrupted");
  CHECK(!jobrepo::parse_status("Running").has_value());
  CHECK(!jobrepo::parse_status("").has_value());
  CHECK(!jobrepo::is_final(Status::running));
  CHECK(jobrepo::is_final(Status::completed));
  CHECK(jobrepo::is_final(Status::failed));
  CHECK(jobrepo::is_final(Status::interrupted));
}

TEST_CASE("every scheduler event kind has a name of its own") {
  using Kind = jobrepo::SchedulerEvent::Kind;
  const std::vector<Kind> kinds{Kind::claimed,     Kind::started,          Kind::completed, Kind::failed,
                                Kind::cancelled,   Kind::interrupted_peer, Kind::error,     Kind::skipped,
                                Kind::interrupted, Kind::warning};
  std::set<std::string> names;
  for (const auto kind : kinds) names.insert(std::string(jobrepo::to_string(kind)));
  CHECK(names.size() == kinds.size());
  CHECK(names.count("unknown") == 0);
  CHECK(jobrepo::to_string(Kind::interrupted_peer) == "interrupted_peer");
  CHECK(jobrepo::to_string(Kind::interrupted) == "interrupted");
}

TEST_CASE("due_state: a time makes a job due, or only a request: on demand, or after failures, gave up") {
  using jobrepo::DueState;
  const auto job = [](jobrepo::Timestamp next, std::int64_t failures, bool run_requested = false) {
    jobrepo::Job j{.plugin_id = "p", .name = "j", .description = "d", .next_scheduled_run = next};
    j.consecutive_failures = failures;
    j.run_requested = run_requested;
    return j;
  };
  const auto far = jobrepo::never - 1us;
  CHECK(jobrepo::due_state(job(jobrepo::earliest_time, 0)) == DueState::scheduled);
  CHECK(jobrepo::due_state(job(far, 0)) == DueState::scheduled);
  CHECK(jobrepo::due_state(job(far, 7)) == DueState::scheduled);  // retrying after a back-off
  CHECK(jobrepo::due_state(job(jobrepo::never, 0)) == DueState::on_demand);
  CHECK(jobrepo::due_state(job(jobrepo::never, 1)) == DueState::gave_up);
  CHECK(jobrepo::due_state(job(jobrepo::never, 3, true)) == DueState::gave_up);  // the request is its own field
  // A time past `never` (SQL by hand, read back saturated) is no time either.
  CHECK(jobrepo::due_state(job(jobrepo::timestamp_from_us(std::numeric_limits<std::int64_t>::max()), 0)) ==
        DueState::on_demand);
  CHECK(jobrepo::to_string(DueState::scheduled) == "scheduled");
  CHECK(jobrepo::to_string(DueState::on_demand) == "on_demand");
  CHECK(jobrepo::to_string(DueState::gave_up) == "gave_up");
}

TEST_CASE("Error keeps its code and native code, on one line") {
  const jobrepo::Error e(ErrorCode::busy, "run_jobs: server \"s1\":\nlocked\r\n", "sqlite 5");
  CHECK(e.code() == ErrorCode::busy);
  CHECK(e.native_code() == "sqlite 5");
  CHECK(std::string(e.what()) == "run_jobs: server \"s1\": locked");
  CHECK(jobrepo::to_string(ErrorCode::invalid_job_run_state) == "invalid_job_run_state");
  CHECK(jobrepo::to_string(ErrorCode::schema_mismatch) == "schema_mismatch");
}

TEST_CASE("run ids are 22 URL-safe characters, do not repeat and never start with a dash") {
  std::set<std::string> seen;
  int underscores = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto id = jobrepo::generate_run_id();
    REQUIRE(id.size() == 22);
    REQUIRE(id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
            std::string::npos);
    // A leading '-' would make `jobctl run cancel ID` read an option when
    // the id starts with "--" (about 1 in 64 ids started with '-').
    REQUIRE(id.front() != '-');
    underscores += id.front() == '_' ? 1 : 0;
    seen.insert(id);
  }
  CHECK(seen.size() == 20000);
  // '_' stands in for '-': about 2 in 64 (625 of 20,000), not never.
  CHECK(underscores > 400);
  CHECK(underscores < 900);
}

TEST_CASE("open_store names a scheme that is not linked, never the rest of the URL") {
  CHECK(jobrepo::url_scheme("sqlite::memory:") == "sqlite");
  CHECK(jobrepo::url_scheme("postgresql://u:p@h/db") == "postgresql");
  CHECK(jobrepo::url_scheme("no scheme here").empty());
  try {
    jobrepo::open_store("oracle://admin:hunter2@db.example/jobs");
    FAIL("expected an error");
  } catch (const jobrepo::Error& e) {
    CHECK(e.code() == ErrorCode::invalid_parameter);
    const std::string message = e.what();
    CHECK(message.find("\"oracle\"") != std::string::npos);
    CHECK(message.find("sqlite") != std::string::npos);  // what is linked
    CHECK(message.find("hunter2") == std::string::npos);
  }
  CHECK(code_of([] { jobrepo::open_store("relative/path.db"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([] { jobrepo::register_backend("bad scheme", [](auto&, auto&) { return nullptr; }); }) ==
        ErrorCode::invalid_parameter);
}

TEST_CASE("a third-party backend registers its scheme explicitly") {
  jobrepo::register_backend("memtest", [](const std::string& url, const jobrepo::StoreOptions&) {
    // A third-party backend would parse its URL; this one forwards to SQLite.
    CHECK(url == "memtest:anything");
    return jobrepo::open_store("sqlite::memory:");
  });
  const auto schemes = jobrepo::registered_backends();
  CHECK(std::find(schemes.begin(), schemes.end(), "memtest") != schemes.end());
  auto store = jobrepo::open_store("memtest:anything");
  store->migrate();
  jobrepo::Repository repo(*store);
  CHECK(repo.create_job("j", "d").name == "j");
  // Without a redactor of its own, messages show only its scheme.
  CHECK(jobrepo::redact_url("memtest:user:hunter2@anything") == "memtest:***");
}

TEST_CASE("redact_url shows each backend's URLs without their secrets") {
  CHECK(jobrepo::redact_url("sqlite:/srv/jobs.db?synchronous=normal") == "sqlite:/srv/jobs.db?synchronous=normal");
  CHECK(jobrepo::redact_url("sqlite::memory:") == "sqlite::memory:");
  CHECK(jobrepo::redact_url("postgresql://u:hunter2@db/jobs") == "postgresql://u:***@db/jobs");
  CHECK(jobrepo::redact_url("postgres://u:hun%zzter2@db/jobs") == "postgres://***");
  CHECK(jobrepo::redact_url("mysql://u:hunter2@db/jobs") == "mysql://u:***@db/jobs");
  CHECK(jobrepo::redact_url("mariadb://u:hun@ter2@db/jobs") == "mariadb://***");
  CHECK(jobrepo::redact_url("oracle://u:hunter2@db/jobs") == "oracle:***");
  CHECK(jobrepo::redact_url("host=db password=hunter2") == "***");  // no scheme
  CHECK(jobrepo::redact_url("") == "***");
}

TEST_CASE("Repository checks its arguments before any I/O") {
  NoIoStore store;
  jobrepo::Repository repo(store);
  CHECK(code_of([&] { repo.create_job("", "d"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.create_job("n", ""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.create_job(" ", "d"); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.create_job(std::string(128, 'n'), "d"); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.create_job("n", std::string(1024, 'd')); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.ensure_job("", "d"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.ensure_job("n", " "); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.lookup_job(""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.update_job_next_run("", 1s); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.run_jobs(""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.run_jobs("  "); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.update_progress("", 1, 2); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.complete_run("", 1s); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.fail_run(""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.interrupt_runs(-1us); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.lookup_run(""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.delete_job(""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_runs(-1s); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_job_runs("", {.keep_last = 1}); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_job_runs("j", {.keep_last = 0}); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_job_runs("j", {.older_than = -1us}); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_job_runs("j", {.keep_last = 1, .limit = -1}); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.prune_job_runs("j", {.keep_last = 1, .limit = jobrepo::max_pruned_runs + 1}); }) ==
        ErrorCode::invalid_parameter);
  CHECK(code_of([&] { jobrepo::Repository bad(store, {.plugin_id = ""}); }) == ErrorCode::invalid_parameter);
  // A run's arguments (payload_problem), before the job is looked up.
  CHECK(code_of([&] { repo.run_now("", "{}"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.run_now("j", ""); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.run_now("j", "{\"a\": 1,}"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { repo.run_now("j", std::string(jobrepo::max_payload_bytes + 1, ' ')); }) ==
        ErrorCode::invalid_parameter);
  std::string payload_message;
  code_of([&] { repo.run_now("j", "[1,]"); }, &payload_message);
  CHECK(payload_message ==
        "run_now: payload of job \"j\" is not valid JSON: at byte 4 (\"]\"): expected a value (an object, array, "
        "string, number, true, false or null)");
  code_of([&] { repo.run_now("j", std::string(jobrepo::max_payload_bytes + 1, ' ')); }, &payload_message);
  CHECK(payload_message == "run_now: payload of job \"j\" has 65537 bytes, more than 65536");
  // Durations beyond max_offset, either way.
  // (microseconds::max() itself means never for a due time: see the conformance suite.)
  for (const auto bad : {std::chrono::microseconds::max() - 1us, -jobrepo::max_offset - 1us}) {
    CHECK(code_of([&] { repo.create_job("n", "d", {.next_run_in = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.ensure_job("n", "d", {.next_run_in = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.update_job_next_run("n", bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.complete_run("r", bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.fail_run("r", {.retry_in = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.interrupt_runs(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.prune_runs(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.prune_job_runs("j", {.older_than = bad}); }) == ErrorCode::invalid_parameter);
    const std::vector<jobrepo::RunUpdate> updates = {{.run_id = "r", .status = Status::completed, .next_run_in = bad}};
    const auto results = repo.update_runs(updates);
    REQUIRE(results.size() == 1);
    REQUIRE(results[0].error);
    CHECK(results[0].error->code() == ErrorCode::invalid_parameter);
  }
  std::string message;
  code_of([&] { repo.complete_run("r", std::chrono::microseconds::max() - 1us); }, &message);
  CHECK(message == "complete_run: next_run_in 9223372036854775806us is out of range (more than 100 years)");
  code_of([&] { repo.prune_job_runs("j", {.keep_last = -3}); }, &message);
  CHECK(message == "prune_job_runs: keep_last -3 is less than 1");
  code_of([&] { repo.prune_job_runs("j", {.keep_last = 1, .limit = 10001}); }, &message);
  CHECK(message == "prune_job_runs: limit 10001 is out of range (1 to 10000, or 0 for 10000)");
  CHECK(store.calls == 0);
}

TEST_CASE("Repository passes limits to the store as documented") {
  struct Recorder : NoIoStore {
    std::int64_t list_limit = 0, claim_limit = 0;
    std::vector<jobrepo::Job> list_jobs(const jobrepo::JobQuery& q) override {
      list_limit = q.limit;
      return {};
    }
    std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest& r) override {
      claim_limit = r.limit;
      return {};
    }
  } store;
  jobrepo::Repository repo(store);
  repo.list_jobs();
  CHECK(store.list_limit == 10000);
  repo.list_jobs({.limit = 5});
  CHECK(store.list_limit == 5);
  repo.list_jobs({.limit = -1});
  CHECK(store.list_limit < 0);
  jobrepo::Repository small(store, {.plugin_id = "p", .default_limit = 7});
  small.list_jobs();
  CHECK(store.list_limit == 7);
  small.list_jobs({.limit = 20000});
  CHECK(store.list_limit == 20000);
  jobrepo::Repository zero(store, {.plugin_id = "p", .default_limit = 0});
  zero.list_jobs();
  CHECK(store.list_limit == 10000);
  repo.run_jobs("s");
  CHECK(store.claim_limit == 1);
  repo.run_jobs("s", {.limit = 4});
  CHECK(store.claim_limit == 4);
  repo.run_jobs("s", {.limit = -3});
  CHECK(store.claim_limit < 0);
}

TEST_CASE("a StoreWrapper injects faults - a failed call writes nothing") {
  auto real = jobrepo::open_store("sqlite::memory:");
  real->migrate();
  struct Flaky : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    bool fail = false;
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      if (fail) throw jobrepo::Error(ErrorCode::unavailable, "update_run: injected connection loss");
      return StoreWrapper::transition_runs(c);
    }
  } flaky(*real);
  jobrepo::Repository repo(flaky);
  repo.create_job("j", "d");
  const auto run = repo.run_jobs("s1").at(0);
  flaky.fail = true;
  CHECK(code_of([&] { repo.complete_run(run.private_id, 1h); }) == ErrorCode::unavailable);
  CHECK(repo.lookup_run(run.private_id)->status == Status::running);
  flaky.fail = false;
  CHECK(repo.complete_run(run.private_id, 1h).status == Status::completed);
  // The clock hook passes through the wrapper.
  flaky.set_clock_offset(2h);
  CHECK(repo.run_jobs("s1").size() == 1);
}

TEST_CASE("update_runs: a batch the store fails goes one change at a time - a transient failure fails the call") {
  auto real = jobrepo::open_store("sqlite::memory:");
  real->migrate();
  // Fails every transition_runs call that names the poisoned run (as
  // PostgreSQL fails a whole statement), and with batch_error every call of
  // more than one change.
  struct Poisoned : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::string poisoned_run;
    std::optional<ErrorCode> batch_error;
    int calls = 0;
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      ++calls;
      if (batch_error && c.size() > 1) throw jobrepo::Error(*batch_error, "update_run: injected batch failure");
      for (const auto& change : c) {
        if (change.run_id == poisoned_run) throw jobrepo::Error(ErrorCode::internal, "update_run: injected poison");
      }
      return StoreWrapper::transition_runs(c);
    }
  } store(*real);
  jobrepo::Repository repo(store);
  for (const auto* name : {"a", "b", "c"}) repo.create_job(name, "d");
  const auto runs = repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 3);
  const auto& good = runs[0];
  const auto& poisoned = runs[1];
  const auto& other = runs[2];
  store.poisoned_run = poisoned.private_id;

  const std::vector<jobrepo::RunUpdate> updates = {
      {.run_id = good.private_id, .status = Status::completed, .next_run_in = 1h},
      {.run_id = poisoned.private_id, .status = Status::completed, .next_run_in = 1h},
      {.run_id = other.private_id, .completed_count = 2, .total_count = 3},
  };
  const auto results = repo.update_runs(updates);
  REQUIRE(results.size() == 3);
  REQUIRE(results[0].run);
  CHECK(results[0].run->status == Status::completed);
  CHECK(repo.lookup_job(good.job_name)->next_scheduled_run == *results[0].run->end_time + 1h);
  CHECK(!results[1].run);
  REQUIRE(results[1].error);
  CHECK(results[1].error->code() == ErrorCode::internal);
  CHECK(std::string(results[1].error->what()) == "update_runs: injected poison");
  CHECK(repo.lookup_run(poisoned.private_id)->status == Status::running);
  REQUIRE(results[2].run);
  CHECK(results[2].run->completed_count == 2);
  CHECK(*repo.lookup_run(good.private_id) == *results[0].run);
  CHECK(*repo.lookup_run(other.private_id) == *results[2].run);
  CHECK(store.calls == 4);  // the batch, then each change alone

  // A transient failure of the batch is the whole call's: the caller retries it.
  store.poisoned_run.clear();
  for (const auto code : {ErrorCode::busy, ErrorCode::unavailable}) {
    store.batch_error = code;
    store.calls = 0;
    const std::vector<jobrepo::RunUpdate> retry = {
        {.run_id = poisoned.private_id, .status = Status::completed, .next_run_in = 1h},
        {.run_id = other.private_id, .status = Status::failed},
    };
    CHECK(code_of([&] { repo.update_runs(retry); }) == code);
    CHECK(store.calls == 1);
    CHECK(repo.lookup_run(poisoned.private_id)->status == Status::running);
    CHECK(*repo.lookup_run(other.private_id) == *results[2].run);
  }
}

TEST_CASE("find_overlaps reports runs of one job that overlap, and only those") {
  using namespace std::chrono;
  const auto at = [](int ms) { return jobrepo::Timestamp(milliseconds(ms)); };
  const auto run = [&](std::string id, std::string job, int start, std::optional<int> end) {
    jobrepo::Run r;
    r.private_id = std::move(id);
    r.job_plugin_id = "p";
    r.job_name = std::move(job);
    r.create_time = at(start);
    r.end_time = end ? std::optional<jobrepo::Timestamp>(at(*end)) : std::nullopt;
    return r;
  };
  // Back to back within one millisecond tick, in any order: no overlap.
  CHECK(jobrepo::find_overlaps({run("b", "j", 5, 6), run("a", "j", 5, 5), run("c", "j", 6, 7)}).empty());
  // Another job at the same time: no overlap.
  CHECK(jobrepo::find_overlaps({run("a", "j", 0, 10), run("b", "k", 5, 6)}).empty());
  // A run that started before the previous one ended.
  const auto found = jobrepo::find_overlaps({run("a", "j", 0, 10), run("b", "j", 5, 12)});
  REQUIRE(found.size() == 1);
  CHECK(found.front().first.private_id == "a");
  CHECK(found.front().second.private_id == "b");
  // A run still running when a later one started.
  CHECK(jobrepo::find_overlaps({run("a", "j", 0, std::nullopt), run("b", "j", 50, 60)}).size() == 1);
}

namespace {

using namespace std::string_literals;

// Text that no entry point may take: a NUL byte (PostgreSQL would cut the
// text there), or bytes that are not UTF-8 (SQLite would store them).
const std::vector<std::string> malformed_texts = {
    "nul\0b"s,          // a NUL byte
    "bad\xff",          // a byte never in UTF-8
    "\xc3(",            // a lead byte without its continuation
    "cut\xe2\x82",      // a sequence cut short at the end
    "\xc0\xaf",         // an overlong '/'
    "\xed\xa0\x80",     // a UTF-16 surrogate
    "\xf4\x90\x80\x80"  // beyond U+10FFFF
};

}  // namespace

TEST_CASE("text with a NUL byte or invalid UTF-8 is invalid_parameter at every entry point, before any I/O") {
  NoIoStore store;
  jobrepo::Repository repo(store);
  for (const auto& bad : malformed_texts) {
    INFO("text of " << bad.size() << " bytes");
    CHECK(code_of([&] { repo.create_job(bad, "d"); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.create_job("n", bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.ensure_job(bad, "d"); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.ensure_job("n", bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.lookup_job(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.update_job_next_run(bad, 1s); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.delete_job(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.list_jobs({.name = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.list_runs({.job_name = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.run_jobs(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] {
            repo.run_jobs("s", {.only_jobs = std::vector<std::string>{"ok", bad}});
          }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.interrupt_runs(1s, {.server_id = bad}); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { jobrepo::Repository other(store, {.plugin_id = bad}); }) == ErrorCode::invalid_parameter);
    // Run ids too.
    CHECK(code_of([&] { repo.lookup_run(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.update_progress(bad, 1, 2); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.complete_run(bad, 1s); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.fail_run(bad); }) == ErrorCode::invalid_parameter);
    const std::vector<jobrepo::RunUpdate> updates = {{.run_id = bad, .status = Status::failed}};
    const auto results = repo.update_runs(updates);
    REQUIRE(results.size() == 1);
    REQUIRE(results[0].error);
    CHECK(results[0].error->code() == ErrorCode::invalid_parameter);
  }
  // A run id is URL-safe characters only (A-Z a-z 0-9 - _).
  for (const std::string bad : {"has space 000000", "slash/000000000000", "dot.0000000000000", "quote\"00000000000",
                                "\xc3\xa9t\xc3\xa9-0000000000000"}) {
    INFO(bad);
    CHECK(code_of([&] { repo.lookup_run(bad); }) == ErrorCode::invalid_parameter);
    CHECK(code_of([&] { repo.complete_run(bad, 1s); }) == ErrorCode::invalid_parameter);
  }
  // invalid_parameter wins over check_constraint, whichever argument has it.
  CHECK(code_of([&] { repo.create_job(std::string(128, 'n'), "\xff"); }) == ErrorCode::invalid_parameter);
  // Plugin ids follow the schema's rule (1-127 characters after trimming), server ids theirs (1-255).
  CHECK(code_of([&] { jobrepo::Repository other(store, {.plugin_id = std::string(128, 'p')}); }) ==
        ErrorCode::check_constraint);
  CHECK(code_of([&] { jobrepo::Repository other(store, {.plugin_id = "   "}); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { repo.run_jobs(std::string(256, 's')); }) == ErrorCode::check_constraint);
  // The message names the value, escaped, so that it is one line of valid UTF-8.
  std::string message;
  code_of([&] { repo.create_job("nul\0b"s, "d"); }, &message);
  CHECK(message == R"(create_job: name "nul\x00b" contains a NUL byte)");
  code_of([&] { repo.lookup_job("bad\xff"); }, &message);
  CHECK(message == R"(lookup_job: name "bad\xff" is not valid UTF-8)");
  code_of([&] { repo.lookup_run("a b"); }, &message);
  CHECK(message == R"(lookup_run: run id "a b" has characters other than A-Z a-z 0-9 - _)");
  CHECK(store.calls == 0);
}

TEST_CASE("a message cuts a long value between characters, never inside one") {
  NoIoStore store;
  jobrepo::Repository repo(store);
  std::string message;
  code_of([&] { repo.create_job(std::string(59, 'n') + "\xc3\xa9\xc3\xa9" + std::string(100, 'n'), "d"); }, &message);
  CHECK(message == "create_job: name \"" + std::string(59, 'n') + "\xc3\xa9...\" has 161 characters, more than 127");
}

TEST_CASE("Scheduler refuses a server id that its claims would be refused for") {
  auto store = jobrepo::open_store("sqlite::memory:");
  store->migrate();
  CHECK(code_of([&] { jobrepo::Scheduler scheduler(std::string(256, 's'), *store); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { jobrepo::Scheduler scheduler("   ", *store); }) == ErrorCode::check_constraint);
  CHECK(code_of([&] { jobrepo::Scheduler scheduler("nul\0b"s, *store); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { jobrepo::Scheduler scheduler("bad\xff", *store); }) == ErrorCode::invalid_parameter);
  const jobrepo::Scheduler longest(std::string(255, 's'), *store);
  CHECK(longest.server_id().size() == 255);
}

TEST_CASE("a Repository error names the method its caller called, whatever the store called it") {
  auto real = jobrepo::open_store("sqlite::memory:");
  real->migrate();
  // Every call fails with a message in the store's own words: its method's
  // name, or no operation at all.
  struct Failing : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    bool failing = false;
    bool prefixed = true;
    void fail(const char* method) const {
      if (failing) {
        throw jobrepo::Error(ErrorCode::unavailable,
                             prefixed ? std::string(method) + ": injected" : std::string("injected"));
      }
    }
    jobrepo::Job create_job(const jobrepo::NewJob& j) override {
      return fail("create_job"), StoreWrapper::create_job(j);
    }
    jobrepo::Job ensure_job(const jobrepo::NewJob& j) override {
      return fail("ensure_job"), StoreWrapper::ensure_job(j);
    }
    std::optional<jobrepo::Job> lookup_job(const std::string& p, const std::string& n) override {
      return fail("lookup_job"), StoreWrapper::lookup_job(p, n);
    }
    std::vector<jobrepo::Job> list_jobs(const jobrepo::JobQuery& q) override {
      return fail("list_jobs"), StoreWrapper::list_jobs(q);
    }
    std::optional<jobrepo::Job> reschedule_job(const std::string& p, const std::string& n,
                                               const jobrepo::Due& d) override {
      return fail("reschedule_job"), StoreWrapper::reschedule_job(p, n, d);
    }
    bool delete_job(const std::string& p, const std::string& n) override {
      return fail("delete_job"), StoreWrapper::delete_job(p, n);
    }
    std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest& r) override {
      return fail("claim_runs"), StoreWrapper::claim_runs(r);
    }
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      return fail("transition_runs"), StoreWrapper::transition_runs(c);
    }
    std::vector<jobrepo::Run> interrupt_stale_runs(const jobrepo::StaleRunQuery& q) override {
      return fail("interrupt_stale_runs"), StoreWrapper::interrupt_stale_runs(q);
    }
    std::optional<jobrepo::Run> lookup_run(const std::string& p, const std::string& id) override {
      return fail("lookup_run"), StoreWrapper::lookup_run(p, id);
    }
    std::vector<jobrepo::Run> list_runs(const jobrepo::RunQuery& q) override {
      return fail("list_runs"), StoreWrapper::list_runs(q);
    }
    std::int64_t prune_runs(const std::string& p, std::chrono::microseconds d) override {
      return fail("prune_runs"), StoreWrapper::prune_runs(p, d);
    }
    std::optional<std::int64_t> prune_job_runs(const std::string& p, const jobrepo::JobRunsPrune& r) override {
      return fail("prune_job_runs"), StoreWrapper::prune_job_runs(p, r);
    }
  } store(*real);
  jobrepo::Repository repo(store);
  repo.create_job("j", "d");
  const auto run = repo.run_jobs("s1").at(0);
  const std::vector<jobrepo::RunUpdate> one = {{.run_id = run.private_id, .status = Status::failed}};
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"create_job", [&] { repo.create_job("k", "d"); }},
      {"ensure_job", [&] { repo.ensure_job("k", "d"); }},
      {"lookup_job", [&] { repo.lookup_job("j"); }},
      {"list_jobs", [&] { repo.list_jobs(); }},
      {"update_job_next_run", [&] { repo.update_job_next_run("j", 1h); }},
      {"delete_job", [&] { repo.delete_job("j"); }},
      {"run_jobs", [&] { repo.run_jobs("s1"); }},
      {"update_progress", [&] { repo.update_progress(run.private_id, 1, 2); }},
      {"complete_run", [&] { repo.complete_run(run.private_id, 1h); }},
      {"fail_run", [&] { repo.fail_run(run.private_id); }},
      {"update_runs", [&] { repo.update_runs(one); }},
      {"interrupt_runs", [&] { repo.interrupt_runs(0s); }},
      {"lookup_run", [&] { repo.lookup_run(run.private_id); }},
      {"list_runs", [&] { repo.list_runs(); }},
      {"prune_runs", [&] { repo.prune_runs(1h); }},
      {"prune_job_runs", [&] { repo.prune_job_runs("j", {.keep_last = 1}); }},
  };
  store.failing = true;
  for (const bool prefixed : {true, false}) {
    store.prefixed = prefixed;
    for (const auto& [method, call] : calls) {
      std::string message;
      CHECK(code_of(call, &message) == ErrorCode::unavailable);
      CHECK(message == method + ": injected");
    }
  }
  // In a batch that the store fails and that goes again one change at a
  // time, each update's error names update_runs too.
  store.failing = false;
  repo.create_job("k", "d");
  const auto other = repo.run_jobs("s1").at(0);
  struct FailsSingles : jobrepo::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> c) override {
      throw jobrepo::Error(ErrorCode::internal, c.size() > 1 ? "transition_runs: batch" : "transition_runs: single");
    }
  } singles(*real);
  jobrepo::Repository batch(singles);
  const std::vector<jobrepo::RunUpdate> two = {{.run_id = run.private_id, .status = Status::failed},
                                               {.run_id = other.private_id, .status = Status::failed}};
  const auto results = batch.update_runs(two);
  REQUIRE(results.size() == 2);
  for (const auto& result : results) {
    REQUIRE(result.error);
    CHECK(std::string(result.error->what()) == "update_runs: single");
  }
}

TEST_CASE("open_store refuses a negative pool size") {
  jobrepo::StoreOptions options;
  options.pool_size = -1;
  std::string message;
  CHECK(code_of([&] { jobrepo::open_store("sqlite::memory:", options); }, &message) == ErrorCode::invalid_parameter);
  CHECK(message == "open_store: pool_size -1 is negative");
}

TEST_CASE("text.hpp: the text rules, their codes and messages") {
  using jobrepo::TextKind;
  const auto code = [](TextKind kind, std::string_view value) {
    const auto problem = jobrepo::text_problem(kind, value);
    return problem ? std::optional<ErrorCode>(problem->code) : std::nullopt;
  };
  CHECK(!code(TextKind::job_name, "report"));
  CHECK(!code(TextKind::job_name, "  padded  "));
  CHECK(code(TextKind::job_name, "") == ErrorCode::invalid_parameter);
  CHECK(jobrepo::text_problem(TextKind::job_name, "")->message == "is missing");
  CHECK(code(TextKind::job_name, "   ") == ErrorCode::check_constraint);
  // Limits in code points after trimming: 127, 1023, 255, 127.
  for (const auto& [kind, limit] : std::vector<std::pair<TextKind, std::size_t>>{{TextKind::job_name, 127},
                                                                                 {TextKind::description, 1023},
                                                                                 {TextKind::server_id, 255},
                                                                                 {TextKind::plugin_id, 127}}) {
    std::string fits;
    for (std::size_t i = 0; i < limit; ++i) fits += "\xc3\xa9";
    CHECK(!code(kind, " " + fits + " "));
    CHECK(code(kind, fits + "x") == ErrorCode::check_constraint);
  }
  for (const auto& bad : malformed_texts) {
    CHECK(code(TextKind::description, bad) == ErrorCode::invalid_parameter);
    CHECK(jobrepo::encoding_problem(bad).has_value());
  }
  CHECK(!jobrepo::encoding_problem(""));
  CHECK(!jobrepo::encoding_problem("\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \x7f\t"));  // U+1F600, U+20AC, U+00E9
  // Run ids: URL-safe characters, any length.
  CHECK(!code(TextKind::run_id, "Ab9-_"));
  CHECK(code(TextKind::run_id, "a b") == ErrorCode::invalid_parameter);
  CHECK(code(TextKind::run_id, "") == ErrorCode::invalid_parameter);
  CHECK(jobrepo::trimmed_length("  \xc3\xa9t\xc3\xa9  ") == 3);
  CHECK(jobrepo::trimmed_length("   ") == 0);
  // Quoting: escapes, one line, cut between characters.
  CHECK(jobrepo::quote_text("a\"b\\c\n\x01\x7f\xff") == R"("a\"b\\c\n\x01\x7f\xff")");
  // The escapes are printable()'s: line breaks, tabs, C1 controls (U+0085 NEL, U+009B CSI) too.
  CHECK(jobrepo::quote_text("a\r\tb\xc2\x85\xc2\x9b\xc2\xa0") == R"("a\r\tb\xc2\x85\xc2\x9b)"
                                                                 "\xc2\xa0\"");
  CHECK(jobrepo::quote_text(std::string(61, 'x')) == "\"" + std::string(60, 'x') + "...\"");
  CHECK(jobrepo::quote_text(std::string(60, 'x')) == "\"" + std::string(60, 'x') + "\"");
}

TEST_CASE("text.hpp: printable shows any text on one visible line, by one rule that cannot be forged") {
  using jobrepo::printable;
  CHECK(printable("") == "");
  CHECK(printable("plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"quoted\"") ==
        "plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"quoted\"");
  // Line breaks and tabs by name, the backslash doubled, so that no text forges an escape.
  CHECK(printable("a\nb\rc\td\\e") == R"(a\nb\rc\td\\e)");
  CHECK(printable("already \\n escaped") == R"(already \\n escaped)");
  // Other C0 controls, DEL, C1 controls (each of their two bytes), invalid UTF-8: \xHH per byte.
  CHECK(printable(std::string("\0\x01\x1b[31m\x7f", 8)) == R"(\x00\x01\x1b[31m\x7f)");
  CHECK(printable("\xc2\x80\xc2\x85\xc2\x9b\xc2\x9f\xc2\xa0") == "\\xc2\\x80\\xc2\\x85\\xc2\\x9b\\xc2\\x9f\xc2\xa0");
  CHECK(printable("\xff\xfe a\xc3 \xc0\xaf \xed\xa0\x80") == R"(\xff\xfe a\xc3 \xc0\xaf \xed\xa0\x80)");
  // Never cut: one line of valid UTF-8 without a control character, whatever the bytes.
  std::string every;
  for (int c = 0; c < 256; ++c) every.push_back(static_cast<char>(c));
  const std::string shown = printable(every + every);
  CHECK(!jobrepo::encoding_problem(shown));
  for (const char c : shown) {
    CHECK(static_cast<unsigned char>(c) >= 0x20);
    CHECK(c != 0x7F);
  }
  CHECK(shown.find("\xc2\x80") == std::string::npos);
  // shown_text echoes a value as given when quote_text would only add quotes, else quoted: never long.
  CHECK(jobrepo::shown_text("web-1") == "web-1");
  CHECK(jobrepo::shown_text(std::string(60, 'd')) == std::string(60, 'd'));
  CHECK(jobrepo::shown_text(std::string(100000, 'd')) == "\"" + std::string(60, 'd') + "...\"");
  CHECK(jobrepo::shown_text("") == "\"\"");
  CHECK(jobrepo::shown_text("a b\n") == R"("a b\n")");
  CHECK(jobrepo::shown_text("say \"hi\"") == R"("say \"hi\"")");
  // quote_text is the same rule, quoted and cut: the two agree.
  CHECK(jobrepo::quote_text("a\nb\\\x01\xff") == "\"" + printable("a\nb\\\x01\xff") + "\"");
}

TEST_CASE("text.hpp: a payload is strict JSON of at most 64 KiB, and a message shows where it goes wrong") {
  const auto accepted = [](std::string_view payload) { return !jobrepo::payload_problem(payload).has_value(); };
  const auto why = [](std::string_view payload) {
    const auto problem = jobrepo::payload_problem(payload);
    REQUIRE(problem);
    CHECK(problem->code == ErrorCode::invalid_parameter);
    return problem->message;
  };
  // Every kind of value, at the top too, with whitespace around and between.
  for (const char* good :
       {"{}", "[]", "null", "true", "false", "0", "-0", "7", "-12.5e-3", "1E+2", "\"\"",
        " \t\r\n{ \"a\" : [ 1 , 2 ] }\n", R"({"a":{"b":[{"c":null}]},"a":2})",
        R"("\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00 \u0000")", "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "1.7976931348623157e308", "4.9e-324", "0e99999"}) {
    INFO(good);
    CHECK(accepted(good));
  }
  CHECK(why("") == "is empty (leave it out for a run without arguments)");
  CHECK(why(" ") ==
        "is not valid JSON: at the end: expected a value (an object, array, string, number, true, false or null)");
  CHECK(why("{\"a\": tru}") ==
        "is not valid JSON: at byte 7 (\"tru}\"): expected a value (an object, array, string, number, true, false or "
        "null)");
  CHECK(why("[1,]") ==
        "is not valid JSON: at byte 4 (\"]\"): expected a value (an object, array, string, number, "
        "true, false or null)");
  CHECK(why("{\"a\":1,}") == "is not valid JSON: at byte 8 (\"}\"): expected a string (a key of the object)");
  CHECK(why("{'a': 1}") == "is not valid JSON: at byte 2 (\"'a': 1}\"): expected a string (a key of the object)");
  CHECK(why("{\"a\" 1}") == "is not valid JSON: at byte 6 (\"1}\"): expected ':' after the key");
  CHECK(why("[1 2]") == "is not valid JSON: at byte 4 (\"2]\"): expected ',' or ']'");
  CHECK(why("{} {}") == "is not valid JSON: at byte 4 (\"{}\"): expected the end of the text (one JSON value only)");
  CHECK(why("[1") == "is not valid JSON: at the end: expected ',' or ']'");
  CHECK(why("\"open") == "is not valid JSON: at the end: the string does not end (no closing '\"')");
  CHECK(why("\"a\nb\"") ==
        "is not valid JSON: at byte 3 (\"\\nb\\\"\"): a control character in a string (write it as an escape, like "
        "\\n or \\u0001)");
  CHECK(why("\"\\x\"").find("expected an escape") != std::string::npos);
  CHECK(why("\"\\u12g4\"") == "is not valid JSON: at byte 6 (\"g4\\\"\"): expected four hexadecimal digits after \\u");
  CHECK(why("\"\\uD83D\"").find("an escaped high surrogate without a low one after it") != std::string::npos);
  CHECK(why("\"\\uD83D\\u0041\"").find("an escaped high surrogate without a low one after it") != std::string::npos);
  CHECK(why("\"\\uDE00\"").find("an escaped low surrogate without a high one before it") != std::string::npos);
  CHECK(why("\"\xff\"") == "is not valid JSON: at byte 2 (\"\\xff\\\"\"): not valid UTF-8");
  CHECK(why("\"\xc0\xaf\"").find("not valid UTF-8") != std::string::npos);  // overlong
  CHECK(why(std::string("[\0]", 3)).find("at byte 2 (\"\\x00]\")") != std::string::npos);
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN", "Infinity", "-Infinity", "TRUE", "nul",
                          "/* c */ 1", "[1] // c", "'a'", "{\"a\":1,,}"}) {
    INFO(bad);
    CHECK(why(bad).rfind("is not valid JSON: ", 0) == 0);
  }
  CHECK(why("01") == "is not valid JSON: at byte 2 (\"1\"): a number does not start with 0 followed by more digits");
  // Numbers that a double does not hold.
  CHECK(why("[1e400]") ==
        "is not valid JSON: at byte 2 (\"1e400]\"): the number is beyond what a double holds "
        "(about 1e-308 to 1e308, or 0)");
  CHECK(why("-1e400").find("beyond what a double holds") != std::string::npos);
  CHECK(why("1e-400").find("beyond what a double holds") != std::string::npos);
  CHECK(why("1" + std::string(400, '0')).find("beyond what a double holds") != std::string::npos);
  // Nesting: 64 levels, not 65.
  CHECK(accepted(std::string(64, '[') + std::string(64, ']')));
  CHECK(why(std::string(65, '[') + std::string(65, ']')) == "is not valid JSON: at byte 65 (\"[" +
                                                                std::string(59, ']') +
                                                                "...\"): arrays and objects are nested deeper "
                                                                "than 64");
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"a\":";
  CHECK(why(objects + "1" + std::string(65, '}')).find("nested deeper than 64") != std::string::npos);
  // Size: 65536 bytes, not 65537; the message never holds the payload.
  const std::string largest = "\"" + std::string(jobrepo::max_payload_bytes - 2, 'x') + "\"";
  CHECK(accepted(largest));
  CHECK(accepted(std::string(jobrepo::max_payload_bytes - 2, ' ') + "{}"));
  CHECK(why(largest + " ") == "has 65537 bytes, more than 65536");
  const std::string late = "[" + std::string(60000, ' ') + "1," + std::string(1000, 'x') + "]";
  const auto message = why(late);
  CHECK(message.size() < 250);
  CHECK(message.rfind("is not valid JSON: at byte 60004 (\"xxx", 0) == 0);
}

TEST_CASE("timestamp_from_us saturates at the ends of what a Timestamp holds") {
  using std::chrono::microseconds;
  const auto latest = std::chrono::time_point_cast<microseconds>(jobrepo::Timestamp::max());
  const auto earliest = std::chrono::time_point_cast<microseconds>(jobrepo::Timestamp::min());
  CHECK(jobrepo::timestamp_from_us(0) == jobrepo::Timestamp{});
  CHECK(jobrepo::timestamp_from_us(1'700'000'000'123'456) == jobrepo::Timestamp(microseconds(1'700'000'000'123'456)));
  CHECK(jobrepo::timestamp_from_us(-1) == jobrepo::Timestamp(microseconds(-1)));
  CHECK(jobrepo::timestamp_from_us(latest.time_since_epoch().count()) == latest);
  CHECK(jobrepo::timestamp_from_us(latest.time_since_epoch().count() + 1) == latest);
  CHECK(jobrepo::timestamp_from_us(std::numeric_limits<std::int64_t>::max()) == latest);
  CHECK(jobrepo::timestamp_from_us(earliest.time_since_epoch().count()) == earliest);
  CHECK(jobrepo::timestamp_from_us(earliest.time_since_epoch().count() - 1) == earliest);
  CHECK(jobrepo::timestamp_from_us(std::numeric_limits<std::int64_t>::min()) == earliest);
  // Now +/- max_offset is well inside.
  const auto now = std::chrono::duration_cast<microseconds>(jobrepo::Clock::now().time_since_epoch());
  CHECK(jobrepo::timestamp_from_us((now + jobrepo::max_offset).count()) < latest);
  CHECK(jobrepo::timestamp_from_us((now - jobrepo::max_offset).count()) > earliest);
}

TEST_CASE("store_options_problem names a negative option") {
  CHECK(jobrepo::store_options_problem({}).empty());
  CHECK(jobrepo::store_options_problem({.pool_size = -2}) == "pool_size -2 is negative");
  CHECK(jobrepo::store_options_problem({.busy_timeout = std::chrono::milliseconds(-1)}) ==
        "busy_timeout -1ms is negative");
  jobrepo::StoreOptions options;
  options.busy_timeout = std::chrono::milliseconds(-1);
  CHECK(code_of([&] { jobrepo::open_store("sqlite::memory:", options); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { jobrepo::open_sqlite_store({.path = ":memory:", .pool_size = -1}); }) ==
        ErrorCode::invalid_parameter);
}
