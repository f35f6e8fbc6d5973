#include "scheduler/policy.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/testing.hpp>
#include <jobrepo/text.hpp>

#include <string>
#include <utility>

namespace jobrepo {

FakeJobContext::FakeJobContext(std::string job_name, std::string run_id)
    : job_name_(std::move(job_name)), run_id_(std::move(run_id)) {}

FakeJobContext::SteadyTime FakeJobContext::deadline() const {
  const std::lock_guard lock(mutex_);
  return deadline_;
}

FakeJobContext::SteadyTime FakeJobContext::fence_deadline() const {
  const std::lock_guard lock(mutex_);
  return fence_deadline_;
}

CancelReason FakeJobContext::cancel_reason() const {
  const std::lock_guard lock(mutex_);
  return reason_;
}

bool FakeJobContext::sleep_for(std::chrono::microseconds duration) const {
  if (duration.count() < 0) {
    throw Error(ErrorCode::invalid_parameter,
                "sleep_for: run \"" + run_id_ + "\": duration " + scheduling::duration_text(duration) + " is negative");
  }
  const std::lock_guard lock(mutex_);
  if (reason_ != CancelReason::none) return false;
  if (cancel_after_ && duration >= *cancel_after_ - slept_) {
    slept_ = *cancel_after_;
    cancel_locked(cancel_after_reason_);
    return false;
  }
  slept_ += duration;
  return true;
}

void FakeJobContext::report_progress(std::int64_t completed, std::int64_t total) {
  if (auto problem = progress_problem(completed, total); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "report_progress: run \"" + run_id_ + "\": " + problem);
  }
  const std::lock_guard lock(mutex_);
  progress_.emplace_back(completed, total);
}

void FakeJobContext::set_payload(std::optional<std::string> payload) {
  if (payload) {
    if (auto problem = payload_problem(*payload)) {
      throw Error(problem->code, "set_payload: run \"" + run_id_ + "\": payload " + problem->message);
    }
  }
  payload_ = std::move(payload);
}

void FakeJobContext::cancel(CancelReason reason) {
  if (reason == CancelReason::none) {
    throw Error(ErrorCode::invalid_parameter, "cancel: run \"" + run_id_ + "\": the reason must not be none");
  }
  const std::lock_guard lock(mutex_);
  cancel_locked(reason);
}

void FakeJobContext::cancel_locked(CancelReason reason) const {
  if (reason_ == CancelReason::none) reason_ = reason;
  stop_.request_stop();
}

void FakeJobContext::cancel_after(std::chrono::microseconds after, CancelReason reason) {
  if (after.count() < 0 || reason == CancelReason::none) {
    throw Error(ErrorCode::invalid_parameter, "cancel_after: run \"" + run_id_ + "\": needs a duration >= 0 (got " +
                                                  scheduling::duration_text(after) + ") and a reason other than none");
  }
  const std::lock_guard lock(mutex_);
  cancel_after_ = after;
  cancel_after_reason_ = reason;
  if (slept_ >= after) cancel_locked(reason);
}

void FakeJobContext::set_deadline(SteadyTime deadline) {
  const std::lock_guard lock(mutex_);
  deadline_ = deadline;
}

void FakeJobContext::set_fence_deadline(SteadyTime fence_deadline) {
  const std::lock_guard lock(mutex_);
  fence_deadline_ = fence_deadline;
}

std::chrono::microseconds FakeJobContext::slept() const {
  const std::lock_guard lock(mutex_);
  return slept_;
}

std::optional<FakeJobContext::Progress> FakeJobContext::progress() const {
  const std::lock_guard lock(mutex_);
  if (progress_.empty()) return std::nullopt;
  return progress_.back();
}

std::vector<FakeJobContext::Progress> FakeJobContext::progress_reports() const {
  const std::lock_guard lock(mutex_);
  return progress_;
}

}  // namespace jobrepo
