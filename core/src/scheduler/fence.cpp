// The fence loop: timeouts, fences and the watchdog. It does no I/O, so a
// hung database cannot delay it; it wakes exactly when the next of its
// runs' moments comes (at most every fence_check_period).
#include "state.hpp"

#include <jobrepo/text.hpp>

#include <algorithm>

#include <sys/syscall.h>
#include <unistd.h>

namespace jobrepo {

using scheduling::duration_text;
using scheduling::seconds_text;
using std::chrono::microseconds;

void Scheduler::State::fence_loop() {
  const auto period = std::chrono::duration_cast<SteadyTime::duration>(scheduling::fence_check_period(options));
  const auto fence = std::chrono::duration_cast<SteadyTime::duration>(scheduling::fence_after(options));
  // A handler still running this long after its run's last successful
  // heartbeat may meet a peer's run of the job (the fence rule).
  const auto lapse = std::chrono::duration_cast<SteadyTime::duration>(scheduling::fenced_run_ends_after(options));
  for (;;) {
    const auto now = this->now();
    fence_tick.store(ticks(now));
    auto next = now + period;
    for (const auto& local : executing.live()) {
      if (!local->cancelled() && local->deadline() <= now) local->cancel(CancelReason::deadline);
      if (local->cancel_reason() == CancelReason::deadline && !local->deadline_reported) {
        local->deadline_reported = true;
        emit(SchedulerEvent::Kind::error, local->job_name(), local->run_id(),
             "timed out after " + duration_text(local->timeout()) +
                 ": the handler is cancelled, and its run fails when it returns");
      }
      if (!local->cancelled() && now - local->last_heartbeat() >= fence) {
        local->cancel(CancelReason::fenced);
        emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(),
             "fenced: no successful heartbeat for 3/4 of the interrupt threshold");
      }
      const auto lease_end = local->last_heartbeat() + lapse;
      if (local->started() && now >= lease_end && !local->late_reported && !local->returned()) {
        overrun(*local, now - local->last_heartbeat());
      }
      // Wake exactly when the next of this run's moments comes.
      if (!local->cancelled()) next = std::min({next, local->deadline(), local->last_heartbeat() + fence});
      if (local->started() && !local->late_reported) next = std::min(next, lease_end);
    }
    check_write_stall(now);
    if (loops_signal.wait(std::max(next, now))) return;
  }
}

// The writer's store call has run past write_stall_after: said once per
// call (the writer says when it returns). No outcome of this server is
// stored meanwhile; handlers go on, and their outcomes wait.
void Scheduler::State::check_write_stall(SteadyTime now) noexcept {
  const auto began = write_began.load();
  if (began == 0 || began == stall_reported_for) return;
  const auto running = now - SteadyTime(SteadyTime::duration(began));
  if (running < std::chrono::duration_cast<SteadyTime::duration>(scheduling::write_stall_after(options))) return;
  stall_reported_for = began;
  write_stalls.fetch_add(1);
  write_stalled.store(began);
  emit(SchedulerEvent::Kind::warning, "", "",
       "the writer's store call has not returned for " +
           seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(running)) + " (" +
           std::to_string(write_rows.load()) + " outcomes): no outcome of this server is stored meanwhile");
}

// A handler still runs although its run's lease lapsed (fence_overrun).
void Scheduler::State::overrun(LocalRun& local, SteadyTime::duration since) noexcept {
  const auto since_us = std::chrono::duration_cast<microseconds>(since);
  if (options.fence_overrun == FenceOverrun::end_process) {
    try {
      const std::string line = "jobrepo: Scheduler " + quote_text(server_id) +
                               ": ending the process (SchedulerOptions::fence_overrun): the handler of job " +
                               quote_text(local.job_name()) + " run " + local.run_id() + " still runs " +
                               duration_text(since_us) +
                               " after the run's last successful heartbeat, and another server may take the job " +
                               duration_text(options.interrupt_threshold) + " after it\n";
      (void)!::write(STDERR_FILENO, line.data(), line.size());
    } catch (...) {
      constexpr char line[] = "jobrepo: Scheduler: ending the process: a handler outlived its run's lease\n";
      (void)!::write(STDERR_FILENO, line, sizeof line - 1);
    }
    // exit_group directly: no exit handler, no sanitizer's interceptor,
    // nothing between here and the end of every thread.
    ::syscall(SYS_exit_group, 70);
    ::_exit(70);
  }
  local.late_reported = true;
  emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(),
       "the handler still runs " + duration_text(since_us) + " after the run's last successful heartbeat (" +
           std::string(to_string(local.cancel_reason())) + ", grace " + duration_text(options.grace) +
           "): another server may run the job at the same time");
}

}  // namespace jobrepo
