// Conformance cases: schema, jobs (create, lookup, list, reschedule), plugins.
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace jobrepo::conformance {

void link_job_cases() {}

namespace {

std::string repeat(std::string_view piece, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out.append(piece);
  return out;
}

}  // namespace

TEST_CASE("an unmigrated database refuses work; migrate() is idempotent", "[conformance][schema]") {
  CaseDatabase database;
  Database& db = database.db();
  Repository repo(*db.store);
  // The advice: migrate (check_schema_version(), backend.hpp, words it).
  JR_REQUIRE_ERROR_WITH(repo.create_job("a", "b"), ErrorCode::schema_mismatch, "migrate");
  JR_REQUIRE_ERROR(repo.lookup_job("a"), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.list_jobs(), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.run_jobs("s1"), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.lookup_run("0123456789abcdef"), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.interrupt_runs(0s), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.database_time(), ErrorCode::schema_mismatch);

  db.store->migrate();
  db.store->migrate();
  repo.create_job("a", "b");
  db.store->migrate();
  REQUIRE(repo.lookup_job("a").has_value());
}

TEST_CASE("a database migrated by a newer jobrepo is refused", "[conformance][schema][shared]") {
  CaseDatabase database;
  database.store().migrate();
  Repository(database.store()).create_job("a", "b");
  const std::string url = database.in_process_url();
  if (url.empty()) JR_SKIP("the harness's databases cannot be opened again in this process");
  if (!capabilities().forces_schema_version) JR_SKIP("the harness cannot force a schema version");
  const bool forced = harness().force_schema_version(url, 9999);
  if (!forced) JR_SKIP("force_schema_version() returned false");
  // A store opened after the newer jobrepo migrated: every call refuses,
  // migrate() names the version it found.
  Store& newer = database.reopen();
  JR_REQUIRE_ERROR_WITH(newer.migrate(), ErrorCode::schema_mismatch, "9999");
  Repository repo(newer);
  // Never the advice to migrate: the version found, and "newer".
  JR_REQUIRE_ERROR_WITH(repo.create_job("b", "c"), ErrorCode::schema_mismatch, "9999");
  JR_REQUIRE_ERROR_WITH(repo.create_job("b", "c"), ErrorCode::schema_mismatch, "newer");
  JR_REQUIRE_ERROR(repo.lookup_job("a"), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.run_jobs("s1"), ErrorCode::schema_mismatch);
  JR_REQUIRE_ERROR(repo.list_runs(), ErrorCode::schema_mismatch);
}

TEST_CASE("create_job stores the job, due now by default", "[conformance][jobs]") {
  Fixture f;
  const Job job = f.repo.create_job("rotate-keys", "Rotates the keys");
  CHECK(job.plugin_id == "pi_system");
  CHECK(job.name == "rotate-keys");
  CHECK(job.description == "Rotates the keys");
  CHECK(near_system_now(job.next_scheduled_run));
  const auto found = f.repo.lookup_job("rotate-keys");
  REQUIRE(found.has_value());
  CHECK(*found == job);
  // Due at once: the claim takes it.
  CHECK(f.repo.run_jobs("s1").size() == 1);
}

TEST_CASE("create_job schedules at now + next_run_in, any duration unit", "[conformance][jobs]") {
  Fixture f;
  const Job now_job = f.repo.create_job("now", "d");
  const Job later = f.repo.create_job("later", "d", {.next_run_in = 1h});
  const Job past = f.repo.create_job("past", "d", {.next_run_in = -30min});
  const Job seconds = f.repo.create_job("seconds", "d", {.next_run_in = 90s});
  const Job millis = f.repo.create_job("millis", "d", {.next_run_in = 2500ms});
  const auto gap = later.next_scheduled_run - now_job.next_scheduled_run;
  CHECK(gap >= 1h);
  CHECK(gap < 1h + 30s);
  CHECK(past.next_scheduled_run < now_job.next_scheduled_run - 29min);
  CHECK(seconds.next_scheduled_run - now_job.next_scheduled_run >= 90s);
  CHECK(millis.next_scheduled_run - now_job.next_scheduled_run >= 2500ms);
  // Only the jobs already due are claimed.
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  std::vector<std::string> names;
  for (const auto& run : runs) names.push_back(run.job_name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"now", "past"});
}

