// The writer: stores the outcomes of ended runs, the outcomes that ended
// meanwhile in one update_runs call (one commit), so that the cost of a
// commit is shared when runs end quickly; at most max_write_batch per call,
// so that no call grows with a backlog (a call that takes longer lets more
// outcomes wait for the next, which took longer still: a PostgreSQL
// Scheduler stored nothing for minutes that way). A transient error (busy,
// unavailable) never drops an outcome: it is tried again after a pause that
// grows to monitor_interval, until it is stored, its run is final or gone in
// the store (a peer interrupted it meanwhile), or the end of a stop gives up.
#include "state.hpp"

#include <algorithm>

namespace jobrepo {

using std::chrono::microseconds;

namespace {

bool transient(ErrorCode code) { return code == ErrorCode::busy || code == ErrorCode::unavailable; }

constexpr std::size_t max_write_batch = 1000;

}  // namespace

void Scheduler::State::writer_loop() {
  Repository repo = repository();
  std::vector<Outcome> retry;
  int failed_rounds = 0;
  for (bool last = false; !last;) {
    const auto pause = std::min<microseconds>(std::chrono::milliseconds(10) * (1 << std::min(failed_rounds, 10)),
                                              options.monitor_interval);
    auto fresh = outcomes.take(retry.empty() ? SteadyTime::max() : now() + pause);
    last = outcomes.closed();
    std::vector<Outcome> batch = std::move(retry);
    retry.clear();
    std::move(fresh.begin(), fresh.end(), std::back_inserter(batch));
    for (std::size_t at = 0; at < batch.size(); at += max_write_batch) {
      const auto end = batch.begin() + static_cast<std::ptrdiff_t>(std::min(batch.size(), at + max_write_batch));
      auto again =
          store_outcomes(repo,
                         std::vector<Outcome>(std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(at)),
                                              std::make_move_iterator(end)),
                         last);
      std::move(again.begin(), again.end(), std::back_inserter(retry));
    }
    if (batch.empty()) continue;
    failed_rounds = retry.empty() ? 0 : failed_rounds + 1;
  }
}

std::vector<Scheduler::State::Outcome> Scheduler::State::store_outcomes(Repository& repo, std::vector<Outcome> batch,
                                                                        bool last) {
  std::vector<RunUpdate> updates;
  updates.reserve(batch.size());
  for (const auto& outcome : batch) updates.push_back(outcome.update);
  std::vector<RunUpdateResult> results(batch.size());
  const auto began = now();
  write_rows.store(batch.size());
  write_began.store(ticks(began));
  try {
    results = repo.update_runs(updates);
  } catch (const Error& e) {
    for (auto& result : results) result.error = e;
  } catch (const std::exception& e) {
    for (auto& result : results) result.error = Error(ErrorCode::internal, std::string("update_runs: ") + e.what());
  } catch (...) {
    for (auto& result : results) result.error = Error(ErrorCode::internal, "update_runs: unknown exception");
  }
  const auto received = now();
  // The call ended (every exception is caught above): the fence loop stops
  // watching it, and a stall it reported is said to be over.
  write_began.store(0);
  if (write_stalled.exchange(0) == ticks(began)) {
    emit(SchedulerEvent::Kind::warning, "", "",
         "the writer's store call returned after " +
             scheduling::seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(received - began)) + " (" +
             std::to_string(batch.size()) + " outcomes): outcomes are stored again");
  }
  std::vector<Outcome> retry;
  std::vector<std::string> finished;  // leave `executing`
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& outcome = batch[i];
    const auto& name = outcome.local->job_name();
    const auto& id = outcome.local->run_id();
    const bool completed = outcome.update.status == Status::completed;
    const auto ended_kind = completed                                      ? SchedulerEvent::Kind::completed
                            : outcome.update.status == Status::interrupted ? SchedulerEvent::Kind::interrupted
                                                                           : SchedulerEvent::Kind::failed;
    if (const auto& run = results[i].run) {
      if (run->end_time) database_clock.observe(*run->end_time, received);
      std::optional<Timestamp> due = outcome.update.next_run_at;
      if (run->end_time && outcome.update.next_run_in) due = *run->end_time + *outcome.update.next_run_in;
      if (due && *due > database_clock.now()) known_due.add(*due);
      emit(scheduling::ended_event(ended_kind, outcome, run->message.value_or("")));
      finished.push_back(id);
      continue;
    }
    const Error& error = *results[i].error;
    const std::string what = std::string(completed                                      ? "complete_run: "
                                         : outcome.update.status == Status::interrupted ? "cancel_run: "
                                                                                        : "fail_run: ") +
                             error.what();
    const auto code = error.code();
    if (outcome.retried && code == ErrorCode::invalid_job_run_state && stored_before(repo, outcome)) {
      // The earlier attempt was committed, its answer lost (a connection
      // that broke after the commit): the outcome is stored.
      emit(scheduling::ended_event(ended_kind, outcome, outcome.update.message.value_or("")));
      finished.push_back(id);
      continue;
    }
    if (code == ErrorCode::invalid_job_run_state) {
      // Ended elsewhere (a peer, an operator) while the handler ran.
      note_work_end(*outcome.local, outcome.work_end);
    }
    if (transient(code) && !last) {
      if (!outcome.retried)
        emit(SchedulerEvent::Kind::error, name, id, what + "; retrying until it is stored", {}, code);
      outcome.retried = true;
      retry.push_back(std::move(outcome));
    } else if (completed && !transient(code) && code != ErrorCode::record_not_found &&
               code != ErrorCode::invalid_job_run_state) {
      // The store refused this completion itself: the run must not stay
      // running, so it fails (and the job backs off).
      emit(SchedulerEvent::Kind::error, name, id, what + "; storing the run as failed", {}, code);
      outcome.update.status = Status::failed;
      outcome.detail = "its completion could not be stored: " + std::string(error.what());
      outcome.update.message = outcome.detail;
      const auto& local = *outcome.local;
      const auto plan = scheduling::plan_retry(local.timing(), local.run().attempt, local.run().create_time,
                                               database_clock.now(), spread(local.timing().backoff));
      outcome.update.next_run_in = plan.next.in;
      outcome.update.next_run_at = plan.next.at;
      retry.push_back(std::move(outcome));
    } else {
      emit(SchedulerEvent::Kind::error, name, id, what + (last && transient(code) ? "; not stored before stop" : ""),
           {}, code);
      finished.push_back(id);
    }
  }
  if (!finished.empty()) {
    executing.remove(finished);
    wake_claimer();  // their jobs may be due again
  }
  return retry;
}

// Whether the run is final in the status this outcome gives it (only its
// owner, this server, completes or fails a run; peers only interrupt).
bool Scheduler::State::stored_before(Repository& repo, const Outcome& outcome) noexcept {
  try {
    const auto run = repo.lookup_run(outcome.local->run_id());
    return run && run->status == outcome.update.status;
  } catch (...) {
    return false;
  }
}

}  // namespace jobrepo
