// Conformance cases: the claim, progress, completion, failure, interruption
// and lookup of runs, and the state machine.
#include "support.hpp"

#include <algorithm>
#include <set>

namespace jobrepo::conformance {

void link_run_cases() {}

namespace {

// The set of jobs a server serves, for record_server (one fingerprint for all).
std::vector<ServedJob> serving(const std::vector<std::string>& names) {
  std::vector<ServedJob> jobs;
  for (const auto& name : names) jobs.push_back({name, "f"});
  return jobs;
}

// Ends `count` runs of job `name` of `repo` (created when missing) one
// after the other, each claimed and ended `step` of the store's clock after
// the last (the store's clock offset, `offset`, moves on), so that their
// end times are ordered whatever the clock's resolution; they end completed,
// failed and interrupted in turn. Returns their ids, oldest first.
std::vector<std::string> ended_runs(Fixture& f, Repository& repo, const std::string& name, int count,
                                    std::chrono::microseconds& offset, std::chrono::microseconds step = 1min) {
  if (!repo.lookup_job(name)) repo.create_job(name, "d");
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    f.store.set_clock_offset(offset += step);
    repo.update_job_next_run(name, 0s);  // due now, whatever the last end said
    const auto runs = repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{name}});
    REQUIRE(runs.size() == 1);
    const std::string id = runs.at(0).private_id;
    f.store.set_clock_offset(offset += step);
    if (i % 3 == 0) {
      repo.complete_run(id, 0s);
    } else if (i % 3 == 1) {
      repo.fail_run(id);
    } else {
      const std::vector<RunUpdate> cancel = {{.run_id = id, .status = Status::interrupted}};
      const auto results = repo.update_runs(cancel);
      REQUIRE(results.size() == 1);
      REQUIRE(results.at(0).run);
    }
    ids.push_back(id);
  }
  return ids;
}

// The ids of the runs of job `name` that `repo` lists.
std::set<std::string> run_ids(Repository& repo, const std::string& name) {
  std::set<std::string> ids;
  for (const auto& run : repo.list_runs({.job_name = name, .limit = -1})) ids.insert(run.private_id);
  return ids;
}

}  // namespace

TEST_CASE("run_jobs claims a due job with a new running run", "[conformance][claim]") {
  Fixture f;
  f.repo.create_job("j", "d");
  const auto runs = f.repo.run_jobs("server-1");
  REQUIRE(runs.size() == 1);
  const Run& run = runs.at(0);
  CHECK(run.job_plugin_id == "pi_system");
  CHECK(run.job_name == "j");
  CHECK(run.server_id == "server-1");
  CHECK(run.status == Status::running);
  CHECK(run.completed_count == 0);
  CHECK(run.total_count == 0);
  CHECK(!run.end_time.has_value());
  CHECK(run.create_time == run.update_time);
  CHECK(near_system_now(run.create_time));
  CHECK(run.private_id.size() >= 16);
  CHECK(url_safe(run.private_id));
  const auto found = f.repo.lookup_run(run.private_id);
  REQUIRE(found.has_value());
  CHECK(*found == run);
}

TEST_CASE("run_jobs takes the earliest due first, one by default", "[conformance][claim]") {
  Fixture f;
  f.repo.create_job("a", "d", {.next_run_in = -1min});
  f.repo.create_job("c", "d", {.next_run_in = -3min});
  f.repo.create_job("d", "d", {.next_run_in = 1h});
  f.repo.create_job("e", "d", {.next_run_in = -2min});
  f.repo.create_job("b", "d", {.next_run_in = -90s});
  CHECK(job_names(f.repo.run_jobs("s1")) == std::vector<std::string>{"c"});
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = 0})) == std::vector<std::string>{"e"});
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1})) == std::vector<std::string>{"b", "a"});
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());  // d is not due
}

TEST_CASE("run_jobs orders by due time, then by name", "[conformance][claim]") {
  Fixture f;
  // Jobs created back to back often share a due time (the clock's tick);
  // the claim order must be (next_scheduled_run, name) whatever happens.
  for (const auto* name : {"m", "z", "a", "k"}) f.repo.create_job(name, "d");
  const auto runs = f.repo.run_jobs("s1", {.limit = 3});
  REQUIRE(runs.size() == 3);
  std::vector<Job> jobs = f.repo.list_jobs();
  std::sort(jobs.begin(), jobs.end(), [](const Job& x, const Job& y) {
    return x.next_scheduled_run != y.next_scheduled_run ? x.next_scheduled_run < y.next_scheduled_run : x.name < y.name;
  });
  CHECK(job_names(runs) == std::vector<std::string>{jobs.at(0).name, jobs.at(1).name, jobs.at(2).name});
}

TEST_CASE("run_jobs limits: 0 means one, negative means all", "[conformance][claim]") {
  Fixture f;
  for (int i = 0; i < 12; ++i) f.repo.create_job("job-" + std::to_string(100 + i), "d");
  CHECK(f.repo.run_jobs("s1", {.limit = 0}).size() == 1);
  CHECK(f.repo.run_jobs("s1", {.limit = 3}).size() == 3);
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).size() == 8);
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());
}

TEST_CASE("run_jobs never claims a job that is running; final runs free it", "[conformance][claim]") {
  Fixture f;
  const Run first = claimed(f.repo, "j");
  CHECK(f.repo.run_jobs("s2", {.limit = -1}).empty());
  f.repo.complete_run(first.private_id, 0s);
  const auto second = f.repo.run_jobs("s2");
  REQUIRE(second.size() == 1);
  CHECK(second.at(0).private_id != first.private_id);
  CHECK(second.at(0).server_id == "s2");
  f.repo.fail_run(second.at(0).private_id);
  const auto third = f.repo.run_jobs("s3");
  REQUIRE(third.size() == 1);
  f.repo.interrupt_runs(0s);
  CHECK(f.repo.run_jobs("s4").size() == 1);
  CHECK(f.repo.run_jobs("s5").empty());
}

TEST_CASE("run_jobs accepts any non-empty server id and rejects bad ones", "[conformance][claim][errors]") {
  Fixture f;
  f.repo.create_job("j", "d");
  JR_REQUIRE_ERROR_WITH(f.repo.run_jobs(""), ErrorCode::invalid_parameter, "server");
  JR_REQUIRE_ERROR(f.repo.run_jobs("   "), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.run_jobs(std::string(256, 's')), ErrorCode::check_constraint);
  // Nothing was claimed by the failed calls.
  const auto runs = f.repo.run_jobs("a");  // a one-character id is fine
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).server_id == "a");
  f.repo.fail_run(runs.at(0).private_id);
  const auto long_id = f.repo.run_jobs(std::string(255, 's'));
  REQUIRE(long_id.size() == 1);
  CHECK(long_id.at(0).server_id == std::string(255, 's'));
}

