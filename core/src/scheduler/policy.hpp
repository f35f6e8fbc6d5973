// Internal to core: the Scheduler's rules that need no clock, thread or
// store, as plain functions (table-tested in tests/unit/policy_tests.cpp):
// the fence rule's numbers, back-off, when a job runs next, and what a run's
// outcome is.
#pragma once

#include <jobrepo/cron.hpp>
#include <jobrepo/repository.hpp>
#include <jobrepo/scheduler.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace jobrepo::scheduling {

using std::chrono::microseconds;

// "1.2s" (tenths of a second).
std::string seconds_text(std::chrono::milliseconds ms);
// A duration as the config and docs write it: "250ms", "4s", "22.5s", "1500us".
std::string duration_text(microseconds d);

// The fence rule's parts (see SchedulerOptions::grace): a run is fenced
// fence_after its last successful heartbeat, checked every
// fence_check_period; its work may live until fenced_run_ends_after.
microseconds fence_after(const SchedulerOptions& options);
microseconds fence_check_period(const SchedulerOptions& options);
microseconds fenced_run_ends_after(const SchedulerOptions& options);

// How long the writer's store call (the outcomes of ended runs) may run
// before it is reported as a stall: max(1 s, monitor_interval).
microseconds write_stall_after(const SchedulerOptions& options);

// The delay before retry number `failures` (1: after the first failure):
// initial x multiplier^(failures-1), at most max, times `spread` (a number
// in [1 - jitter, 1 + jitter]), at most max_offset.
microseconds backoff_delay(const BackoffOptions& backoff, std::int64_t failures, double spread);

// How a job is scheduled, as the Scheduler knows it from its registration.
struct JobTiming {
  std::optional<CronSchedule> schedule{};
  Misfire misfire = Misfire::run_once;
  std::optional<microseconds> every{};  // the regular interval, when it has one
  BackoffOptions backoff{};
  bool on_demand = false;  // due only when run_now asks
};

// When a run of a job with a calendar schedule makes the job due next: the
// first fire time after the run's start (`claimed`, the claim's database
// time: fire times missed while it ran, or while no server could run the
// job, make one run at once), or, with Misfire::skip, the first one still to
// come after `now`. Past what a Timestamp holds: latest_time.
Timestamp next_fire(const CronSchedule& schedule, Misfire misfire, Timestamp claimed, Timestamp now);

// When the job runs next, as a Repository update takes it: in a duration
// from the store's now, or at a time (`never` for "only when asked").
struct Next {
  std::optional<microseconds> in{};
  std::optional<Timestamp> at{};
  friend bool operator==(const Next&, const Next&) = default;
};

// After a run that completed with the handler's answer `answer` (the time
// to the next run, ignored for calendar and on-demand jobs).
Next after_completion(const JobTiming& job, microseconds answer, Timestamp claimed, Timestamp now);

// After a run that ended without the handler's answer (an operator's
// cancel): the calendar schedule, the regular interval, on demand: never;
// else the back-off's initial delay.
Next regular_next(const JobTiming& job, Timestamp claimed, Timestamp now);

// After a failed attempt number `attempt` (Run::attempt): a retry after the
// back-off (a calendar job: never later than its next fire time); after
// max_attempts attempts in a row, the job's next regular time, or never
// when it gives up (BackoffOptions::give_up, and always for an on-demand
// job). `delay` is from `now`; `how` says which for people: "retry",
// "attempt 3 of 3; next at its regular time", "attempt 3 of 3; gave up
// (run-now retries it)".
struct Retry {
  Next next{};
  microseconds delay{0};
  std::string how{};
  bool gave_up = false;
};
Retry plan_retry(const JobTiming& job, std::int64_t attempt, Timestamp claimed, Timestamp now, double spread);

// What becomes of a run whose handler ended, from why it was cancelled
// (CancelReason::none: it was not), whether the handler returned normally
// (a duration) or threw, and whether it ended later than grace +
// kill_allowance after the cancel ("overran").
enum class Verdict {
  completed,        // returned: done
  failed,           // threw without a cancel: the job's own failure
  timed_out,        // its timeout passed: failed "timed out after D", whatever it did
  fenced_late,      // fenced and ended only after its grace: failed, a peer may have run the job
  fenced,           // fenced and threw within its grace: interrupted, due at once
  stopped,          // its server stopped and it threw: interrupted, due at once
  operator_cancel,  // an operator cancelled it: interrupted, the job keeps its schedule
  ended_elsewhere,  // the run was final or gone in the store: nothing to store but when its work ended
};
Verdict judge(CancelReason reason, bool returned, bool overran);

}  // namespace jobrepo::scheduling
