// Conformance cases: what operators steer and read (schema versions 4 to
// 6): pausing, a run-now that sticks, and its arguments (a payload), cancel
// requests, why runs ended, the count of consecutive failures, which servers
// serve which jobs, and a server id as a lease held by one instance.
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace jobrepo::conformance {

void link_control_cases() {}

namespace {

Job job(Repository& repo, const std::string& name) {
  auto found = repo.lookup_job(name);
  REQUIRE(found.has_value());
  return *found;
}

// A JSON string of exactly `bytes` bytes (at least 12) that holds characters
// of 2, 3 and 4 bytes in UTF-8 and escapes.
std::string json_string_of(std::size_t bytes) {
  static const std::string pieces[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\n", "\\u00e9", "a"};
  std::string body;
  for (std::size_t i = 0; body.size() + 2 + 6 <= bytes; ++i) body += pieces[i % 6];
  body.append(bytes - 2 - body.size(), 'a');
  return "\"" + body + "\"";
}

}  // namespace

TEST_CASE("a paused job is never claimed; its running run ends normally; resume lets it run",
          "[conformance][control]") {
  Fixture f;
  f.repo.create_job("a", "d");
  f.repo.create_job("b", "d");
  const auto running = claimed(f.repo, "b");
  CHECK(!job(f.repo, "a").paused);
  const auto paused = f.repo.pause_job("a");
  CHECK(paused.paused);
  CHECK(job(f.repo, "a").paused);
  CHECK(f.repo.list_jobs().at(0).paused);
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());
  // Pausing is idempotent and does not stop a running run.
  f.repo.pause_job("b");
  f.repo.pause_job("b");
  const auto completed = f.repo.complete_run(running.private_id, 0us);
  CHECK(completed.status == Status::completed);
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());
  // Other plugins are not paused.
  auto other = f.other_plugin();
  other.create_job("a", "d");
  CHECK(other.run_jobs("s1").size() == 1);
  const auto resumed = f.repo.resume_job("a");
  CHECK(!resumed.paused);
  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).job_name == "a");
  JR_REQUIRE_ERROR_WITH(f.repo.pause_job("nope"), ErrorCode::record_not_found, "pause_job");
  JR_REQUIRE_ERROR_WITH(f.repo.resume_job("nope"), ErrorCode::record_not_found, "resume_job");
  JR_REQUIRE_ERROR(f.repo.pause_job(""), ErrorCode::invalid_parameter);
}

TEST_CASE("run_now makes an idle job due now and a running job due when its run ends", "[conformance][control]") {
  Fixture f;
  f.repo.create_job("idle", "d", {.next_run_in = 1h});
  const auto idle = f.repo.run_now("idle");
  CHECK(!idle.run_requested);
  CHECK(idle.next_scheduled_run <= f.repo.database_time());
  CHECK(f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"idle"}}).size() == 1);

  // While a run runs: the request sticks through the run's own reschedule.
  const auto run = claimed(f.repo, "busy");
  const auto before = job(f.repo, "busy").next_scheduled_run;
  const auto requested = f.repo.run_now("busy");
  CHECK(requested.run_requested);
  CHECK(requested.next_scheduled_run == before);
  f.repo.complete_run(run.private_id, 1h);
  const auto after = job(f.repo, "busy");
  CHECK(!after.run_requested);
  CHECK(after.next_scheduled_run <= f.repo.database_time());
  const auto again = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"busy"}});
  REQUIRE(again.size() == 1);
  // Without another request the next end reschedules as asked.
  f.repo.complete_run(again.at(0).private_id, 1h);
  CHECK(job(f.repo, "busy").next_scheduled_run > f.repo.database_time() + 50min);

  // A run that ends without a reschedule leaves the job due; the claim clears the request.
  const auto third = claimed(f.repo, "plain");
  f.repo.run_now("plain");
  f.repo.fail_run(third.private_id);
  CHECK(job(f.repo, "plain").run_requested);
  REQUIRE(f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"plain"}}).size() == 1);
  CHECK(!job(f.repo, "plain").run_requested);

  // A paused job stays paused.
  f.repo.create_job("held", "d", {.next_run_in = 1h});
  f.repo.pause_job("held");
  const auto held = f.repo.run_now("held");
  CHECK(held.paused);
  CHECK(f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"held"}}).empty());
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("nope"), ErrorCode::record_not_found, "run_now");
}