TEST_CASE("create_job rejects bad input and writes nothing", "[conformance][jobs][errors]") {
  Fixture f;
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("", "d"), ErrorCode::invalid_parameter, "name");
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("n", ""), ErrorCode::invalid_parameter, "description");
  // Both empty: the name is reported first.
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("", ""), ErrorCode::invalid_parameter, "name");

  const std::string name127 = repeat("n", 127);
  const std::string name128 = repeat("n", 128);
  const std::string desc1023 = repeat("d", 1023);
  const std::string desc1024 = repeat("d", 1024);
  JR_REQUIRE_ERROR(f.repo.create_job("   ", "d"), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.create_job(name128, "d"), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.create_job("blank-description", "  "), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.create_job("long-description", desc1024), ErrorCode::check_constraint);
  // Characters, not bytes: 128 two-byte characters are too many, 127 are fine.
  JR_REQUIRE_ERROR(f.repo.create_job(repeat("\xc3\xa9", 128), "d"), ErrorCode::check_constraint);
  CHECK(!f.repo.lookup_job(name128).has_value());
  CHECK(!f.repo.lookup_job("blank-description").has_value());
  CHECK(!f.repo.lookup_job("long-description").has_value());
  CHECK(f.repo.list_jobs().empty());

  CHECK(f.repo.create_job(name127, "d").name == name127);
  CHECK(f.repo.create_job("long-ok", desc1023).description == desc1023);
  CHECK(f.repo.create_job(repeat("\xc3\xa9", 127), "d").name.size() == 254);
  CHECK(f.repo.create_job("  padded  ", "d").name == "  padded  ");
  CHECK(f.repo.list_jobs().size() == 4);
}

TEST_CASE("text with a NUL byte or invalid UTF-8 is invalid_parameter, never cut short or stored",
          "[conformance][jobs][errors]") {
  using namespace std::string_literals;
  Fixture f;
  f.repo.create_job("nul", "d", {.next_run_in = 1h});
  // A database that cut "nul\0b" at its NUL byte would act on the job "nul".
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("nul\0b"s, "d"), ErrorCode::invalid_parameter, "NUL");
  JR_REQUIRE_ERROR(f.repo.ensure_job("nul\0b"s, "d"), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.create_job("other", "d\0d"s), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.lookup_job("nul\0b"s), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.update_job_next_run("nul\0b"s, -1h), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.delete_job("nul\0b"s), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.list_jobs({.name = "nul\0b"s}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.run_jobs("s\0b"s), ErrorCode::invalid_parameter);
  // Bytes that are not UTF-8 (one database would store them, another refuse them).
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("bad\xff", "d"), ErrorCode::invalid_parameter, "UTF-8");
  JR_REQUIRE_ERROR(f.repo.create_job("other", "bad\xc3("), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.lookup_job("bad\xff"), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.run_jobs("server\xff"), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.lookup_run("0123456789abcde\xff"), ErrorCode::invalid_parameter);
  // Nothing was written, and "nul" is as it was.
  const auto jobs = f.repo.list_jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs.at(0).name == "nul");
  CHECK(f.repo.run_jobs("s1").empty());
}

TEST_CASE("create_job with an existing name is not_unique and keeps the original", "[conformance][jobs][errors]") {
  Fixture f;
  const Job original = f.repo.create_job("dup", "first", {.next_run_in = 1h});
  JR_REQUIRE_ERROR_WITH(f.repo.create_job("dup", "second"), ErrorCode::not_unique, "dup");
  const auto found = f.repo.lookup_job("dup");
  REQUIRE(found.has_value());
  CHECK(*found == original);
  CHECK(f.repo.list_jobs().size() == 1);
  // The name is unique per plugin only.
  auto other = f.other_plugin();
  const Job theirs = other.create_job("dup", "theirs");
  CHECK(theirs.plugin_id == "pi_other");
  CHECK(f.repo.lookup_job("dup")->description == "first");
  CHECK(other.lookup_job("dup")->description == "theirs");
}