TEST_CASE("run_jobs claims only the named jobs when asked", "[conformance][claim]") {
  Fixture f;
  f.repo.create_job("a", "d");
  f.repo.create_job("b \"quoted\" \\ name", "d");
  f.repo.create_job("c", "d");
  CHECK(f.repo.run_jobs("s1", {.limit = -1, .only_jobs = std::vector<std::string>{}}).empty());
  CHECK(job_names(f.repo.run_jobs(
            "s1", {.limit = -1, .only_jobs = std::vector<std::string>{"b \"quoted\" \\ name", "zzz"}})) ==
        std::vector<std::string>{"b \"quoted\" \\ name"});
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1})) == std::vector<std::string>{"a", "c"});
}

TEST_CASE("run_jobs with served_only claims only the jobs its server serves, earliest due first",
          "[conformance][claim][servers]") {
  Fixture f;
  f.repo.create_job("d", "d", {.next_run_in = -4min});  // due first, served by no one
  f.repo.create_job("c", "d", {.next_run_in = -3min});
  f.repo.create_job("b", "d", {.next_run_in = -2min});
  f.repo.create_job("a", "d", {.next_run_in = -1min});
  f.repo.create_job("later", "d", {.next_run_in = 1h});
  const RunJobsOptions served{.limit = -1, .served_only = true};
  // A server that never recorded what it serves claims nothing, even when
  // it recorded a proof of life.
  CHECK(f.repo.run_jobs("s1", served).empty());
  f.repo.record_server("s1", 1min, {.instance = "i1"});
  CHECK(f.repo.run_jobs("s1", served).empty());
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = serving({"a", "b", "c", "later", "ghost"})});
  // Among the jobs it serves: earliest due first, at most the limit.
  const auto first = f.repo.run_jobs("s1", {.limit = 2, .served_only = true});
  CHECK(job_names(first) == std::vector<std::string>{"c", "b"});
  for (const auto& run : first) CHECK(run.server_id == "s1");
  CHECK(job_names(f.repo.run_jobs("s1", served)) == std::vector<std::string>{"a"});
  // "later" is served but not due; "d" is due but not served.
  CHECK(f.repo.run_jobs("s1", served).empty());
  // A job created after the record is not in the set until the server
  // records it.
  f.repo.create_job("new", "d", {.next_run_in = -5min});
  CHECK(f.repo.run_jobs("s1", served).empty());
  // What it left stays due for a claim without the filter.
  CHECK(job_names(f.repo.run_jobs("s2", {.limit = -1})) == std::vector<std::string>{"new", "d"});
}

TEST_CASE("served_only follows the server's last recorded set in its own plugin, live or not",
          "[conformance][claim][servers]") {
  Fixture f;
  f.repo.create_job("x", "d");
  f.repo.create_job("y", "d");
  const RunJobsOptions served{.limit = -1, .served_only = true};
  const auto claim_and_free = [&](const std::vector<std::string>& expected) {
    const auto runs = f.repo.run_jobs("s1", served);
    CHECK(job_names(runs) == expected);
    // Due again at once (an hour ago: whatever the test clock says later).
    for (const auto& run : runs) f.repo.complete_run(run.private_id, -1h);
  };
  // s2 serves x all along: what another server serves does not count.
  f.repo.record_server("s2", 1min, {.instance = "i2", .jobs = serving({"x"})});
  CHECK(f.repo.run_jobs("s1", served).empty());
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = serving({"x"})});
  claim_and_free({"x"});
  // A new set replaces the old one: y is served, x no longer.
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = serving({"y"})});
  claim_and_free({"y"});
  // A proof of life alone keeps the set.
  f.repo.record_server("s1", 1min, {.instance = "i1"});
  claim_and_free({"y"});
  // A server past its ttl (not live in list_servings) still claims what it serves.
  f.store.set_clock_offset(2min);
  REQUIRE(!f.repo.list_servings("y").at(0).live);
  claim_and_free({"y"});
  f.store.set_clock_offset(0us);
  // Another instance's refused record changes nothing.
  CHECK(!f.repo.record_server("s1", 1min, {.instance = "i9", .jobs = serving({"x"})}).held);
  claim_and_free({"y"});
  // remove_server empties the set; the same server id in another plugin,
  // serving a job of the same name, does not count.
  f.repo.remove_server("s1");
  auto other = f.other_plugin();
  other.create_job("x", "d");
  other.record_server("s1", 1min, {.instance = "i3", .jobs = serving({"x"})});
  CHECK(f.repo.run_jobs("s1", served).empty());
  CHECK(job_names(other.run_jobs("s1", served)) == std::vector<std::string>{"x"});
  auto left = job_names(f.repo.run_jobs("s1", {.limit = -1}));
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"x", "y"});
}

TEST_CASE("served_only with only_jobs claims only jobs that pass both", "[conformance][claim][servers]") {
  Fixture f;
  f.repo.create_job("a", "d", {.next_run_in = -3min});
  f.repo.create_job("b", "d", {.next_run_in = -2min});
  f.repo.create_job("c", "d", {.next_run_in = -1min});
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = serving({"a", "b"})});
  const auto both = [&](const std::vector<std::string>& names) {
    return job_names(f.repo.run_jobs("s1", {.limit = -1, .only_jobs = names, .served_only = true}));
  };
  CHECK(both({}).empty());
  CHECK(both({"c"}).empty());  // named, not served
  CHECK(both({"b", "c"}) == std::vector<std::string>{"b"});
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1, .served_only = true})) == std::vector<std::string>{"a"});
  CHECK(job_names(f.repo.run_jobs("s2", {.limit = -1})) == std::vector<std::string>{"c"});
}

TEST_CASE("run_jobs claims only its own plugin's jobs", "[conformance][claim][plugins]") {
  Fixture f;
  auto other = f.other_plugin();
  other.create_job("theirs", "d");
  f.repo.create_job("mine", "d");
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1})) == std::vector<std::string>{"mine"});
  const auto theirs = other.run_jobs("s1", {.limit = -1});
  REQUIRE(theirs.size() == 1);
  CHECK(theirs.at(0).job_plugin_id == "pi_other");
  // Runs of another plugin are invisible and untouchable.
  CHECK(!f.repo.lookup_run(theirs.at(0).private_id).has_value());
  JR_REQUIRE_ERROR(f.repo.update_progress(theirs.at(0).private_id, 1, 2), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR(f.repo.complete_run(theirs.at(0).private_id, 0s), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR(f.repo.fail_run(theirs.at(0).private_id), ErrorCode::record_not_found);
  CHECK(job_names(f.repo.interrupt_runs(0s)) == std::vector<std::string>{"mine"});
  CHECK(other.lookup_run(theirs.at(0).private_id)->status == Status::running);
}

TEST_CASE("run ids are unique and URL-safe", "[conformance][claim]") {
  Fixture f;
  for (int i = 0; i < 200; ++i) f.repo.create_job("job-" + std::to_string(i), "d");
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 200);
  std::set<std::string> ids;
  for (const auto& run : runs) {
    CHECK(run.private_id.size() >= 16);
    CHECK(url_safe(run.private_id));
    ids.insert(run.private_id);
  }
  CHECK(ids.size() == 200);
}