TEST_CASE("run_now with a payload gives it to the run the next claim makes, byte for byte, and clears it",
          "[conformance][control]") {
  Fixture f;
  const std::string payload = R"({"full": true, "ids": [1, 2.5e3, -0], "note": "caf\u00e9 \u20ac"})";
  f.repo.create_job("a", "d", {.next_run_in = 1h});
  const auto asked = f.repo.run_now("a", payload);
  CHECK(asked.requested_payload == std::optional(payload));
  CHECK(!asked.run_requested);
  CHECK(asked.next_scheduled_run <= f.repo.database_time());
  CHECK(job(f.repo, "a") == asked);
  CHECK(f.repo.list_jobs().at(0) == asked);
  // Another plugin's job of the same name is another job.
  auto other = f.other_plugin();
  other.create_job("a", "d", {.next_run_in = 1h});
  CHECK(!job(other, "a").requested_payload);
  other.run_now("a", "[\"other\"]");
  CHECK(job(f.repo, "a").requested_payload == std::optional(payload));

  const auto runs = f.repo.run_jobs("s1", {.limit = -1});
  REQUIRE(runs.size() == 1);
  const auto& run = runs.at(0);
  CHECK(run.payload == std::optional(payload));
  CHECK(f.repo.lookup_run(run.private_id).value() == run);
  CHECK(f.repo.list_runs().at(0) == run);
  const auto claimed_job = job(f.repo, "a");
  CHECK(!claimed_job.requested_payload);
  CHECK(!claimed_job.run_requested);
  // The run keeps it to its end.
  CHECK(f.repo.update_progress(run.private_id, 1, 2).payload == std::optional(payload));
  const auto done = f.repo.complete_run(run.private_id, -1min);
  CHECK(done.payload == std::optional(payload));
  CHECK(f.repo.lookup_run(run.private_id).value() == done);
  // The next run, a scheduled one, has none.
  const auto next = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"a"}});
  REQUIRE(next.size() == 1);
  CHECK(!next.at(0).payload);
  CHECK(!f.repo.lookup_run(next.at(0).private_id)->payload);
  // A run_now without a payload makes a run without one.
  f.repo.create_job("plain", "d", {.next_run_in = 1h});
  CHECK(!f.repo.run_now("plain").requested_payload);
  const auto plain = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"plain"}});
  REQUIRE(plain.size() == 1);
  CHECK(!plain.at(0).payload);
  // The other plugin's run gets its own.
  const auto theirs = other.run_jobs("s1");
  REQUIRE(theirs.size() == 1);
  CHECK(theirs.at(0).payload == std::optional<std::string>("[\"other\"]"));
}

TEST_CASE(
    "a run_now with another payload while one waits is refused and changes nothing; the same one or none keeps it",
    "[conformance][control]") {
  Fixture f;
  const std::string first = R"({"n":1})";
  const std::string second = R"({"n":2})";
  f.repo.create_job("j", "d", {.next_run_in = 1h});
  f.repo.run_now("j", first);
  // Waiting for a claim, later than now (so that a write would show).
  f.repo.update_job_next_run("j", 1h);
  const auto waiting = job(f.repo, "j");
  CHECK(waiting.requested_payload == std::optional(first));
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("j", second), ErrorCode::invalid_job_run_state, "run_now: job \"j\"");
  CHECK(job(f.repo, "j") == waiting);
  // The same payload again, or none: the request stands, with its payload, due now.
  const auto again = f.repo.run_now("j", first);
  CHECK(again.requested_payload == std::optional(first));
  CHECK(again.next_scheduled_run <= f.repo.database_time());
  f.repo.update_job_next_run("j", 1h);
  const auto bare = f.repo.run_now("j");
  CHECK(bare.requested_payload == std::optional(first));
  CHECK(bare.next_scheduled_run <= f.repo.database_time());
  // Equal means byte for byte: the same value written otherwise is another payload.
  JR_REQUIRE_ERROR(f.repo.run_now("j", R"({"n": 1})"), ErrorCode::invalid_job_run_state);
  const auto runs = f.repo.run_jobs("s1");
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).payload == std::optional(first));
  // Once claimed, the second is taken: the run that follows gets it.
  const auto later = f.repo.run_now("j", second);
  CHECK(later.requested_payload == std::optional(second));
  CHECK(later.run_requested);
  CHECK(f.repo.lookup_run(runs.at(0).private_id)->payload == std::optional(first));
  // **core:** errors in their order; none writes anything.
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("nope", first), ErrorCode::record_not_found, "run_now");
  JR_REQUIRE_ERROR(f.repo.run_now("", first), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("j", "{"), ErrorCode::invalid_parameter, "not valid JSON");
  JR_REQUIRE_ERROR(f.repo.run_now("j", ""), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("nope", "{"), ErrorCode::invalid_parameter, "payload");
  CHECK(!f.repo.lookup_job("nope"));
  CHECK(job(f.repo, "j") == later);
}