TEST_CASE("ensure_job creates once, then keeps the schedule and updates the description", "[conformance][jobs]") {
  Fixture f;
  const Job first = f.repo.ensure_job("j", "first", {.next_run_in = 1h});
  CHECK(first.description == "first");
  CHECK(*f.repo.lookup_job("j") == first);
  const Job second = f.repo.ensure_job("j", "second", {.next_run_in = 5h});
  CHECK(second.description == "second");
  CHECK(second.next_scheduled_run == first.next_scheduled_run);
  CHECK(*f.repo.lookup_job("j") == second);
  CHECK(f.repo.list_jobs().size() == 1);
  JR_REQUIRE_ERROR(f.repo.ensure_job("", "d"), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.ensure_job("j", std::string(1024, 'd')), ErrorCode::check_constraint);
  CHECK(f.repo.lookup_job("j")->description == "second");
  // Many registrations at once: one job, no errors.
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Repository own(f.store);
      try {
        own.ensure_job("together", "from thread " + std::to_string(i));
      } catch (const Error&) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  CHECK(f.repo.list_jobs({.name = "together"}).size() == 1);
}

TEST_CASE("lookup_job finds a job of its own plugin or nothing", "[conformance][jobs]") {
  Fixture f;
  f.repo.create_job("mine", "d");
  f.other_plugin().create_job("theirs", "d");
  CHECK(f.repo.lookup_job("mine").has_value());
  CHECK(!f.repo.lookup_job("missing").has_value());
  CHECK(!f.repo.lookup_job("theirs").has_value());
  JR_REQUIRE_ERROR(f.repo.lookup_job(""), ErrorCode::invalid_parameter);
}

TEST_CASE("list_jobs orders by name, filters by name and honours limits", "[conformance][jobs]") {
  Fixture f;
  const std::vector<std::string> names = {"job-07", "job-03", "job-12", "job-01", "job-15",
                                          "job-09", "job-05", "job-14", "job-02", "job-11",
                                          "job-06", "job-13", "job-04", "job-10", "job-08"};
  for (const auto& name : names) f.repo.create_job(name, "d");
  f.other_plugin().create_job("job-00", "not mine");

  auto sorted = names;
  std::sort(sorted.begin(), sorted.end());
  const auto all = f.repo.list_jobs();
  std::vector<std::string> listed;
  for (const auto& job : all) listed.push_back(job.name);
  CHECK(listed == sorted);

  const auto one = f.repo.list_jobs({.name = "job-07"});
  REQUIRE(one.size() == 1);
  CHECK(one.at(0).name == "job-07");
  CHECK(f.repo.list_jobs({.name = "nope"}).empty());
  CHECK(f.repo.list_jobs({.name = "job-00"}).empty());

  CHECK(f.repo.list_jobs({.limit = 3}).size() == 3);
  CHECK(f.repo.list_jobs({.limit = 3}).at(2).name == "job-03");
  CHECK(f.repo.list_jobs({.limit = -1}).size() == 15);

  Repository ten(f.store, {.plugin_id = "pi_system", .default_limit = 10});
  CHECK(ten.list_jobs().size() == 10);
  CHECK(ten.list_jobs({.limit = 12}).size() == 12);  // a call limit overrides the default upward
  CHECK(ten.list_jobs({.limit = 2}).size() == 2);    // and downward
  CHECK(ten.list_jobs({.limit = -1}).size() == 15);  // negative: unlimited
  Repository zero(f.store, {.plugin_id = "pi_system", .default_limit = 0});  // 0: 10000
  CHECK(zero.list_jobs().size() == 15);
  Repository unlimited(f.store, {.plugin_id = "pi_system", .default_limit = -1});
  CHECK(unlimited.list_jobs().size() == 15);
}