TEST_CASE("update_progress sets the counts and refreshes update_time", "[conformance][progress]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  f.store.set_clock_offset(1min);
  const Run progressed = f.repo.update_progress(run.private_id, 3, 10);
  CHECK(progressed.completed_count == 3);
  CHECK(progressed.total_count == 10);
  CHECK(progressed.status == Status::running);
  CHECK(!progressed.end_time.has_value());
  CHECK(progressed.create_time == run.create_time);
  CHECK(progressed.update_time >= run.update_time + 1min);
  CHECK(*f.repo.lookup_run(run.private_id) == progressed);
  // The same counts again still count as life.
  f.store.set_clock_offset(2min);
  const Run heartbeat = f.repo.update_progress(run.private_id, 3, 10);
  CHECK(heartbeat.update_time >= progressed.update_time + 1min);
  CHECK(f.repo.update_progress(run.private_id, 10, 10).completed_count == 10);
  CHECK(f.repo.update_progress(run.private_id, 0, 0).total_count == 0);
}

TEST_CASE("update_progress errors, in their documented order, write nothing", "[conformance][progress][errors]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  const Run before = f.repo.update_progress(run.private_id, 2, 5);
  JR_REQUIRE_ERROR(f.repo.update_progress("", 1, 2), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR_WITH(f.repo.update_progress("no-such-run-0000", 1, 2), ErrorCode::record_not_found,
                        "no-such-run-0000");
  JR_REQUIRE_ERROR(f.repo.update_progress("no-such-run-0000", 5, 2), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR_WITH(f.repo.update_progress(run.private_id, 7, 5), ErrorCode::check_constraint, "7");
  JR_REQUIRE_ERROR(f.repo.update_progress(run.private_id, -1, 5), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.update_progress(run.private_id, 0, -1), ErrorCode::check_constraint);
  CHECK(*f.repo.lookup_run(run.private_id) == before);

  f.repo.complete_run(run.private_id, 1h);
  JR_REQUIRE_ERROR_WITH(f.repo.update_progress(run.private_id, 1, 5), ErrorCode::invalid_job_run_state, "completed");
  // A final run wins over bad counts.
  JR_REQUIRE_ERROR(f.repo.update_progress(run.private_id, 9, 5), ErrorCode::invalid_job_run_state);
  CHECK(f.repo.lookup_run(run.private_id)->completed_count == 2);
}

TEST_CASE("complete_run ends the run and reschedules its job in one step", "[conformance][complete]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  f.repo.update_progress(run.private_id, 4, 4);
  f.store.set_clock_offset(5min);
  const Run done = f.repo.complete_run(run.private_id, 1h);
  CHECK(done.status == Status::completed);
  REQUIRE(done.end_time.has_value());
  CHECK(done.update_time == *done.end_time);
  CHECK(*done.end_time >= run.create_time + 5min);
  CHECK(done.completed_count == 4);
  CHECK(done.create_time == run.create_time);
  CHECK(*f.repo.lookup_run(run.private_id) == done);
  CHECK(f.repo.lookup_job("j")->next_scheduled_run == *done.end_time + 1h);
  CHECK(f.repo.run_jobs("s1").empty());

  JR_REQUIRE_ERROR_WITH(f.repo.complete_run(run.private_id, 0s), ErrorCode::invalid_job_run_state, "completed");
  JR_REQUIRE_ERROR(f.repo.fail_run(run.private_id), ErrorCode::invalid_job_run_state);
  JR_REQUIRE_ERROR(f.repo.complete_run("", 0s), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.complete_run("no-such-run-0000", 0s), ErrorCode::record_not_found);
  CHECK(*f.repo.lookup_run(run.private_id) == done);
  CHECK(f.repo.lookup_job("j")->next_scheduled_run == *done.end_time + 1h);
}

TEST_CASE("complete_run with a negative next_run_in makes the job due at once", "[conformance][complete]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  const Run done = f.repo.complete_run(run.private_id, -10s);
  CHECK(f.repo.lookup_job("j")->next_scheduled_run == *done.end_time - 10s);
  CHECK(f.repo.run_jobs("s1").size() == 1);
}

TEST_CASE("fail_run ends the run and leaves the job due", "[conformance][fail]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  const Job job = f.repo.lookup_job("j").value();
  f.store.set_clock_offset(30s);
  const Run failed = f.repo.fail_run(run.private_id);
  CHECK(failed.status == Status::failed);
  REQUIRE(failed.end_time.has_value());
  CHECK(failed.update_time == *failed.end_time);
  CHECK(*f.repo.lookup_run(run.private_id) == failed);
  CHECK(f.repo.lookup_job("j")->next_scheduled_run == job.next_scheduled_run);
  CHECK(f.repo.run_jobs("s2").size() == 1);
  JR_REQUIRE_ERROR_WITH(f.repo.fail_run(run.private_id), ErrorCode::invalid_job_run_state, "failed");
  JR_REQUIRE_ERROR(f.repo.fail_run(""), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.fail_run("no-such-run-0000"), ErrorCode::record_not_found);
}

TEST_CASE("fail_run with retry_in reschedules the job in the same step", "[conformance][fail]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  const Run failed = f.repo.fail_run(run.private_id, {.retry_in = 10min});
  CHECK(failed.status == Status::failed);
  CHECK(f.repo.lookup_job("j")->next_scheduled_run == *failed.end_time + 10min);
  CHECK(f.repo.run_jobs("s2").empty());
  f.store.set_clock_offset(10min + 1s);
  CHECK(f.repo.run_jobs("s2").size() == 1);
}

TEST_CASE("update_runs applies many updates in one call; a bad one writes nothing, the others apply",
          "[conformance][batch]") {
  Fixture f;
  const Run a = claimed(f.repo, "a");
  const Run b = claimed(f.repo, "b");
  const Run c = claimed(f.repo, "c");
  const Run d = claimed(f.repo, "d");
  f.repo.complete_run(d.private_id, 1h);
  f.store.set_clock_offset(1min);
  const std::vector<RunUpdate> updates = {
      {.run_id = a.private_id,
       .status = Status::completed,
       .completed_count = 7,
       .total_count = 7,
       .next_run_in = 2h},                                                             // 0: completes a
      {.run_id = b.private_id, .completed_count = 1, .total_count = 4},                // 1: b's progress
      {.run_id = "no-such-run-0000", .status = Status::completed, .next_run_in = 0s},  // 2: unknown
      {.run_id = d.private_id, .status = Status::failed},                              // 3: d is final
      {.run_id = c.private_id, .completed_count = 5, .total_count = 2},                // 4: bad counts
      {.run_id = "", .status = Status::completed},                                     // 5: no id
      {.run_id = c.private_id, .status = Status::failed, .next_run_in = 1s, .next_run_at = Timestamp{}},  // 6: both
      {.run_id = c.private_id, .status = Status::failed, .next_run_in = 10min},                           // 7: fails c
      {.run_id = a.private_id, .status = Status::completed, .next_run_in = 0s},  // 8: a is final now
  };
  const auto results = f.repo.update_runs(updates);
  REQUIRE(results.size() == updates.size());
  const auto code = [&](std::size_t i) {
    INFO("update " << i);
    REQUIRE(!results.at(i).run);
    REQUIRE(results.at(i).error.has_value());
    return results.at(i).error->code();
  };
  REQUIRE(results.at(0).run);
  CHECK(results.at(0).run->status == Status::completed);
  CHECK(results.at(0).run->completed_count == 7);
  CHECK(results.at(0).run->end_time.has_value());
  CHECK(f.repo.lookup_job("a")->next_scheduled_run == *results.at(0).run->end_time + 2h);
  REQUIRE(results.at(1).run);
  CHECK(results.at(1).run->status == Status::running);
  CHECK(results.at(1).run->total_count == 4);
  CHECK(results.at(1).run->update_time >= b.update_time + 1min);
  CHECK(code(2) == ErrorCode::record_not_found);
  CHECK(code(3) == ErrorCode::invalid_job_run_state);
  CHECK(code(4) == ErrorCode::check_constraint);
  CHECK(code(5) == ErrorCode::invalid_parameter);
  CHECK(code(6) == ErrorCode::invalid_parameter);
  REQUIRE(results.at(7).run);
  CHECK(results.at(7).run->status == Status::failed);
  CHECK(results.at(7).run->completed_count == 0);  // update 4 wrote nothing
  CHECK(f.repo.lookup_job("c")->next_scheduled_run == *results.at(7).run->end_time + 10min);
  CHECK(code(8) == ErrorCode::invalid_job_run_state);
  // What the results say is what is stored.
  CHECK(*f.repo.lookup_run(a.private_id) == *results.at(0).run);
  CHECK(*f.repo.lookup_run(b.private_id) == *results.at(1).run);
  CHECK(*f.repo.lookup_run(c.private_id) == *results.at(7).run);
  CHECK(f.repo.lookup_run(d.private_id)->status == Status::completed);
  CHECK(f.repo.update_runs({}).empty());

  // A batch naming each run once (a backend may take a faster path for it).
  const Run e = claimed(f.repo, "e");
  const std::vector<RunUpdate> second = {
      {.run_id = e.private_id, .status = Status::completed, .next_run_in = 30min},
      {.run_id = "no-such-run-0001", .completed_count = 1, .total_count = 1},
      {.run_id = b.private_id, .completed_count = 2, .total_count = 4},
      {.run_id = a.private_id, .status = Status::failed},
  };
  const auto again = f.repo.update_runs(second);
  REQUIRE(again.size() == 4);
  REQUIRE(again.at(0).run);
  CHECK(again.at(0).run->status == Status::completed);
  CHECK(f.repo.lookup_job("e")->next_scheduled_run == *again.at(0).run->end_time + 30min);
  REQUIRE(again.at(1).error);
  CHECK(again.at(1).error->code() == ErrorCode::record_not_found);
  REQUIRE(again.at(2).run);
  CHECK(again.at(2).run->completed_count == 2);
  CHECK(again.at(2).run->status == Status::running);
  REQUIRE(again.at(3).error);
  CHECK(again.at(3).error->code() == ErrorCode::invalid_job_run_state);
  CHECK(*f.repo.lookup_run(e.private_id) == *again.at(0).run);
  CHECK(*f.repo.lookup_run(b.private_id) == *again.at(2).run);
}

TEST_CASE("a duration beyond max_offset is invalid_parameter; in update_runs, only for its own update",
          "[conformance][batch][errors]") {
  constexpr auto too_late = std::chrono::microseconds::max() - std::chrono::microseconds(1);
  constexpr auto too_early = -std::chrono::microseconds::max();
  Fixture f;
  const Run a = claimed(f.repo, "a");
  const Run b = claimed(f.repo, "b");
  const Job b_job = f.repo.lookup_job("b").value();
  // Two handlers end together; one asks for a next run no store can hold.
  const std::vector<RunUpdate> updates = {
      {.run_id = a.private_id, .status = Status::completed, .next_run_in = 1h},
      {.run_id = b.private_id, .status = Status::completed, .next_run_in = too_late},
  };
  const auto results = f.repo.update_runs(updates);
  REQUIRE(results.size() == 2);
  REQUIRE(results.at(0).run);
  CHECK(results.at(0).run->status == Status::completed);
  REQUIRE(results.at(0).run->end_time.has_value());
  CHECK(f.repo.lookup_job("a")->next_scheduled_run == *results.at(0).run->end_time + 1h);
  CHECK(near_system_now(f.repo.lookup_job("a")->next_scheduled_run - 1h));
  CHECK(*f.repo.lookup_run(a.private_id) == *results.at(0).run);
  CHECK(!results.at(1).run);
  REQUIRE(results.at(1).error);
  CHECK(results.at(1).error->code() == ErrorCode::invalid_parameter);
  CHECK_THAT(std::string(results.at(1).error->what()), Catch::Contains("next_run_in"));
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  const std::vector<RunUpdate> backwards = {
      {.run_id = b.private_id, .status = Status::failed, .next_run_in = too_early}};
  const auto rejected = f.repo.update_runs(backwards);
  REQUIRE(rejected.size() == 1);
  REQUIRE(rejected.at(0).error);
  CHECK(rejected.at(0).error->code() == ErrorCode::invalid_parameter);
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);

  // The single calls refuse such durations too, and write nothing.
  for (const auto bad : {too_late, too_early, max_offset + 1us, -max_offset - 1us}) {
    INFO("duration " << bad.count() << "us");
    JR_REQUIRE_ERROR_WITH(f.repo.create_job("c", "d", {.next_run_in = bad}), ErrorCode::invalid_parameter,
                          std::to_string(bad.count()));
    JR_REQUIRE_ERROR(f.repo.ensure_job("c", "d", {.next_run_in = bad}), ErrorCode::invalid_parameter);
    JR_REQUIRE_ERROR(f.repo.update_job_next_run("b", bad), ErrorCode::invalid_parameter);
    JR_REQUIRE_ERROR_WITH(f.repo.complete_run(b.private_id, bad), ErrorCode::invalid_parameter, "next_run_in");
    JR_REQUIRE_ERROR_WITH(f.repo.fail_run(b.private_id, {.retry_in = bad}), ErrorCode::invalid_parameter, "retry_in");
    JR_REQUIRE_ERROR(f.repo.interrupt_runs(bad), ErrorCode::invalid_parameter);
    JR_REQUIRE_ERROR(f.repo.prune_runs(bad), ErrorCode::invalid_parameter);
  }
  CHECK(!f.repo.lookup_job("c").has_value());
  CHECK(*f.repo.lookup_job("b") == b_job);
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  CHECK(*f.repo.lookup_run(a.private_id) == *results.at(0).run);

  // max_offset itself, either way, is accepted.
  const Job late = f.repo.create_job("late", "d", {.next_run_in = max_offset});
  CHECK(near_system_now(late.next_scheduled_run - max_offset));
  CHECK(*f.repo.lookup_job("late") == late);
  const Job early = f.repo.create_job("early", "d", {.next_run_in = -max_offset});
  CHECK(near_system_now(early.next_scheduled_run + max_offset));
  CHECK(*f.repo.lookup_job("early") == early);
  CHECK(
      near_system_now(f.repo.ensure_job("ensured", "d", {.next_run_in = max_offset}).next_scheduled_run - max_offset));
  CHECK(near_system_now(f.repo.update_job_next_run("late", -max_offset).next_scheduled_run + max_offset));
  CHECK(near_system_now(f.repo.update_job_next_run("early", max_offset).next_scheduled_run - max_offset));
  CHECK(near_system_now(f.repo.lookup_job("early")->next_scheduled_run - max_offset));
  const Run done = f.repo.complete_run(b.private_id, max_offset);
  CHECK(f.repo.lookup_job("b")->next_scheduled_run == *done.end_time + max_offset);
  const Run late_run = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"late"}}).at(0);
  const Run failed = f.repo.fail_run(late_run.private_id, {.retry_in = -max_offset});
  CHECK(f.repo.lookup_job("late")->next_scheduled_run == *failed.end_time - max_offset);
  CHECK(f.repo.interrupt_runs(max_offset).empty());
  CHECK(f.repo.prune_runs(max_offset) == 0);
  CHECK(f.repo.list_runs().size() == 3);
}