TEST_CASE("run_now with a payload while the job runs keeps it for the run that follows", "[conformance][control]") {
  Fixture f;
  const std::string payload = R"(["again"])";
  const auto run = claimed(f.repo, "busy");
  const auto before = job(f.repo, "busy").next_scheduled_run;
  const auto asked = f.repo.run_now("busy", payload);
  CHECK(asked.run_requested);
  CHECK(asked.requested_payload == std::optional(payload));
  CHECK(asked.next_scheduled_run == before);
  CHECK(!f.repo.lookup_run(run.private_id)->payload);  // the running run keeps its own (none)
  CHECK(!f.repo.update_progress(run.private_id, 1, 1).payload);
  // Its end makes the job due at once and leaves the payload waiting.
  const auto ended = f.repo.complete_run(run.private_id, 1h);
  CHECK(!ended.payload);
  const auto after = job(f.repo, "busy");
  CHECK(!after.run_requested);
  CHECK(after.requested_payload == std::optional(payload));
  CHECK(after.next_scheduled_run <= f.repo.database_time());
  const auto next = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"busy"}});
  REQUIRE(next.size() == 1);
  CHECK(next.at(0).payload == std::optional(payload));
  CHECK(!job(f.repo, "busy").requested_payload);
  // A run that fails without a reschedule keeps the request and its payload for the next claim.
  f.repo.run_now("busy", "2");
  f.repo.fail_run(next.at(0).private_id);
  CHECK(job(f.repo, "busy").run_requested);
  CHECK(job(f.repo, "busy").requested_payload == std::optional<std::string>("2"));
  const auto third = f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"busy"}});
  REQUIRE(third.size() == 1);
  CHECK(third.at(0).payload == std::optional<std::string>("2"));
  CHECK(!job(f.repo, "busy").run_requested);
  CHECK(!job(f.repo, "busy").requested_payload);
}

TEST_CASE("a payload of 64 KiB is stored byte for byte; core refuses a bigger one and text that is not JSON",
          "[conformance][control]") {
  Fixture f;
  const std::string largest = json_string_of(max_payload_bytes);
  REQUIRE(largest.size() == 65536);
  REQUIRE(!payload_problem(largest));
  f.repo.create_job("big", "d", {.next_run_in = 1h});
  CHECK(f.repo.run_now("big", largest).requested_payload == std::optional(largest));
  CHECK(job(f.repo, "big").requested_payload == std::optional(largest));
  const auto runs = f.repo.run_jobs("s1");
  REQUIRE(runs.size() == 1);
  CHECK(runs.at(0).payload == std::optional(largest));
  CHECK(f.repo.lookup_run(runs.at(0).private_id)->payload == std::optional(largest));
  CHECK(f.repo.list_runs({.job_name = "big"}).at(0).payload == std::optional(largest));
  // Whitespace and escapes are kept as written.
  const std::string spaced = " {\"a\" :\t[ 1 ,\"\\u00e9\\n\" ] }\n";
  f.repo.create_job("spaced", "d", {.next_run_in = 1h});
  f.repo.run_now("spaced", spaced);
  const auto spaced_runs = f.repo.run_jobs("s1");
  REQUIRE(spaced_runs.size() == 1);
  CHECK(spaced_runs.at(0).payload == std::optional(spaced));
  // **core:** one byte more, text that is not JSON: invalid_parameter, nothing written.
  f.repo.create_job("refused", "d", {.next_run_in = 1h});
  const auto before = job(f.repo, "refused");
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("refused", largest + " "), ErrorCode::invalid_parameter, "65537 bytes");
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("refused", "{'a': 1}"), ErrorCode::invalid_parameter, "not valid JSON");
  JR_REQUIRE_ERROR_WITH(f.repo.run_now("refused", "[1,]"), ErrorCode::invalid_parameter, "not valid JSON");
  CHECK(job(f.repo, "refused") == before);
  CHECK(f.repo.run_jobs("s1", {.only_jobs = std::vector<std::string>{"refused"}}).empty());
}

