#include "policy.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace jobrepo {

namespace scheduling {

std::string seconds_text(std::chrono::milliseconds ms) {
  const auto tenths = (ms.count() + 50) / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

std::string duration_text(microseconds d) {
  const auto us = d.count();
  // The magnitude in unsigned arithmetic: -us overflows for microseconds::min().
  const auto magnitude = us < 0 ? 0 - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  if (us % 1000 != 0 && magnitude < 1000000) return std::to_string(us) + "us";
  if (magnitude < 1000000) return std::to_string(us / 1000) + "ms";
  std::string text = (us < 0 ? "-" : "") + std::to_string(magnitude / 1000000);
  if (auto fraction = magnitude % 1000000; fraction != 0) {
    std::string digits = std::to_string(1000000 + fraction).substr(1);
    digits.erase(digits.find_last_not_of('0') + 1);
    text += "." + digits;
  }
  return text + "s";
}

microseconds fence_after(const SchedulerOptions& o) { return o.interrupt_threshold - o.interrupt_threshold / 4; }

microseconds fence_check_period(const SchedulerOptions& o) {
  return std::min<microseconds>(o.monitor_interval / 2, std::chrono::milliseconds(100));
}

microseconds fenced_run_ends_after(const SchedulerOptions& o) {
  return fence_after(o) + fence_check_period(o) + o.grace + kill_allowance;
}

microseconds write_stall_after(const SchedulerOptions& o) {
  return std::max<microseconds>(std::chrono::seconds(1), o.monitor_interval);
}

microseconds backoff_delay(const BackoffOptions& b, std::int64_t failures, double spread) {
  double delay = static_cast<double>(b.initial.count());
  for (std::int64_t i = 1; i < failures && delay < static_cast<double>(b.max.count()); ++i) delay *= b.multiplier;
  delay = std::min(delay, static_cast<double>(b.max.count())) * spread;
  delay = std::min(delay, static_cast<double>(max_offset.count()));
  return microseconds(static_cast<std::int64_t>(delay));
}

Timestamp next_fire(const CronSchedule& schedule, Misfire misfire, Timestamp claimed, Timestamp now) {
  const auto after = misfire == Misfire::skip ? std::max(claimed, now) : claimed;
  return std::min(schedule.next_after(after).value_or(latest_time), latest_time);
}

namespace {

// A duration the store takes: within max_offset, microseconds::max() (and
// anything past 100 years ahead) meaning never.
Next in_or_never(microseconds d) {
  if (d >= max_offset) return {.in = std::nullopt, .at = never};
  return {.in = std::max(d, -max_offset), .at = std::nullopt};
}

}  // namespace

Next after_completion(const JobTiming& job, microseconds answer, Timestamp claimed, Timestamp now) {
  if (job.on_demand) return {.in = std::nullopt, .at = never};
  if (job.schedule) return {.in = std::nullopt, .at = next_fire(*job.schedule, job.misfire, claimed, now)};
  return in_or_never(answer);
}

Next regular_next(const JobTiming& job, Timestamp claimed, Timestamp now) {
  if (job.on_demand) return {.in = std::nullopt, .at = never};
  if (job.schedule) {
    return {.in = std::nullopt, .at = std::max(next_fire(*job.schedule, job.misfire, claimed, now), earliest_time)};
  }
  return in_or_never(job.every.value_or(job.backoff.initial));
}

Retry plan_retry(const JobTiming& job, std::int64_t attempt, Timestamp claimed, Timestamp now, double spread) {
  const auto& b = job.backoff;
  attempt = std::max<std::int64_t>(attempt, 1);
  // Attempts count in rounds of max_attempts.
  const std::int64_t in_round = b.max_attempts > 0 ? (attempt - 1) % b.max_attempts + 1 : attempt;
  const auto until = [&](Timestamp at) { return std::chrono::duration_cast<microseconds>(at - now); };
  Retry retry;
  if (b.max_attempts > 0 && in_round == b.max_attempts) {
    const std::string attempts = "attempt " + std::to_string(in_round) + " of " + std::to_string(b.max_attempts);
    if (job.on_demand || b.give_up) {
      retry.next = {.in = std::nullopt, .at = never};
      retry.delay = until(never);
      retry.how = attempts + "; gave up (run-now retries it)";
      retry.gave_up = true;
      return retry;
    }
    retry.how = attempts + "; next at its regular time";
    if (job.schedule) {
      const auto at = std::max(next_fire(*job.schedule, job.misfire, claimed, now), earliest_time);
      retry.next = {.in = std::nullopt, .at = at};
      retry.delay = until(at);
      return retry;
    }
    retry.next = in_or_never(job.every.value_or(b.max));
    retry.delay = retry.next.in ? *retry.next.in : until(never);
    return retry;
  }
  const auto delay = backoff_delay(b, in_round, spread);
  retry.how = "retry";
  if (!job.schedule) {
    retry.next = {.in = delay, .at = std::nullopt};
    retry.delay = delay;
    return retry;
  }
  const auto at = std::max(std::min(now + delay, next_fire(*job.schedule, job.misfire, claimed, now)), earliest_time);
  retry.next = {.in = std::nullopt, .at = at};
  retry.delay = until(at);
  return retry;
}

Verdict judge(CancelReason reason, bool returned, bool overran) {
  switch (reason) {
    case CancelReason::interrupted: return Verdict::ended_elsewhere;
    case CancelReason::operator_request: return Verdict::operator_cancel;
    case CancelReason::deadline: return Verdict::timed_out;
    case CancelReason::fenced:
      if (overran) return Verdict::fenced_late;
      return returned ? Verdict::completed : Verdict::fenced;
    case CancelReason::stopping: return returned ? Verdict::completed : Verdict::stopped;
    case CancelReason::none: break;
  }
  return returned ? Verdict::completed : Verdict::failed;
}

}  // namespace scheduling

using scheduling::duration_text;
using scheduling::fence_after;
using scheduling::fence_check_period;
using scheduling::fenced_run_ends_after;

std::string backoff_problem(const BackoffOptions& b, std::string_view prefix) {
  const std::string p(prefix);
  if (b.initial.count() < 0 || b.initial > max_offset) {
    return p + "initial " + duration_text(b.initial) + " is not between 0 and 100 years";
  }
  if (b.max < b.initial || b.max > max_offset) {
    return p + "max " + duration_text(b.max) + " is not between " + p + "initial and 100 years";
  }
  if (!(b.multiplier >= 1.0 && b.multiplier <= 1000.0)) {
    return p + "multiplier " + std::to_string(b.multiplier) + " is not between 1 and 1000";
  }
  if (!(b.jitter >= 0.0 && b.jitter < 1.0)) return p + "jitter " + std::to_string(b.jitter) + " is not in [0, 1)";
  if (b.max_attempts < 0) return p + "max_attempts " + std::to_string(b.max_attempts) + " is negative";
  // Without a limit there is no last attempt to give up after.
  if (b.give_up && b.max_attempts == 0) {
    return p + "give_up needs max_attempts (the failures in a row after which the job gives up)";
  }
  return {};
}

std::string scheduler_options_problem(const SchedulerOptions& o) {
  if (o.worker_threads < 1) return "worker_threads " + std::to_string(o.worker_threads) + " is less than 1";
  for (const auto& [name, value] :
       {std::pair{"claim_interval", o.claim_interval}, std::pair{"monitor_interval", o.monitor_interval},
        std::pair{"interrupt_threshold", o.interrupt_threshold}}) {
    if (value.count() <= 0) return std::string(name) + " " + duration_text(value) + " must be positive";
    if (value > max_offset) return std::string(name) + " " + duration_text(value) + " is more than 100 years";
  }
  if (o.claim_limit < 0) return "claim_limit " + std::to_string(o.claim_limit) + " is negative";
  if (o.local_queue < 0) return "local_queue " + std::to_string(o.local_queue) + " is negative";
  if (o.stop_timeout.count() < 0) return "stop_timeout " + duration_text(o.stop_timeout) + " is negative";
  if (o.stop_timeout > max_offset && o.stop_timeout != std::chrono::microseconds::max()) {
    return "stop_timeout " + duration_text(o.stop_timeout) + " is more than 100 years";
  }
  if (auto problem = backoff_problem(o.backoff); !problem.empty()) return problem;
  if (o.grace.count() < 0) return "grace " + duration_text(o.grace) + " must not be negative";
  if (o.grace > max_offset) return "grace " + duration_text(o.grace) + " is more than 100 years";
  if (o.monitor_interval > o.interrupt_threshold / 4) {
    return "monitor_interval " + duration_text(o.monitor_interval) +
           " must be at most a quarter of interrupt_threshold " + duration_text(o.interrupt_threshold);
  }
  if (const auto ends = fenced_run_ends_after(o); ends >= o.interrupt_threshold) {
    // The largest grace that fits, and the threshold this grace needs.
    const auto room = o.interrupt_threshold - fence_after(o) - fence_check_period(o) - kill_allowance;
    const auto needed = 4 * (fence_check_period(o) + o.grace + kill_allowance);
    return "grace " + duration_text(o.grace) + " does not fit in interrupt_threshold " +
           duration_text(o.interrupt_threshold) + ": a fenced run's processes may live until " + duration_text(ends) +
           " after its last heartbeat (fenced at " + duration_text(fence_after(o)) +
           ", 3/4 of the threshold, checked every " + duration_text(fence_check_period(o)) + ", + grace " +
           duration_text(o.grace) + " + " + duration_text(kill_allowance) +
           " to end), but a peer may take its job at " + duration_text(o.interrupt_threshold) + "; make " +
           (room.count() > 0 ? "grace less than " + duration_text(room) + " or " : std::string()) +
           "interrupt_threshold more than " + duration_text(needed);
  }
  return {};
}

}  // namespace jobrepo