TEST_CASE("interrupt_runs ends the runs not updated within the threshold", "[conformance][interrupt]") {
  Fixture f;
  const Run stale = claimed(f.repo, "stale", "s1");
  const Run fresh = claimed(f.repo, "fresh", "s2");
  const Job stale_job = f.repo.lookup_job("stale").value();
  f.store.set_clock_offset(10min);
  f.repo.update_progress(fresh.private_id, 1, 2);

  const auto interrupted = f.repo.interrupt_runs(5min);
  REQUIRE(interrupted.size() == 1);
  const Run& run = interrupted.at(0);
  CHECK(run.private_id == stale.private_id);
  CHECK(run.status == Status::interrupted);
  REQUIRE(run.end_time.has_value());
  CHECK(run.update_time == *run.end_time);
  CHECK(*run.end_time >= stale.create_time + 10min);
  CHECK(*f.repo.lookup_run(stale.private_id) == run);
  CHECK(f.repo.lookup_run(fresh.private_id)->status == Status::running);
  // The job is not rescheduled: it is due, and claimable again.
  CHECK(f.repo.lookup_job("stale")->next_scheduled_run == stale_job.next_scheduled_run);
  CHECK(f.repo.interrupt_runs(5min).empty());
  JR_REQUIRE_ERROR_WITH(f.repo.update_progress(stale.private_id, 1, 1), ErrorCode::invalid_job_run_state,
                        "interrupted");

  JR_REQUIRE_ERROR(f.repo.interrupt_runs(-1s), ErrorCode::invalid_parameter);
  CHECK(f.repo.lookup_run(fresh.private_id)->status == Status::running);
  // Threshold 0: every running run.
  const auto rest = f.repo.interrupt_runs(0s);
  REQUIRE(rest.size() == 1);
  CHECK(rest.at(0).private_id == fresh.private_id);
}