TEST_CASE("cancel_run asks the run's server to stop it; its server ends it as interrupted", "[conformance][control]") {
  Fixture f;
  const auto run = claimed(f.repo, "j");
  CHECK(!run.cancel_requested);
  const auto asked = f.repo.cancel_run(run.private_id);
  CHECK(asked.cancel_requested);
  CHECK(asked.status == Status::running);
  // The owner's next heartbeat tells it.
  const auto beat = f.repo.update_progress(run.private_id, 1, 2);
  CHECK(beat.cancel_requested);
  const auto results = f.repo.update_runs(std::vector<RunUpdate>{RunUpdate{
      .run_id = run.private_id, .status = Status::interrupted, .next_run_in = 1h, .message = "cancelled by operator"}});
  REQUIRE(results.at(0).run.has_value());
  const auto& ended = *results.at(0).run;
  CHECK(ended.status == Status::interrupted);
  CHECK(ended.end_time.has_value());
  CHECK(ended.message == std::optional<std::string>("cancelled by operator"));
  const auto after = job(f.repo, "j");
  CHECK(after.last_status == Status::interrupted);
  CHECK(after.last_message == std::optional<std::string>("cancelled by operator"));
  CHECK(after.consecutive_failures == 0);
  CHECK(after.next_scheduled_run > f.repo.database_time() + 50min);  // keeps its schedule
  JR_REQUIRE_ERROR_WITH(f.repo.cancel_run(run.private_id), ErrorCode::invalid_job_run_state, "cancel_run");
  // A final run never changes: a cancel of a completed run leaves it as it was.
  const auto done = f.repo.complete_run(claimed(f.repo, "done").private_id, 1h);
  JR_REQUIRE_ERROR_WITH(f.repo.cancel_run(done.private_id), ErrorCode::invalid_job_run_state, "completed");
  CHECK(f.repo.lookup_run(done.private_id).value() == done);
  JR_REQUIRE_ERROR_WITH(f.repo.cancel_run("AAAAAAAAAAAAAAAAAAAAAA"), ErrorCode::record_not_found, "cancel_run");
  JR_REQUIRE_ERROR(f.repo.cancel_run("bad id!"), ErrorCode::invalid_parameter);
  auto other = f.other_plugin();
  const auto elsewhere = claimed(other, "j");
  JR_REQUIRE_ERROR(f.repo.cancel_run(elsewhere.private_id), ErrorCode::record_not_found);
  CHECK(!other.lookup_run(elsewhere.private_id)->cancel_requested);
}

