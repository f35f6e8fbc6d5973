// The Scheduler's rules that need no clock, thread or store
// (core/src/scheduler/policy.hpp), as tables: back-off, when a job runs next
// after completion, an operator's cancel or a failure, and what a run's end
// means.
#include "scheduler/policy.hpp"

#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using jobrepo::CancelReason;
using jobrepo::never;
using jobrepo::Timestamp;
using namespace jobrepo::scheduling;

namespace {

const Timestamp claimed{std::chrono::sys_days{std::chrono::year{2030} / 3 / 1} + 10h};  // a Friday, 10:00 UTC

JobTiming interval(std::chrono::microseconds every, int max_attempts = 0, bool give_up = false) {
  JobTiming t;
  t.every = every;
  t.backoff.initial = 1s;
  t.backoff.max = 1min;
  t.backoff.multiplier = 2.0;
  t.backoff.jitter = 0.0;
  t.backoff.max_attempts = max_attempts;
  t.backoff.give_up = give_up;
  return t;
}

}  // namespace

TEST_CASE("policy: back-off grows by the multiplier, stops at max, and takes the jitter's spread") {
  jobrepo::BackoffOptions b{.initial = 1s, .max = 10s, .multiplier = 3.0, .jitter = 0.2};
  const std::vector<std::tuple<std::int64_t, double, std::chrono::microseconds>> table = {
      {1, 1.0, 1s},    {2, 1.0, 3s},    {3, 1.0, 9s},     {4, 1.0, 10s},
      {100, 1.0, 10s}, {1, 0.8, 800ms}, {1, 1.2, 1200ms}, {4, 1.2, 12s},
  };
  for (const auto& [failures, spread, expected] : table) {
    INFO("failures " << failures << ", spread " << spread);
    CHECK(backoff_delay(b, failures, spread) == expected);
  }
  b.max = jobrepo::max_offset;
  b.multiplier = 1000.0;
  CHECK(backoff_delay(b, 1000, 1.2) == jobrepo::max_offset);  // never beyond 100 years
}

TEST_CASE("policy: after a completion a job runs at the handler's answer, its next fire time, or when asked") {
  const auto now = claimed + 5min;
  CHECK(after_completion(interval(1h), 30min, claimed, now) == Next{.in = 30min, .at = std::nullopt});
  CHECK(after_completion(interval(1h), -1s, claimed, now) == Next{.in = -1s, .at = std::nullopt});
  CHECK(after_completion(interval(1h), std::chrono::microseconds::max(), claimed, now) ==
        Next{.in = std::nullopt, .at = never});
  JobTiming on_demand;
  on_demand.on_demand = true;
  CHECK(after_completion(on_demand, 30min, claimed, now) == Next{.in = std::nullopt, .at = never});
  JobTiming hourly;
  hourly.schedule = jobrepo::CronSchedule("0 * * * *");
  // run_once: the first fire time after the claim, even when it passed
  // while the run ran; skip: the first one still to come.
  const auto late = claimed + 2h + 5min;
  CHECK(after_completion(hourly, 0s, claimed, late).at == claimed + 1h);
  hourly.misfire = jobrepo::Misfire::skip;
  CHECK(after_completion(hourly, 0s, claimed, late).at == claimed + 3h);
}

TEST_CASE("policy: after an operator's cancel a job keeps its schedule") {
  const auto now = claimed + 5min;
  CHECK(regular_next(interval(1h), claimed, now) == Next{.in = 1h, .at = std::nullopt});
  JobTiming without;  // no every: the back-off's initial delay
  without.backoff.initial = 7s;
  CHECK(regular_next(without, claimed, now) == Next{.in = 7s, .at = std::nullopt});
  JobTiming on_demand;
  on_demand.on_demand = true;
  CHECK(regular_next(on_demand, claimed, now).at == never);
  JobTiming daily;
  daily.schedule = jobrepo::CronSchedule("0 3 * * *");
  CHECK(regular_next(daily, claimed, now).at == claimed - 10h + 27h);  // 03:00 the next day
}