TEST_CASE("interrupt_runs can be limited to one server", "[conformance][interrupt]") {
  Fixture f;
  const Run a = claimed(f.repo, "a", "s1");
  const Run b = claimed(f.repo, "b", "s2");
  const Run c = claimed(f.repo, "c", "s1");
  const auto mine = f.repo.interrupt_runs(0s, {.server_id = "s1"});
  std::set<std::string> ids;
  for (const auto& run : mine) ids.insert(run.private_id);
  CHECK(ids == std::set<std::string>{a.private_id, c.private_id});
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  CHECK(f.repo.interrupt_runs(0s, {.server_id = "nobody"}).empty());
  CHECK(f.repo.interrupt_runs(0s, {.server_id = ""}).size() == 1);  // empty: no filter
}

TEST_CASE("lookup_run finds a run of its own plugin or nothing", "[conformance][lookup]") {
  Fixture f;
  const Run run = claimed(f.repo, "j");
  CHECK(f.repo.lookup_run(run.private_id).has_value());
  CHECK(!f.repo.lookup_run("no-such-run-0000").has_value());
  CHECK(!f.other_plugin().lookup_run(run.private_id).has_value());
  JR_REQUIRE_ERROR(f.repo.lookup_run(""), ErrorCode::invalid_parameter);
}