TEST_CASE("a run keeps why it ended; its job keeps its last outcome and counts failures in a row",
          "[conformance][control]") {
  Fixture f;
  const auto first = claimed(f.repo, "j");
  CHECK(first.attempt == 1);
  CHECK(!first.message.has_value());
  const auto failed = f.repo.fail_run(first.private_id, {.message = "exit 7"});
  CHECK(failed.message == std::optional<std::string>("exit 7"));
  CHECK(f.repo.lookup_run(first.private_id)->message == std::optional<std::string>("exit 7"));
  auto j = job(f.repo, "j");
  CHECK(j.consecutive_failures == 1);
  CHECK(j.last_status == Status::failed);
  CHECK(j.last_message == std::optional<std::string>("exit 7"));
  CHECK(j.last_end_time == failed.end_time);
  CHECK(!j.last_success_time.has_value());

  const auto second = claimed(f.repo, "j");
  CHECK(second.attempt == 2);
  f.repo.fail_run(second.private_id, {.message = std::string(2000, 'x')});
  const auto third = claimed(f.repo, "j");
  CHECK(third.attempt == 3);
  const auto long_message = f.repo.lookup_run(second.private_id)->message.value_or("");
  CHECK(long_message.size() == max_message_length);
  CHECK(long_message.substr(long_message.size() - 3) == "...");
  // A progress report does not end anything.
  f.repo.update_progress(third.private_id, 1, 1);
  CHECK(job(f.repo, "j").consecutive_failures == 2);
  const auto done = f.repo.complete_run(third.private_id, 0us);
  CHECK(!done.message.has_value());
  j = job(f.repo, "j");
  CHECK(j.consecutive_failures == 0);
  CHECK(j.last_status == Status::completed);
  CHECK(!j.last_message.has_value());
  CHECK(j.last_success_time == done.end_time);
  CHECK(claimed(f.repo, "j").attempt == 1);

  // Text that is not valid UTF-8 is mended, never refused.
  f.repo.create_job("k", "d");
  const auto bad = claimed(f.repo, "k");
  const auto mended = f.repo.fail_run(bad.private_id, {.message = std::string("bad \xff byte\nsecond line")});
  CHECK(mended.message == std::optional<std::string>("bad \xEF\xBF\xBD byte second line"));

  // Interruption: the message given, the job's last outcome, failures unchanged.
  const auto stale = claimed(f.repo, "m");
  f.repo.fail_run(claimed(f.repo, "n").private_id);
  const auto interrupted = f.repo.interrupt_runs(0us, {.message = "no heartbeat for 30s"});
  REQUIRE(!interrupted.empty());
  const auto found = f.repo.lookup_run(stale.private_id);
  CHECK(found->status == Status::interrupted);
  CHECK(found->message == std::optional<std::string>("no heartbeat for 30s"));
  const auto m = job(f.repo, "m");
  CHECK(m.last_status == Status::interrupted);
  CHECK(m.last_message == std::optional<std::string>("no heartbeat for 30s"));
  CHECK(m.consecutive_failures == 0);
  CHECK(job(f.repo, "n").consecutive_failures == 1);
}

TEST_CASE("servers record what they serve; list_servings tells which are live", "[conformance][control]") {
  Fixture f;
  f.repo.create_job("a", "d");
  f.repo.create_job("b", "d");
  f.repo.record_server("s1", 1min,
                       {.instance = "i1", .jobs = std::vector<ServedJob>{{"a", "f1"}, {"b", "f1"}, {"ghost", "f1"}}});
  f.repo.record_server("s2", 1min, {.instance = "i2", .jobs = std::vector<ServedJob>{{"a", "f2"}}});
  auto servings = f.repo.list_servings();
  REQUIRE(servings.size() == 3);
  CHECK(servings.at(0).job_name == "a");
  CHECK(servings.at(0).server_id == "s1");
  CHECK(servings.at(0).fingerprint == "f1");
  CHECK(servings.at(1).job_name == "a");
  CHECK(servings.at(1).server_id == "s2");
  CHECK(servings.at(1).fingerprint == "f2");
  CHECK(servings.at(2).job_name == "b");
  for (const auto& s : servings) {
    CHECK(s.live);
    CHECK(near_system_now(s.registered_time));
    CHECK(near_system_now(s.seen_time));
  }
  CHECK(f.repo.list_servings("b").size() == 1);
  CHECK(f.other_plugin().list_servings().empty());

  // A proof of life alone keeps the set; a new set replaces it.
  f.repo.record_server("s1", 1min, {.instance = "i1"});
  CHECK(f.repo.list_servings().size() == 3);
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = std::vector<ServedJob>{{"b", "f3"}}});
  servings = f.repo.list_servings();
  REQUIRE(servings.size() == 2);
  CHECK(servings.at(0).server_id == "s2");
  CHECK(servings.at(1).fingerprint == "f3");

  // A server not heard of for its ttl is not live.
  f.store.set_clock_offset(2min);
  servings = f.repo.list_servings();
  CHECK(std::none_of(servings.begin(), servings.end(), [](const Serving& s) { return s.live; }));
  f.repo.record_server("s2", 1min, {.instance = "i2"});
  const auto a_servings = f.repo.list_servings("a");
  REQUIRE(!a_servings.empty());
  CHECK(a_servings.at(0).live);
  f.store.set_clock_offset(0us);

  // A clean stop forgets the server (in its own plugin only); deleting a
  // job forgets who served it.
  auto other = f.other_plugin();
  other.create_job("b", "d");
  other.record_server("s1", 1min, {.instance = "i3", .jobs = std::vector<ServedJob>{{"b", "theirs"}}});
  f.repo.remove_server("s1");
  CHECK(other.list_servings("b").size() == 1);
  f.repo.remove_server("never-seen");
  CHECK(f.repo.list_servings("b").empty());
  f.repo.delete_job("a");
  CHECK(f.repo.list_servings().empty());
  JR_REQUIRE_ERROR(f.repo.record_server("", 1min, {.instance = "i1"}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", -1s, {.instance = "i1"}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", 1min, {.instance = ""}), ErrorCode::invalid_parameter);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = std::vector<ServedJob>{{"a", ""}}}),
                   ErrorCode::invalid_parameter);
}