TEST_CASE("policy: a failure is retried after the back-off - after max_attempts it waits or gives up") {
  const auto now = claimed + 1min;
  // No limit: the back-off, attempt after attempt.
  auto retry = plan_retry(interval(1h), 3, claimed, now, 1.0);
  CHECK(retry.next == Next{.in = 4s, .at = std::nullopt});
  CHECK(retry.how == "retry");
  CHECK(!retry.gave_up);
  // max_attempts 3: attempts 1 and 2 retry, attempt 3 waits for its regular time.
  CHECK(plan_retry(interval(1h, 3), 2, claimed, now, 1.0).next == Next{.in = 2s, .at = std::nullopt});
  retry = plan_retry(interval(1h, 3), 3, claimed, now, 1.0);
  CHECK(retry.next == Next{.in = 1h, .at = std::nullopt});
  CHECK(retry.how == "attempt 3 of 3; next at its regular time");
  // The next round starts over: attempt 4 is the first of round 2.
  CHECK(plan_retry(interval(1h, 3), 4, claimed, now, 1.0).next == Next{.in = 1s, .at = std::nullopt});
  // give_up: attempt 3 of 3 makes it due never.
  retry = plan_retry(interval(1h, 3, true), 3, claimed, now, 1.0);
  CHECK(retry.next == Next{.in = std::nullopt, .at = never});
  CHECK(retry.gave_up);
  CHECK(retry.how == "attempt 3 of 3; gave up (run-now retries it)");
  // An on-demand job always gives up after max_attempts, and retries before.
  JobTiming on_demand = interval(1h, 2);
  on_demand.every.reset();
  on_demand.on_demand = true;
  CHECK(plan_retry(on_demand, 1, claimed, now, 1.0).next == Next{.in = 1s, .at = std::nullopt});
  CHECK(plan_retry(on_demand, 2, claimed, now, 1.0).gave_up);
  // A calendar job retries, but never later than its next fire time.
  JobTiming every_minute = interval(1h);
  every_minute.every.reset();
  every_minute.schedule = jobrepo::CronSchedule("* * * * *");
  every_minute.backoff.initial = 5min;
  every_minute.backoff.max = 5min;
  CHECK(plan_retry(every_minute, 1, claimed + 30s, claimed + 40s, 1.0).next.at == claimed + 1min);
}

TEST_CASE("policy: what a run's end means, by why it was cancelled and how its handler ended") {
  // reason, returned normally, overran its grace -> verdict
  const std::vector<std::tuple<CancelReason, bool, bool, Verdict>> table = {
      {CancelReason::none, true, false, Verdict::completed},
      {CancelReason::none, false, false, Verdict::failed},
      {CancelReason::deadline, true, false, Verdict::timed_out},
      {CancelReason::deadline, false, true, Verdict::timed_out},
      {CancelReason::fenced, true, false, Verdict::completed},
      {CancelReason::fenced, false, false, Verdict::fenced},
      {CancelReason::fenced, true, true, Verdict::fenced_late},
      {CancelReason::fenced, false, true, Verdict::fenced_late},
      {CancelReason::stopping, true, false, Verdict::completed},
      {CancelReason::stopping, false, false, Verdict::stopped},
      {CancelReason::stopping, false, true, Verdict::stopped},
      {CancelReason::operator_request, true, false, Verdict::operator_cancel},
      {CancelReason::operator_request, false, true, Verdict::operator_cancel},
      {CancelReason::interrupted, true, false, Verdict::ended_elsewhere},
      {CancelReason::interrupted, false, true, Verdict::ended_elsewhere},
  };
  for (const auto& [reason, returned, overran, expected] : table) {
    INFO(jobrepo::to_string(reason) << ", returned " << returned << ", overran " << overran);
    CHECK(judge(reason, returned, overran) == expected);
  }
}

TEST_CASE("policy: the fence rule's numbers") {
  jobrepo::SchedulerOptions o;
  o.interrupt_threshold = 30s;
  o.monitor_interval = 1s;
  o.grace = 5s;
  CHECK(fence_after(o) == 22500ms);
  CHECK(fence_check_period(o) == 100ms);
  CHECK(fenced_run_ends_after(o) == 22500ms + 100ms + 5s + 100ms);
  o.monitor_interval = 100ms;
  CHECK(fence_check_period(o) == 50ms);
  CHECK(duration_text(22500ms) == "22.5s");
  CHECK(duration_text(1500us) == "1500us");
  CHECK(seconds_text(1249ms) == "1.2s");
}