TEST_CASE("list_runs lists newest first, filters by job and status, honours limits", "[conformance][history]") {
  Fixture f;
  const Run a1 = claimed(f.repo, "a");
  f.store.set_clock_offset(1s);
  f.repo.complete_run(a1.private_id, 0s);
  f.store.set_clock_offset(2s);
  const Run a2 = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"a"}}).at(0);
  f.store.set_clock_offset(3s);
  const Run b1 = claimed(f.repo, "b");
  f.other_plugin().create_job("theirs", "d");
  f.other_plugin().run_jobs("s1");

  std::vector<std::string> ids;
  for (const auto& run : f.repo.list_runs()) ids.push_back(run.private_id);
  CHECK(ids == std::vector<std::string>{b1.private_id, a2.private_id, a1.private_id});
  CHECK(f.repo.list_runs({.job_name = "a"}).size() == 2);
  const auto done = f.repo.list_runs({.status = Status::completed});
  REQUIRE(done.size() == 1);
  CHECK(done.at(0).private_id == a1.private_id);
  CHECK(done.at(0).status == Status::completed);
  CHECK(f.repo.list_runs({.job_name = "a", .status = Status::running}).at(0).private_id == a2.private_id);
  const auto first = f.repo.list_runs({.limit = 1});
  REQUIRE(first.size() == 1);
  CHECK(first.at(0).private_id == b1.private_id);
  const auto two = f.repo.list_runs({.limit = 2});
  REQUIRE(two.size() == 2);
  CHECK(two.at(1).private_id == a2.private_id);
  CHECK(f.repo.list_runs({.job_name = "a", .limit = 1}).size() == 1);
  CHECK(f.repo.list_runs({.limit = -1}).size() == 3);
  CHECK(f.repo.list_runs({.job_name = "nope"}).empty());
}

TEST_CASE("prune_runs deletes old final runs and keeps running ones", "[conformance][history]") {
  Fixture f;
  const Run old_done = claimed(f.repo, "old");
  f.repo.complete_run(old_done.private_id, 0s);
  const Run still_running = claimed(f.repo, "busy");
  f.store.set_clock_offset(2h);
  const Run recent = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"old"}}).at(0);
  f.repo.fail_run(recent.private_id);
  JR_REQUIRE_ERROR(f.repo.prune_runs(-1s), ErrorCode::invalid_parameter);
  CHECK(f.repo.prune_runs(1h) == 1);
  CHECK(!f.repo.lookup_run(old_done.private_id).has_value());
  CHECK(f.repo.lookup_run(recent.private_id).has_value());
  CHECK(f.repo.lookup_run(still_running.private_id)->status == Status::running);
  // Another plugin's final runs are not this plugin's to prune.
  Repository other = f.other_plugin();
  other.create_job("theirs", "d");
  const Run theirs = other.run_jobs("s1").at(0);
  other.complete_run(theirs.private_id, 1h);
  f.store.set_clock_offset(4h);
  CHECK(f.repo.prune_runs(0s) == 1);  // every final run
  CHECK(f.repo.lookup_run(still_running.private_id).has_value());
  CHECK(f.repo.prune_runs(0s) == 0);
  CHECK(other.lookup_run(theirs.private_id).has_value());
  CHECK(other.prune_runs(0s) == 1);
  CHECK(!other.lookup_run(theirs.private_id).has_value());
}