TEST_CASE("pause_job and resume_job change only their own plugin's job of that name", "[conformance][control]") {
  Fixture f;
  auto other = f.other_plugin();
  // Both exist before the pause: a store whose update ignored the plugin
  // would pause both.
  f.repo.create_job("a", "d");
  other.create_job("a", "d");
  f.repo.pause_job("a");
  CHECK(job(f.repo, "a").paused);
  CHECK(!job(other, "a").paused);
  CHECK(f.repo.run_jobs("s1", {.limit = -1}).empty());
  const auto theirs = other.run_jobs("s1", {.limit = -1});
  REQUIRE(theirs.size() == 1);
  other.complete_run(theirs.at(0).private_id, -1h);  // due again at once
  // And the other way round: their pause leaves ours paused, their resume
  // leaves ours paused too.
  other.pause_job("a");
  other.resume_job("a");
  CHECK(job(f.repo, "a").paused);
  CHECK(!job(other, "a").paused);
  f.repo.resume_job("a");
  other.pause_job("a");
  CHECK(!job(f.repo, "a").paused);
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1})) == std::vector<std::string>{"a"});
  CHECK(other.run_jobs("s1", {.limit = -1}).empty());
}

TEST_CASE("a serving's registered_time is when its set was recorded, seen_time the server's last record",
          "[conformance][control]") {
  Fixture f;
  f.repo.create_job("a", "d");
  f.repo.create_job("b", "d");
  const auto first = f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = std::vector<ServedJob>{{"a", "f1"}}});
  REQUIRE(first.held);
  const auto registered = first.seen_time;
  // A proof of life 10 s later: seen then, registered as before.
  f.store.set_clock_offset(10s);
  const auto alive = f.repo.record_server("s1", 1min, {.instance = "i1"});
  auto servings = f.repo.list_servings();
  REQUIRE(servings.size() == 1);
  CHECK(servings.at(0).registered_time == registered);
  CHECK(servings.at(0).seen_time == alive.seen_time);
  CHECK(alive.seen_time - registered >= 10s);
  // A set recorded 20 s later: each of its jobs registered then.
  f.store.set_clock_offset(20s);
  const auto again =
      f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = std::vector<ServedJob>{{"a", "f1"}, {"b", "f1"}}});
  servings = f.repo.list_servings();
  REQUIRE(servings.size() == 2);
  for (const auto& serving : servings) {
    CHECK(serving.registered_time == again.seen_time);
    CHECK(serving.seen_time == again.seen_time);
  }
  f.store.set_clock_offset(0us);
}

