// Internal to the Scheduler: one run executing (or queued) on this server,
// its JobContext, its liveness and how its job is scheduled.
#pragma once

#include "policy.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/runtime.hpp>
#include <jobrepo/scheduler.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

namespace jobrepo::scheduling {

using SteadyTime = Runtime::SteadyTime;

class LocalRun final : public JobContext {
 public:
  // `claimed`: when the claim that took it was sent (on the runtime's
  // monotonic clock): the start of its liveness.
  LocalRun(Run run, std::shared_ptr<JobHandler> handler, JobTiming timing, microseconds timeout, Runtime& runtime,
           SteadyTime claimed)
      : run_(std::move(run)),
        handler_(std::move(handler)),
        timing_(std::move(timing)),
        timeout_(timeout),
        runtime_(runtime),
        fence_after_(0),
        last_heartbeat_(claimed.time_since_epoch().count()) {}

  LocalRun(const LocalRun&) = delete;
  LocalRun& operator=(const LocalRun&) = delete;
  LocalRun(LocalRun&&) = delete;
  LocalRun& operator=(LocalRun&&) = delete;
  ~LocalRun() override = default;

  void set_fence_after(microseconds after) { fence_after_ = after; }

  const std::string& run_id() const override { return run_.private_id; }
  const std::string& job_name() const override { return run_.job_name; }
  const std::optional<std::string>& payload() const override { return run_.payload; }
  // max() while queued and for a job without a timeout.
  SteadyTime deadline() const override { return SteadyTime(SteadyTime::duration(deadline_.load())); }
  SteadyTime fence_deadline() const override { return last_heartbeat() + fence_after_; }
  std::stop_token stop_token() const override { return stop_.get_token(); }
  CancelReason cancel_reason() const override { return reason_.load(); }

  bool sleep_for(microseconds duration) const override {
    std::unique_lock lock(sleep_mutex_);
    runtime_.wait_for(lock, sleep_cv_, duration, [&] { return stop_.stop_requested(); });
    return !stop_.stop_requested();
  }

  void report_progress(std::int64_t completed, std::int64_t total) override {
    if (auto problem = progress_problem(completed, total); !problem.empty()) {
      throw Error(ErrorCode::invalid_parameter, "report_progress: run \"" + run_.private_id + "\": " + problem);
    }
    const std::lock_guard lock(counts_mutex_);
    completed_ = completed;
    total_ = total;
  }

  std::pair<std::int64_t, std::int64_t> counts() const {
    const std::lock_guard lock(counts_mutex_);
    return {completed_, total_};
  }

  // A worker starts its handler: the job's timeout counts from `now`.
  void start(SteadyTime now) {
    if (timeout_.count() > 0 && timeout_ < max_offset) deadline_.store((now + timeout_).time_since_epoch().count());
    started_.store(true);
  }
  bool started() const { return started_.load(); }
  // The handler returned (or threw): its work is over.
  void set_returned() { returned_.store(true); }
  bool returned() const { return returned_.load(); }

  // First reason wins; later requests only repeat the stop.
  void cancel(CancelReason reason) {
    CancelReason none = CancelReason::none;
    if (reason_.compare_exchange_strong(none, reason)) {
      cancelled_at_.store(runtime_.steady_now().time_since_epoch().count());
    }
    {
      const std::lock_guard lock(sleep_mutex_);
      stop_.request_stop();
    }
    runtime_.notify_all(sleep_cv_);
  }
  // When it was first cancelled (meaningful once cancelled()).
  SteadyTime cancelled_at() const { return SteadyTime(SteadyTime::duration(cancelled_at_.load())); }

  // When the last successful heartbeat was sent.
  SteadyTime last_heartbeat() const { return SteadyTime(SteadyTime::duration(last_heartbeat_.load())); }
  void heartbeat_sent_at(SteadyTime sent) { last_heartbeat_.store(sent.time_since_epoch().count()); }

  const Run& run() const { return run_; }
  JobHandler& handler() const { return *handler_; }
  const JobTiming& timing() const { return timing_; }
  microseconds timeout() const { return timeout_; }  // 0: none

  // The fence loop said that the handler outlived its lease, or its
  // timeout. Fence loop only.
  bool late_reported = false;
  bool deadline_reported = false;

 private:
  const Run run_;
  const std::shared_ptr<JobHandler> handler_;
  const JobTiming timing_;
  const microseconds timeout_;
  Runtime& runtime_;
  microseconds fence_after_;
  std::atomic<SteadyTime::rep> deadline_{SteadyTime::max().time_since_epoch().count()};
  std::atomic<SteadyTime::rep> cancelled_at_{0};
  std::atomic<SteadyTime::rep> last_heartbeat_;
  std::atomic<bool> started_{false};
  std::atomic<bool> returned_{false};
  std::stop_source stop_;
  std::atomic<CancelReason> reason_{CancelReason::none};
  mutable std::mutex sleep_mutex_;
  mutable std::condition_variable sleep_cv_;
  mutable std::mutex counts_mutex_;
  std::int64_t completed_ = 0, total_ = 0;
};

}  // namespace jobrepo::scheduling