TEST_CASE("prune_job_runs keeps the newest keep_last final runs of that job only, never a running one",
          "[conformance][history]") {
  Fixture f;
  auto offset = std::chrono::microseconds(0);
  const auto a = ended_runs(f, f.repo, "a", 5, offset);
  const auto b = ended_runs(f, f.repo, "b", 3, offset);
  Repository other = f.other_plugin();
  const auto theirs = ended_runs(f, other, "a", 3, offset);
  f.store.set_clock_offset(offset += 1min);
  const Run running = claimed(f.repo, "a");
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 3);
  REQUIRE(theirs.size() == 3);

  // Neither rule: nothing goes.
  CHECK(f.repo.prune_job_runs("a", {}) == 0);
  CHECK(run_ids(f.repo, "a").size() == 6);
  // The 2 newest final runs of a stay, with the running one; b's and the
  // other plugin's "a" are not a's.
  CHECK(f.repo.prune_job_runs("a", {.keep_last = 2}) == 3);
  CHECK(run_ids(f.repo, "a") == std::set<std::string>{a.at(3), a.at(4), running.private_id});
  const auto still = f.repo.lookup_run(running.private_id);
  REQUIRE(still.has_value());
  CHECK(still->status == Status::running);
  CHECK(run_ids(f.repo, "b") == std::set<std::string>(b.begin(), b.end()));
  CHECK(run_ids(other, "a") == std::set<std::string>(theirs.begin(), theirs.end()));
  // Again: nothing more (several servers pruning at once is harmless).
  CHECK(f.repo.prune_job_runs("a", {.keep_last = 2}) == 0);
  // A rule that keeps more than there is deletes nothing.
  CHECK(f.repo.prune_job_runs("b", {.keep_last = 3}) == 0);
  CHECK(f.repo.prune_job_runs("b", {.keep_last = 1}) == 2);
  CHECK(run_ids(f.repo, "b") == std::set<std::string>{b.at(2)});
  // The running run neither counts as kept nor goes.
  CHECK(f.repo.prune_job_runs("a", {.keep_last = 1}) == 1);
  CHECK(run_ids(f.repo, "a") == std::set<std::string>{a.at(4), running.private_id});
  // The other plugin prunes its own job "a".
  CHECK(other.prune_job_runs("a", {.keep_last = 1}) == 2);
  CHECK(run_ids(other, "a") == std::set<std::string>{theirs.at(2)});
  CHECK(run_ids(f.repo, "a") == std::set<std::string>{a.at(4), running.private_id});

  // A job that does not exist in the plugin (another plugin's name is not
  // this plugin's), and the rules core checks.
  JR_REQUIRE_ERROR_WITH(f.repo.prune_job_runs("nope", {.keep_last = 1}), ErrorCode::record_not_found, "nope");
  other.create_job("theirs only", "d");
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("theirs only", {.keep_last = 1}), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("a", {.keep_last = 0}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("a", {.older_than = -1us}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("a", {.older_than = max_offset + 1us}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("", {.keep_last = 1}), ErrorCode::invalid_parameter);
  CHECK(run_ids(f.repo, "a") == std::set<std::string>{a.at(4), running.private_id});
}

TEST_CASE("prune_job_runs keeps the runs that ended last, whenever they started", "[conformance][history]") {
  Fixture f;
  // The clock steps back between the two runs: the second starts later
  // than the first by its create_time, and ends earlier.
  const Run first = claimed(f.repo, "c");
  f.store.set_clock_offset(100s);
  f.repo.complete_run(first.private_id, -1h);
  f.store.set_clock_offset(50s);
  const Run second = claimed(f.repo, "c");
  f.store.set_clock_offset(60s);
  f.repo.complete_run(second.private_id, -1h);
  const auto ended_first = f.repo.lookup_run(first.private_id);
  const auto ended_second = f.repo.lookup_run(second.private_id);
  REQUIRE(ended_first.has_value());
  REQUIRE(ended_second.has_value());
  REQUIRE(ended_first->end_time.has_value());
  REQUIRE(ended_second->end_time.has_value());
  REQUIRE(ended_second->create_time > ended_first->create_time);
  REQUIRE(*ended_second->end_time < *ended_first->end_time);
  CHECK(f.repo.prune_job_runs("c", {.keep_last = 1}) == 1);
  CHECK(run_ids(f.repo, "c") == std::set<std::string>{first.private_id});
}

TEST_CASE("prune_job_runs deletes the job's final runs that ended at least older_than ago by the store's clock",
          "[conformance][history]") {
  Fixture f;
  auto offset = std::chrono::microseconds(0);
  // Ends at +2, +4 and +6 minutes (and now's wall time then).
  const auto c = ended_runs(f, f.repo, "c", 3, offset);
  const auto d = ended_runs(f, f.repo, "d", 1, offset);
  f.store.set_clock_offset(offset += 1min);
  const Run running = claimed(f.repo, "c");
  REQUIRE(c.size() == 3);
  REQUIRE(d.size() == 1);
  // Now: 1 h after 5 minutes; the runs that ended at 2 and 4 minutes go.
  f.store.set_clock_offset(1h + 5min);
  CHECK(f.repo.prune_job_runs("c", {.older_than = 2h}) == 0);
  CHECK(f.repo.prune_job_runs("c", {.older_than = 1h}) == 2);
  CHECK(run_ids(f.repo, "c") == std::set<std::string>{c.at(2), running.private_id});
  CHECK(f.repo.prune_job_runs("c", {.older_than = 1h}) == 0);
  // 0: every final run of the job, never the running one, never another job's.
  CHECK(f.repo.prune_job_runs("c", {.older_than = 0s}) == 1);
  CHECK(run_ids(f.repo, "c") == std::set<std::string>{running.private_id});
  CHECK(run_ids(f.repo, "d") == std::set<std::string>(d.begin(), d.end()));
  CHECK(f.repo.prune_job_runs("c", {.older_than = max_offset}) == 0);
}

TEST_CASE("prune_job_runs deletes a run when either rule says so", "[conformance][history]") {
  Fixture f;
  auto offset = std::chrono::microseconds(0);
  // Ends at +2, +4, +6, +8 and +10 minutes.
  const auto e = ended_runs(f, f.repo, "e", 5, offset);
  REQUIRE(e.size() == 5);
  // Now: 1 h after 7 minutes. keep_last 4 alone would delete e[0], older_than
  // 1 h alone e[0] to e[2]: together e[0] to e[2].
  f.store.set_clock_offset(1h + 7min);
  CHECK(f.repo.prune_job_runs("e", {.keep_last = 4, .older_than = 1h}) == 3);
  CHECK(run_ids(f.repo, "e") == std::set<std::string>{e.at(3), e.at(4)});
  // older_than 2 h alone would delete none, keep_last 1 e[3]: together e[3].
  CHECK(f.repo.prune_job_runs("e", {.keep_last = 1, .older_than = 2h}) == 1);
  CHECK(run_ids(f.repo, "e") == std::set<std::string>{e.at(4)});
}

TEST_CASE("prune_job_runs deletes at most limit runs per call, the oldest first", "[conformance][history]") {
  Fixture f;
  auto offset = std::chrono::microseconds(0);
  const auto g = ended_runs(f, f.repo, "g", 6, offset);
  REQUIRE(g.size() == 6);
  CHECK(f.repo.prune_job_runs("g", {.keep_last = 1, .limit = 2}) == 2);
  CHECK(run_ids(f.repo, "g") == std::set<std::string>{g.at(2), g.at(3), g.at(4), g.at(5)});
  CHECK(f.repo.prune_job_runs("g", {.older_than = 0s, .limit = 1}) == 1);
  CHECK(run_ids(f.repo, "g") == std::set<std::string>{g.at(3), g.at(4), g.at(5)});
  CHECK(f.repo.prune_job_runs("g", {.keep_last = 1, .limit = 2}) == 2);
  CHECK(f.repo.prune_job_runs("g", {.keep_last = 1, .limit = 2}) == 0);
  CHECK(run_ids(f.repo, "g") == std::set<std::string>{g.at(5)});
  JR_REQUIRE_ERROR(f.repo.prune_job_runs("g", {.keep_last = 1, .limit = max_pruned_runs + 1}),
                   ErrorCode::invalid_parameter);
}

TEST_CASE("delete_job deletes the job and its runs", "[conformance][jobs]") {
  Fixture f;
  const Run run = claimed(f.repo, "doomed");
  f.repo.create_job("kept", "d");
  // A job of the same name in another plugin, with a run, is not touched.
  Repository other = f.other_plugin();
  other.create_job("doomed", "theirs");
  const Run their_run = other.run_jobs("s1").at(0);
  f.repo.delete_job("doomed");
  CHECK(other.lookup_job("doomed").has_value());
  CHECK(other.lookup_run(their_run.private_id).has_value());
  CHECK(other.list_runs({.job_name = "doomed"}).size() == 1);
  CHECK(!f.repo.lookup_job("doomed").has_value());
  CHECK(!f.repo.lookup_run(run.private_id).has_value());
  CHECK(f.repo.lookup_job("kept").has_value());
  JR_REQUIRE_ERROR_WITH(f.repo.delete_job("doomed"), ErrorCode::record_not_found, "doomed");
  JR_REQUIRE_ERROR(f.repo.delete_job(""), ErrorCode::invalid_parameter);
  f.other_plugin().create_job("theirs", "d");
  JR_REQUIRE_ERROR(f.repo.delete_job("theirs"), ErrorCode::record_not_found);
  CHECK(f.other_plugin().lookup_job("theirs").has_value());
  // The owner of a deleted running run learns it at its next heartbeat.
  JR_REQUIRE_ERROR(f.repo.update_progress(run.private_id, 1, 1), ErrorCode::record_not_found);
}

TEST_CASE("a final run never changes again", "[conformance][states]") {
  Fixture f;
  const Run completed = claimed(f.repo, "completed");
  const Run failed = claimed(f.repo, "failed");
  const Run interrupted = claimed(f.repo, "interrupted");
  f.repo.complete_run(completed.private_id, 1h);
  f.repo.fail_run(failed.private_id);
  f.repo.interrupt_runs(0s);
  for (const Run* run : {&completed, &failed, &interrupted}) {
    const Run before = f.repo.lookup_run(run->private_id).value();
    const std::string state(to_string(before.status));
    INFO("run of job " << run->job_name << " is " << state);
    CHECK(before.status == parse_status(run->job_name));
    JR_REQUIRE_ERROR_WITH(f.repo.update_progress(run->private_id, 1, 1), ErrorCode::invalid_job_run_state, state);
    JR_REQUIRE_ERROR_WITH(f.repo.complete_run(run->private_id, 0s), ErrorCode::invalid_job_run_state, state);
    JR_REQUIRE_ERROR_WITH(f.repo.fail_run(run->private_id), ErrorCode::invalid_job_run_state, state);
    CHECK(*f.repo.lookup_run(run->private_id) == before);
  }
  CHECK(f.repo.interrupt_runs(0s).empty());
}

TEST_CASE("runs claimed together list in private_id order among equal create times", "[conformance][history]") {
  Fixture f;
  for (const char* name : {"a", "b", "c", "d", "e"}) f.repo.create_job(name, "d");
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 5);
  const auto listed = f.repo.list_runs();
  REQUIRE(listed.size() == 5);
  for (std::size_t i = 1; i < listed.size(); ++i) {
    INFO("runs " << i - 1 << " and " << i << ": " << ::Catch::Detail::stringify(listed.at(i - 1)) << " then "
                 << ::Catch::Detail::stringify(listed.at(i)));
    CHECK(listed.at(i - 1).create_time >= listed.at(i).create_time);
    if (listed.at(i - 1).create_time == listed.at(i).create_time)
      CHECK(listed.at(i - 1).private_id < listed.at(i).private_id);
  }
}