TEST_CASE("a server recorded again after remove_server serves nothing until it records a set",
          "[conformance][control][servers]") {
  Fixture f;
  f.repo.create_job("a", "d");
  f.repo.record_server("s1", 1min, {.instance = "i1", .jobs = std::vector<ServedJob>{{"a", "f1"}}});
  REQUIRE(f.repo.list_servings().size() == 1);
  f.repo.remove_server("s1", "i1");
  CHECK(f.repo.list_servings().empty());
  // The same instance (a stop racing its last proof of life) or a new one
  // records the id again without a set: the old set does not come back.
  CHECK(f.repo.record_server("s1", 1min, {.instance = "i1"}).held);
  CHECK(f.repo.list_servings().empty());
  CHECK(f.repo.run_jobs("s1", {.limit = -1, .served_only = true}).empty());
  f.repo.remove_server("s1");
  CHECK(f.repo.record_server("s1", 1min, {.instance = "i2"}).held);
  CHECK(f.repo.list_servings().empty());
  CHECK(f.repo.run_jobs("s1", {.limit = -1, .served_only = true}).empty());
  // A set recorded then is served.
  f.repo.record_server("s1", 1min, {.instance = "i2", .jobs = std::vector<ServedJob>{{"a", "f2"}}});
  const auto servings = f.repo.list_servings();
  REQUIRE(servings.size() == 1);
  CHECK(servings.at(0).fingerprint == "f2");
  CHECK(job_names(f.repo.run_jobs("s1", {.limit = -1, .served_only = true})) == std::vector<std::string>{"a"});
}

TEST_CASE("a server id is a lease: one instance holds it until it stops or another takes it over",
          "[conformance][control]") {
  Fixture f;
  f.repo.create_job("a", "d");
  // The first record of an id holds it.
  const auto first = f.repo.record_server("s1", 1min, {.instance = "i1", .address = "host-1 pid 1"});
  CHECK(first.held);
  CHECK(first.instance == "i1");
  CHECK(first.address == "host-1 pid 1");
  CHECK(near_system_now(first.seen_time));
  CHECK(first.expire_time - first.seen_time == 1min);
  // Another instance is told who holds it, and nothing is written.
  f.store.set_clock_offset(10s);
  const auto refused = f.repo.record_server(
      "s1", 5min, {.instance = "i2", .address = "host-2 pid 2", .jobs = std::vector<ServedJob>{{"a", "f2"}}});
  CHECK(!refused.held);
  CHECK(refused.instance == "i1");
  CHECK(refused.address == "host-1 pid 1");
  CHECK(refused.seen_time == first.seen_time);
  CHECK(refused.expire_time == first.expire_time);
  CHECK(f.repo.list_servings().empty());
  // Even once its lease ran out: only a take-over replaces the holder.
  f.store.set_clock_offset(2min);
  CHECK(!f.repo.record_server("s1", 1min, {.instance = "i2"}).held);
  // The holder renews it, with its jobs.
  const auto renewed = f.repo.record_server(
      "s1", 1min, {.instance = "i1", .address = "host-1 pid 1", .jobs = std::vector<ServedJob>{{"a", "f1"}}});
  CHECK(renewed.held);
  CHECK(renewed.seen_time > first.seen_time);
  // A take-over holds it from then on; the former holder is refused.
  const auto taken = f.repo.record_server("s1", 1min, {.instance = "i2", .address = "host-2 pid 2", .take_over = true});
  CHECK(taken.held);
  CHECK(taken.instance == "i2");
  const auto former = f.repo.record_server("s1", 1min, {.instance = "i1"});
  CHECK(!former.held);
  CHECK(former.instance == "i2");
  CHECK(former.address == "host-2 pid 2");
  // remove_server by another instance leaves the record; by the holder (or
  // with no instance) forgets it, and the id is free again.
  f.repo.remove_server("s1", "i1");
  CHECK(!f.repo.record_server("s1", 1min, {.instance = "i3"}).held);
  CHECK(f.repo.list_servings().size() == 1);
  f.repo.remove_server("s1", "i2");
  CHECK(f.repo.list_servings().empty());
  CHECK(f.repo.record_server("s1", 1min, {.instance = "i3"}).held);
  f.repo.remove_server("s1");
  CHECK(f.repo.record_server("s1", 1min, {.instance = "i4"}).held);
  // The same id in another plugin is another lease.
  CHECK(f.other_plugin().record_server("s1", 1min, {.instance = "i5"}).held);
  f.store.set_clock_offset(0us);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", 1min, {.instance = std::string(256, 'i')}), ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", 1min, {.instance = "i4", .address = std::string(256, 'a')}),
                   ErrorCode::check_constraint);
  JR_REQUIRE_ERROR(f.repo.record_server("s1", 1min, {.instance = "i\xff"}), ErrorCode::invalid_parameter);
}

