// The workers: each takes a claimed run from the queue, runs its handler,
// and hands what to store to the writer. What a run's end means is
// scheduling::judge() (policy.cpp).
#include "state.hpp"

#include <algorithm>

namespace jobrepo {

using scheduling::duration_text;
using scheduling::seconds_text;
using scheduling::Verdict;
using std::chrono::microseconds;

void Scheduler::State::worker_loop() {
  for (;;) {
    const auto local = queue.pop();
    if (!local) return;
    std::optional<Outcome> outcome;
    if (local->cancelled()) {
      emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(),
           std::string(to_string(local->cancel_reason())) + " before it started");
      outcome = unstarted(local);
    } else {
      outcome = execute(local);
    }
    executing.returned(*local);
    if (outcome) {
      outcomes.push(std::move(*outcome));
    } else {
      executing.remove(local->run_id());
    }
    queue.finished(local->job_name());  // a run of the same job may wait for this one
    wake_claimer();                     // a place is free
  }
}

// The update that applies `next` (when the job runs next) to a run's end.
namespace {

void set_next(RunUpdate& update, const scheduling::Next& next) {
  update.next_run_in = next.in;
  update.next_run_at = next.at;
}

}  // namespace

std::optional<Scheduler::State::Outcome> Scheduler::State::unstarted(const std::shared_ptr<LocalRun>& local) {
  const auto reason = local->cancel_reason();
  if (reason == CancelReason::interrupted) return std::nullopt;
  RunUpdate update{.run_id = local->run_id(), .status = Status::interrupted};
  if (reason == CancelReason::operator_request) {
    update.message = "cancelled by operator";
    set_next(update, scheduling::regular_next(local->timing(), local->run().create_time, database_clock.now()));
  } else if (reason == CancelReason::fenced) {
    update.message = "fenced before it started: no heartbeat reached the database";
  } else {
    update.message = "its server stopped before it started";
  }
  std::string detail = *update.message;
  return Outcome{local, std::move(update), std::move(detail), false, microseconds(0), database_clock.now()};
}

std::optional<Scheduler::State::Outcome> Scheduler::State::execute(const std::shared_ptr<LocalRun>& local) {
  const std::string& name = local->job_name();
  emit(SchedulerEvent::Kind::started, name, local->run_id(), "");
  const auto started = now();
  std::optional<microseconds> answer;
  std::string failure;
  try {
    answer = local->handler().run(*local);
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  executing.returned(*local);  // no more heartbeats, fences or watchdog for it
  const auto returned_at = now();
  // Past its timeout before the fence loop saw it (or with no fence loop:
  // run_due()): timed out all the same.
  if (!local->cancelled() && local->deadline() <= returned_at) local->cancel(CancelReason::deadline);
  const auto work_end = database_clock.now();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(returned_at - started);
  const auto reason = local->cancel_reason();
  const auto late_by = std::chrono::duration_cast<std::chrono::milliseconds>(returned_at - local->cancelled_at());
  const bool overran = reason != CancelReason::none && late_by > options.grace + kill_allowance;
  const auto verdict = scheduling::judge(reason, answer.has_value(), overran);
  if (verdict == Verdict::ended_elsewhere) {
    emit(SchedulerEvent::Kind::cancelled, name, local->run_id(), std::string(to_string(reason)));
    note_work_end(*local, work_end);
    return std::nullopt;
  }
  RunUpdate update{.run_id = local->run_id()};
  // Progress reported since the last heartbeat is stored with the outcome,
  // so that a finished run shows its final counts.
  if (const auto [completed, total] = local->counts(); completed != 0 || total != 0) {
    update.completed_count = completed;
    update.total_count = total;
  }
  const auto& timing = local->timing();
  const auto claimed = local->run().create_time;
  const auto database_now = database_clock.now();
  const auto outcome = [&](std::string detail) {
    return Outcome{local, std::move(update), std::move(detail), false, took, work_end};
  };
  const auto fail = [&](std::string message, const std::string& note = {}) {
    update.status = Status::failed;
    update.message = message;
    const auto retry =
        scheduling::plan_retry(timing, local->run().attempt, claimed, database_now, spread(timing.backoff));
    set_next(update, retry.next);
    // A job due `never` (it gave up, or its regular time is never) is due in
    // no duration worth showing.
    if (retry.next.at && *retry.next.at >= never) return outcome(message + note + "; " + retry.how);
    return outcome(message + note + "; " + (retry.how == "retry" ? "retry" : retry.how + ",") + " in " +
                   duration_text(retry.delay));
  };
  switch (verdict) {
    case Verdict::completed:
      update.status = Status::completed;
      set_next(update, scheduling::after_completion(timing, *answer, claimed, database_now));
      return outcome("in " + seconds_text(took));
    case Verdict::failed: return fail(failure);
    case Verdict::timed_out:
      return fail("timed out after " + duration_text(local->timeout()),
                  overran ? " (the handler returned " + seconds_text(late_by) + " after it)" : std::string());
    case Verdict::fenced_late:
      return fail("still running " + seconds_text(late_by) +
                  " after it was fenced (no heartbeat reached the database); another server may have run the job "
                  "meanwhile");
    case Verdict::operator_cancel:
      // Ends interrupted, whatever the handler did; the job keeps its schedule
      // (the handler's answer when it gave one).
      update.status = Status::interrupted;
      update.message = "cancelled by operator";
      if (answer && !timing.schedule && !timing.on_demand) {
        set_next(update, scheduling::after_completion(timing, *answer, claimed, database_now));
      } else {
        set_next(update, scheduling::regular_next(timing, claimed, database_now));
      }
      return outcome("cancelled by operator after " + seconds_text(took));
    case Verdict::fenced:
    case Verdict::stopped:
      // The run ends without a result, its job due at once.
      update.status = Status::interrupted;
      update.message = verdict == Verdict::fenced ? "fenced: no heartbeat reached the database for " +
                                                        duration_text(scheduling::fence_after(options))
                                                  : "its server stopped before the run ended";
      emit(SchedulerEvent::Kind::cancelled, name, local->run_id(), std::string(to_string(reason)));
      return outcome(*update.message);
    case Verdict::ended_elsewhere: break;
  }
  return std::nullopt;
}

// Records when the work of a run that was ended elsewhere ended (a peer or an
// operator ended it while the handler ran): jobctl audit shows it.
void Scheduler::State::note_work_end(const LocalRun& local, Timestamp work_end) noexcept {
  try {
    repository().record_work_end(local.run_id(), work_end);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::record_not_found) return;  // deleted with its job
    emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(), std::string("record_work_end: ") + e.what(), {},
         e.code());
  } catch (const std::exception& e) {
    emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(), std::string("record_work_end: ") + e.what());
  } catch (...) {
  }
}

}  // namespace jobrepo