TEST_CASE("every timestamp the store returns has microsecond resolution", "[conformance][clock]") {
  Fixture f;
  const auto whole = [](Timestamp t) {
    return t.time_since_epoch() % std::chrono::microseconds(1) == Clock::duration(0);
  };
  std::vector<Timestamp> seen;
  seen.push_back(f.store.now());
  const Job job = f.repo.create_job("j", "d");
  seen.push_back(job.next_scheduled_run);
  const Run run = f.repo.run_jobs("s1").at(0);
  seen.insert(seen.end(), {run.create_time, run.update_time});
  const Run progressed = f.repo.update_progress(run.private_id, 1, 2);
  seen.push_back(progressed.update_time);
  const Run done = f.repo.complete_run(run.private_id, 1500ms);
  seen.insert(seen.end(), {done.update_time, done.end_time.value()});
  const Job after = f.repo.lookup_job("j").value();
  seen.insert(seen.end(), {after.next_scheduled_run, after.last_end_time.value(), after.last_success_time.value()});
  const Run listed = f.repo.list_runs().at(0);
  seen.insert(seen.end(), {listed.create_time, listed.update_time, listed.end_time.value()});
  for (std::size_t i = 0; i < seen.size(); ++i) {
    INFO("timestamp " << i << ": " << ::Catch::Detail::stringify(seen.at(i)));
    CHECK(whole(seen.at(i)));
  }
}

TEST_CASE("interrupt_runs ends exactly the runs with update_time <= now - threshold", "[conformance][interrupt]") {
  Fixture f;
  // Runs heartbeated one after another, each at its own instant, and a cut
  // in their midst: an interrupted run must be at or before the cut (its
  // end_time - threshold), every run left running after it. The cut often
  // falls exactly on a heartbeat on a fast store: `<` is not `<=`.
  constexpr int runs_per_round = 40;
  for (int round = 0; round < 3; ++round) {
    const std::string plugin = "pi_cut_" + std::to_string(round);
    Repository repo = f.other_plugin(plugin);
    for (int i = 0; i < runs_per_round; ++i) repo.create_job("j" + std::to_string(i), "d");
    // A run heartbeated long ago: always interrupted, its end_time is the call's now.
    repo.create_job("anchor", "d", {.next_run_in = -1h});
    const Run anchor = repo.run_jobs("s1").at(0);
    REQUIRE(anchor.job_name == "anchor");
    f.store.set_clock_offset(f.store.clock_offset() + 1h);
    std::vector<Run> beats;
    for (const auto& run : repo.run_jobs("s1", {.limit = -1}))
      beats.push_back(repo.update_progress(run.private_id, 1, 2));
    REQUIRE(beats.size() == static_cast<std::size_t>(runs_per_round));
    const Timestamp middle = beats[beats.size() / 2].update_time;
    const auto threshold = std::chrono::duration_cast<std::chrono::microseconds>(f.store.now() - middle);
    const auto interrupted = repo.interrupt_runs(threshold);
    Timestamp now{};
    for (const auto& run : interrupted) {
      if (run.private_id == anchor.private_id) now = run.end_time.value();
    }
    REQUIRE(now != Timestamp{});
    const Timestamp cut = now - threshold;
    std::set<std::string> ended;
    for (const auto& run : interrupted) ended.insert(run.private_id);
    for (const auto& beat : beats) {
      INFO("round " << round << ": cut at " << ::Catch::Detail::stringify(cut) << " (threshold " << threshold.count()
                    << " us), run updated at " << ::Catch::Detail::stringify(beat.update_time));
      CHECK(ended.count(beat.private_id) == (beat.update_time <= cut ? 1u : 0u));
    }
  }
}

TEST_CASE("microseconds::max() as a due time means never: the job waits for run_now", "[conformance][run]") {
  Fixture f;
  constexpr auto never_again = std::chrono::microseconds::max();
  // create_job, update_job_next_run, complete_run, fail_run and update_runs.
  CHECK(f.repo.create_job("created", "d", {.next_run_in = never_again}).next_scheduled_run == never);
  f.repo.create_job("rescheduled", "d");
  CHECK(f.repo.update_job_next_run("rescheduled", never_again).next_scheduled_run == never);
  const Run completed = claimed(f.repo, "completed");
  f.repo.complete_run(completed.private_id, never_again);
  CHECK(f.repo.lookup_job("completed")->next_scheduled_run == never);
  const Run failed = claimed(f.repo, "failed");
  f.repo.fail_run(failed.private_id, {.retry_in = never_again});
  CHECK(f.repo.lookup_job("failed")->next_scheduled_run == never);
  const Run batched = claimed(f.repo, "batched");
  const std::vector<RunUpdate> updates = {
      {.run_id = batched.private_id, .status = Status::completed, .next_run_in = never_again}};
  REQUIRE(f.repo.update_runs(updates)[0].run);
  CHECK(f.repo.lookup_job("batched")->next_scheduled_run == never);
  // Never is never claimed, even 100 years on; run_now makes it due.
  f.store.set_clock_offset(std::chrono::hours(24 * 365 * 100));
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());
  f.repo.run_now("created");
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).job_name == "created");
  f.store.set_clock_offset(0us);
}

}  // namespace jobrepo::conformance