TEST_CASE("two instances record a new server id at once: exactly one holds it", "[conformance][control][race]") {
  Fixture f;
  for (int round = 0; round < 20; ++round) {
    const std::string id = "race-" + std::to_string(round);
    std::atomic<int> held{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        Repository repo(f.store);  // the store's connections are the contenders
        if (repo.record_server(id, 1min, {.instance = "i" + std::to_string(i)}).held) ++held;
      });
    }
    for (auto& t : threads) t.join();
    CHECK(held == 1);
  }
}

TEST_CASE("interrupt_runs of observed runs interrupts each only while its update_time is the one seen",
          "[conformance][run]") {
  Fixture f;
  const auto a = claimed(f.repo, "a");
  const auto b = claimed(f.repo, "b");
  const auto c = claimed(f.repo, "c");
  f.store.set_clock_offset(1s);
  f.repo.update_progress(b.private_id, 1, 2);  // b heartbeats after it was observed
  f.store.set_clock_offset(10min);
  const auto interrupted = f.repo.interrupt_runs(
      1min,
      {.message = "seen stale",
       .runs = std::vector<ObservedRun>{
           {a.private_id, a.update_time}, {b.private_id, b.update_time}, {"never-claimed-run-id", a.update_time}}});
  REQUIRE(interrupted.size() == 1);
  CHECK(interrupted.at(0).private_id == a.private_id);
  CHECK(interrupted.at(0).message == std::optional<std::string>("seen stale"));
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  CHECK(f.repo.lookup_run(c.private_id)->status == Status::running);  // not observed
  // Observed, but not stale by the threshold on the store's clock: kept.
  const auto fresh = f.repo.lookup_run(c.private_id);
  CHECK(f.repo.interrupt_runs(1h, {.runs = std::vector<ObservedRun>{{c.private_id, fresh->update_time}}}).empty());
  // The server filter applies too.
  CHECK(f.repo
            .interrupt_runs(
                1min, {.server_id = "other", .runs = std::vector<ObservedRun>{{c.private_id, fresh->update_time}}})
            .empty());
  CHECK(f.repo.interrupt_runs(1min, {.runs = std::vector<ObservedRun>{{c.private_id, fresh->update_time}}}).size() ==
        1);
  // An empty list interrupts nothing.
  f.repo.update_progress(b.private_id, 2, 2);
  CHECK(f.repo.interrupt_runs(0s, {.runs = std::vector<ObservedRun>{}}).empty());
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  f.store.set_clock_offset(0us);
  JR_REQUIRE_ERROR(f.repo.interrupt_runs(1min, {.runs = std::vector<ObservedRun>{{"bad id!", a.update_time}}}),
                   ErrorCode::invalid_parameter);
}

TEST_CASE("record_work_end keeps the first end of an owner's work, whatever the run's status", "[conformance][run]") {
  Fixture f;
  const auto a = claimed(f.repo, "a");
  CHECK(!a.work_end_time);
  f.repo.interrupt_runs(0s);  // as a peer would, while the owner's work goes on
  const auto ended = f.repo.lookup_run(a.private_id)->end_time.value() + 1500ms;
  const auto noted = f.repo.record_work_end(a.private_id, ended);
  CHECK(noted.status == Status::interrupted);
  REQUIRE(noted.work_end_time);
  CHECK(*noted.work_end_time == ended);
  CHECK(f.repo.lookup_run(a.private_id)->work_end_time == noted.work_end_time);
  // The first time stays.
  CHECK(f.repo.record_work_end(a.private_id, ended + 1h).work_end_time == noted.work_end_time);
  // On a running run too.
  const auto b = claimed(f.repo, "b");
  CHECK(f.repo.record_work_end(b.private_id, b.create_time).work_end_time == std::optional(b.create_time));
  CHECK(f.repo.lookup_run(b.private_id)->status == Status::running);
  JR_REQUIRE_ERROR(f.repo.record_work_end("no-such-run-id-000", ended), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR(f.other_plugin().record_work_end(a.private_id, ended), ErrorCode::record_not_found);
  JR_REQUIRE_ERROR(f.repo.record_work_end("bad id!", ended), ErrorCode::invalid_parameter);
}

}  // namespace jobrepo::conformance