TEST_CASE("update_job_next_run moves the schedule either way", "[conformance][jobs]") {
  Fixture f;
  const Job created = f.repo.create_job("j", "d");
  const Job later = f.repo.update_job_next_run("j", 2h);
  CHECK(later.next_scheduled_run - created.next_scheduled_run >= 2h);
  CHECK(*f.repo.lookup_job("j") == later);
  CHECK(f.repo.run_jobs("s1").empty());

  const Job earlier = f.repo.update_job_next_run("j", -1min);
  CHECK(earlier.next_scheduled_run < later.next_scheduled_run - 2h);
  CHECK(earlier.description == "d");
  CHECK(*f.repo.lookup_job("j") == earlier);
  CHECK(f.repo.run_jobs("s1").size() == 1);

  JR_REQUIRE_ERROR_WITH(f.repo.update_job_next_run("missing", 1h), ErrorCode::record_not_found, "missing");
  JR_REQUIRE_ERROR(f.repo.update_job_next_run("", 1h), ErrorCode::invalid_parameter);
  f.other_plugin().create_job("theirs", "d");
  JR_REQUIRE_ERROR(f.repo.update_job_next_run("theirs", 1h), ErrorCode::record_not_found);
  CHECK(!f.repo.lookup_job("missing").has_value());
}

TEST_CASE("subscribe_due, when the store offers it, tells of jobs made due, per plugin", "[conformance][wakeup]") {
  Fixture f;
  std::mutex mutex;
  std::condition_variable changed;
  int calls = 0;
  auto subscription = f.store.subscribe_due(default_plugin_id.data(), [&] {
    const std::lock_guard lock(mutex);
    ++calls;
    changed.notify_all();
  });
  if (!subscription) {
    INFO("the harness says the store pushes wake-ups (Capabilities::pushes_wakeups)");
    REQUIRE_FALSE(capabilities().pushes_wakeups);
    JR_SKIP("the store does not push wake-ups (subscribe_due returned nullptr): schedulers poll");
  }
  // A subscription may be told once at the start (e.g. when its listener
  // connects): wait for that to settle.
  std::this_thread::sleep_for(300ms);
  const auto mark = [&] {
    const std::lock_guard lock(mutex);
    return calls;
  };
  // True when called after `since` = mark() within `timeout`.
  const auto told_since = [&](int since, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return calls > since; });
  };
  int since = mark();
  f.repo.create_job("j", "d", {.next_run_in = 1h});
  CHECK(told_since(since, 5s));
  since = mark();
  f.repo.update_job_next_run("j", 0s);
  CHECK(told_since(since, 5s));
  since = mark();
  f.repo.ensure_job("ensured", "d", {.next_run_in = 1h});
  INFO("ensure_job of a new job");
  CHECK(told_since(since, 5s));
  since = mark();
  f.repo.ensure_job("ensured", "new description");
  INFO("ensure_job of an existing job");
  CHECK(told_since(since, 5s));
  f.repo.pause_job("ensured");
  since = mark();
  f.repo.resume_job("ensured");
  INFO("resume_job");
  CHECK(told_since(since, 5s));
  since = mark();
  f.repo.run_now("ensured");
  INFO("run_now of an idle job");
  CHECK(told_since(since, 5s));
  f.repo.delete_job("ensured");
  f.repo.run_jobs("s1");
  f.store.set_clock_offset(1h);
  since = mark();
  CHECK(f.repo.interrupt_runs(1min).size() == 1);
  CHECK(told_since(since, 5s));
  // Another plugin's changes do not call this plugin's subscribers.
  std::this_thread::sleep_for(300ms);
  since = mark();
  f.other_plugin().create_job("k", "d");
  CHECK_FALSE(told_since(since, 500ms));
  // Once the subscription is destroyed, its callback is not called.
  subscription.reset();
  since = mark();
  f.repo.update_job_next_run("j", 0s);
  CHECK_FALSE(told_since(since, 300ms));
}

TEST_CASE("a Repository needs a plugin id", "[conformance][jobs][errors]") {
  Fixture f;
  const auto error = error_of([&] { Repository bad(f.store, {.plugin_id = ""}); });
  REQUIRE(error.has_value());
  CHECK(error->code() == ErrorCode::invalid_parameter);
}

TEST_CASE("the test clock moves the store's time", "[conformance][clock]") {
  Fixture f;
  const Job job = f.repo.create_job("hourly", "d", {.next_run_in = 1h});
  CHECK(f.repo.run_jobs("s1").empty());
  f.store.set_clock_offset(1h + 1s);
  const auto runs = f.repo.run_jobs("s1");
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).create_time >= job.next_scheduled_run);
  f.store.set_clock_offset(0s);
  const Job now_job = f.repo.create_job("now", "d");
  CHECK(near_system_now(now_job.next_scheduled_run));
}

}  // namespace jobrepo::conformance

