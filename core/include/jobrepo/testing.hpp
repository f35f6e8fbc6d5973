// jobrepo: FakeJobContext, the JobContext a unit test hands to a job's code
// to run it without a Scheduler, a store or time passing.
//
//   jobrepo::FakeJobContext ctx("report");
//   ctx.cancel_after(std::chrono::minutes(2));       // a stop during the 3rd minute
//   auto next = handler->run(ctx);                    // sleep_for does not sleep
//   REQUIRE(ctx.slept() == std::chrono::minutes(2));
//
// The handler sees what a scheduler would give it: sleep_for returns false
// once cancelled, throw_if_cancelled throws Cancelled with the reason, and
// report_progress refuses what the scheduler refuses (progress_problem);
// payload() is what set_payload gave (a run_now's arguments). To
// test the job with its schedule, retries and timeout, run it in a Scheduler
// on a ManualRuntime instead (docs/scheduler.md, "Testing your application").
//
// Thread-safety: every method may be called from any thread (a test may
// cancel while the handler runs on another), except set_payload: call it
// before the handler runs.
#pragma once

#include <jobrepo/scheduler.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace jobrepo {

class FakeJobContext final : public JobContext {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  using Progress = std::pair<std::int64_t, std::int64_t>;  // completed, total

  // A run of `job_name` with the id `run_id`: not cancelled, no deadline.
  explicit FakeJobContext(std::string job_name = "job", std::string run_id = "fake-run");
  FakeJobContext(const FakeJobContext&) = delete;
  FakeJobContext& operator=(const FakeJobContext&) = delete;
  ~FakeJobContext() override = default;

  const std::string& run_id() const override { return run_id_; }
  const std::string& job_name() const override { return job_name_; }
  // SteadyTime::max() unless set_deadline / set_fence_deadline said otherwise.
  SteadyTime deadline() const override;
  SteadyTime fence_deadline() const override;
  std::stop_token stop_token() const override { return stop_.get_token(); }
  CancelReason cancel_reason() const override;
  // Does not sleep: adds `duration` to slept() and returns true; returns
  // false at once when cancelled. With cancel_after(after, reason), a sleep
  // that would take slept() to `after` or past it stops there: slept()
  // becomes `after`, the context is cancelled with `reason`, and it returns
  // false. Throws invalid_parameter for a negative duration.
  bool sleep_for(std::chrono::microseconds duration) const override;
  // Keeps the counts (progress(), progress_reports()). Throws
  // invalid_parameter as the scheduler does (progress_problem).
  void report_progress(std::int64_t completed, std::int64_t total) override;
  // The run's arguments: empty unless set_payload gave some.
  const std::optional<std::string>& payload() const override { return payload_; }

  // What the test does to the run.
  //
  // Asks the handler to stop, as the scheduler would for `reason` (not
  // none). The first reason stays.
  void cancel(CancelReason reason = CancelReason::stopping);
  // Cancels with `reason` once the handler has slept `after` in all.
  void cancel_after(std::chrono::microseconds after, CancelReason reason = CancelReason::deadline);
  void set_deadline(SteadyTime deadline);
  void set_fence_deadline(SteadyTime fence_deadline);
  // Makes it a run with arguments, as Scheduler::run_now(name, payload)
  // would (empty: without). Throws invalid_parameter for a payload that
  // run_now refuses (payload_problem, text.hpp). REQUIRES: the handler is
  // not running (payload() hands out a reference).
  void set_payload(std::optional<std::string> payload);

  // What the handler did.
  //
  // How long it slept in all (sleep_for).
  std::chrono::microseconds slept() const;
  // The last counts it reported; none before the first.
  std::optional<Progress> progress() const;
  // Every report, in order.
  std::vector<Progress> progress_reports() const;

 private:
  void cancel_locked(CancelReason reason) const;

  const std::string job_name_;
  const std::string run_id_;
  mutable std::mutex mutex_;
  mutable std::stop_source stop_;
  mutable CancelReason reason_ = CancelReason::none;
  mutable std::chrono::microseconds slept_{0};
  std::optional<std::chrono::microseconds> cancel_after_;
  CancelReason cancel_after_reason_ = CancelReason::deadline;
  SteadyTime deadline_ = SteadyTime::max();
  SteadyTime fence_deadline_ = SteadyTime::max();
  std::vector<Progress> progress_;
  std::optional<std::string> payload_;
};

}  // namespace jobrepo