namespace jobrepo::conformance {

TEST_CASE("due times may be absolute; ensure_job keeps the due time and updates the schedule text; the store's clock",
          "[conformance][jobs]") {
  Fixture f;
  using std::chrono::microseconds;
  // An absolute time with microseconds, stored exactly.
  const Timestamp at = std::chrono::sys_days{std::chrono::year{2030} / 3 / 31} + 2h + 30min + 1s + microseconds(123456);
  const Job created = f.repo.create_job("nightly", "d", {.next_run_at = at, .schedule = "cron 30 2 * * *"});
  CHECK(created.next_scheduled_run == at);
  CHECK(created.schedule == "cron 30 2 * * *");
  CHECK(f.repo.lookup_job("nightly")->next_scheduled_run == at);
  CHECK(f.repo.lookup_job("nightly")->schedule == "cron 30 2 * * *");
  CHECK(f.repo.list_jobs().at(0).schedule == "cron 30 2 * * *");

  // Registration again: the description and the schedule text change, the due time stays.
  const Job ensured =
      f.repo.ensure_job("nightly", "d2", {.next_run_at = at + 24h, .schedule = "cron 30 3 * * * in Europe/Berlin"});
  CHECK(ensured.next_scheduled_run == at);
  CHECK(ensured.description == "d2");
  CHECK(ensured.schedule == "cron 30 3 * * * in Europe/Berlin");
  const Job fresh = f.repo.ensure_job("fresh", "d", {.next_run_at = at});
  CHECK(fresh.next_scheduled_run == at);
  CHECK(fresh.schedule.empty());

  // update_job_next_run, complete_run, fail_run and update_runs with absolute times.
  CHECK(f.repo.update_job_next_run("nightly", at - 1h).next_scheduled_run == at - 1h);
  f.repo.create_job("a", "d");
  f.repo.create_job("b", "d");
  f.repo.create_job("c", "d");
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 3);
  f.repo.complete_run(runs.at(0).private_id, at + 1s);
  CHECK(f.repo.lookup_job(runs.at(0).job_name)->next_scheduled_run == at + 1s);
  f.repo.fail_run(runs.at(1).private_id, {.retry_at = at + 2s});
  CHECK(f.repo.lookup_job(runs.at(1).job_name)->next_scheduled_run == at + 2s);
  const std::vector<RunUpdate> updates = {
      {.run_id = runs.at(2).private_id, .status = Status::completed, .next_run_at = at}};
  const auto results = f.repo.update_runs(updates);
  REQUIRE(results.at(0).run);
  CHECK(f.repo.lookup_job(runs.at(2).job_name)->next_scheduled_run == at);

  // Out of range, or both forms at once: invalid_parameter, nothing written.
  JR_REQUIRE_ERROR(f.repo.create_job("x", "d", {.next_run_at = earliest_time - microseconds(1)}),
                   ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.update_job_next_run("nightly", latest_time + microseconds(1)), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.create_job("x", "d", {.next_run_in = 1h, .next_run_at = at}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.fail_run(runs.at(0).private_id, {.retry_in = 1s, .retry_at = at}),
                   ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.create_job("x", "d", {.schedule = std::string(1024, 's')}), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.create_job("x", "d", {.schedule = std::string("a\0b", 3)}), ErrorCode::invalid_parameter);
  CHECK(!f.repo.lookup_job("x"));

  // The store's clock: near real time, moved by the test clock offset, and
  // what a write made right after stamps (never earlier).
  const Timestamp before = f.repo.database_time();
  CHECK(near_system_now(before));
  const Job now_job = f.repo.create_job("now", "d");
  CHECK(now_job.next_scheduled_run >= before);
  f.store.set_clock_offset(1h);
  CHECK(f.repo.database_time() > before + 59min);
  f.store.set_clock_offset(0s);
}

}  // namespace jobrepo::conformance
