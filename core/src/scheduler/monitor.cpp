// The monitor loop, every monitor_interval: one heartbeat transaction for
// the runs whose handlers run here, this server's proof of life (the lease
// on its server id, and the jobs it serves), and the runs of servers that
// stopped reporting.
#include "state.hpp"

#include <jobrepo/text.hpp>

#include <algorithm>

namespace jobrepo {

using scheduling::duration_text;

void Scheduler::State::monitor_loop() {
  Repository repo = repository();
  std::map<std::string, Observation> observed;
  for (;;) {
    monitor_tick.store(ticks(now()));
    guarded("heartbeat", [&] { heartbeat(repo); });
    guarded("record_server", [&] {
      record_server(repo);
      store_answered.store(ticks(now()));
    });
    guarded("interrupt_runs", [&] { interrupt_stale(repo, observed); });
    if (loops_signal.wait(now() + std::chrono::duration_cast<SteadyTime::duration>(options.monitor_interval))) return;
  }
}

// One transaction refreshes every run whose handler has not returned (queued
// ones too); a run that is gone or final in the store was ended elsewhere,
// and one an operator asked to cancel is cancelled here.
void Scheduler::State::heartbeat(Repository& repo) {
  const auto live = executing.live();
  if (live.empty()) return;
  std::vector<RunUpdate> updates;
  for (const auto& local : live) {
    const auto [completed, total] = local->counts();
    updates.push_back(RunUpdate{.run_id = local->run_id(), .completed_count = completed, .total_count = total});
  }
  const auto sent = now();
  const auto results = repo.update_runs(updates);  // what it throws, the monitor reports
  const auto received = now();
  for (std::size_t i = 0; i < live.size(); ++i) {
    const auto& local = live[i];
    if (const auto& run = results[i].run) {
      local->heartbeat_sent_at(sent);
      database_clock.observe(run->update_time, received);
      if (run->cancel_requested && !local->cancelled()) {
        local->cancel(CancelReason::operator_request);
        emit(SchedulerEvent::Kind::cancelled, local->job_name(), local->run_id(), "cancelled by operator");
      }
    } else if (const auto code = results[i].error->code();
               code == ErrorCode::record_not_found || code == ErrorCode::invalid_job_run_state) {
      local->cancel(CancelReason::interrupted);
    } else {
      emit(SchedulerEvent::Kind::error, local->job_name(), local->run_id(),
           std::string("heartbeat: ") + results[i].error->what(), {}, results[i].error->code());
    }
  }
}

void Scheduler::State::record_server(Repository& repo) {
  const std::lock_guard lock(record_mutex);
  int version = 0;
  auto served = served_jobs(&version);
  const bool new_set = version != recorded_version;
  const auto lease = repo.record_server(server_id, options.interrupt_threshold,
                                        {.instance = identity.first,
                                         .address = identity.second,
                                         .jobs = new_set ? std::optional(std::move(served)) : std::nullopt});
  if (!lease.held) {
    // Another instance took the id over after this one's records had
    // failed for the threshold: its runs here go on (heartbeated), but it
    // claims nothing more.
    if (!lease_lost.exchange(true)) {
      emit(SchedulerEvent::Kind::error, "", "",
           "record_server: server id " + quote_text(server_id) + " was taken over by " +
               (lease.address.empty() ? std::string("another server") : lease.address) +
               " while this server could not renew its lease: this server claims no more runs; restart it "
               "with an id of its own");
    }
    return;
  }
  database_clock.observe(lease.seen_time, now());
  if (new_set) recorded_version = version;
  if (new_set || !last_drift_check || now() - *last_drift_check >= options.interrupt_threshold) check_drift(repo);
}

// A `warning` event, once per job, when live servers serve a job of this
// server with another definition. Under record_mutex.
void Scheduler::State::check_drift(Repository& repo) {
  last_drift_check = now();
  std::map<std::string, std::string, std::less<>> mine;
  for (const auto& served : served_jobs(nullptr)) mine.emplace(served.name, served.fingerprint);
  std::map<std::string, std::vector<std::string>, std::less<>> others;  // job -> servers that differ
  for (const auto& serving : repo.list_servings()) {
    const auto found = mine.find(serving.job_name);
    if (found == mine.end() || !serving.live || serving.server_id == server_id) continue;
    if (serving.fingerprint != found->second) others[serving.job_name].push_back(serving.server_id);
  }
  // Jobs no longer registered here are forgotten.
  std::erase_if(warned_drift, [&](const std::string& name) { return mine.count(name) == 0; });
  for (const auto& [name, fingerprint] : mine) {
    const auto differ = others.find(name);
    if (differ == others.end()) {
      warned_drift.erase(name);
      continue;
    }
    if (!warned_drift.insert(name).second) continue;
    std::string servers;
    for (const auto& id : differ->second) servers += (servers.empty() ? "" : ", ") + quote_text(id);
    emit(SchedulerEvent::Kind::warning, name, "",
         "servers " + servers +
             " define this job otherwise than this server: their runs and this server's will alternate (see jobctl "
             "jobs)");
  }
}

// Interrupts the runs of servers that stopped reporting. A run is stale when
// its update_time is older than the threshold by the database's clock and
// this process has read that same update_time for the threshold on its own
// monotonic clock: a step of the database's clock (NTP) alone never makes a
// live run look stale. Runs of this server are never interrupted here: those
// whose handlers run (heartbeated), and those whose outcome waits for the
// writer (this server knows how they ended; its writer stores it, however
// long the store takes: ending them as "its server stopped reporting" lost
// that outcome). Peers interrupt them if this server goes silent.
void Scheduler::State::interrupt_stale(Repository& repo, std::map<std::string, Observation>& observed) {
  const auto runs = repo.list_runs({.status = Status::running, .limit = -1});
  const auto read_at = now();  // no update seen now can be younger
  std::set<std::string> local;
  for (const auto& run : executing.all()) local.insert(run->run_id());
  std::map<std::string, Observation> now_observed;
  std::vector<ObservedRun> stale;
  for (const auto& run : runs) {
    const auto before = observed.find(run.private_id);
    const Observation seen = before != observed.end() && before->second.update_time == run.update_time
                                 ? before->second
                                 : Observation{run.update_time, read_at};
    now_observed.emplace(run.private_id, seen);
    if (read_at - seen.since >= options.interrupt_threshold && local.count(run.private_id) == 0) {
      stale.push_back({run.private_id, run.update_time});
    }
  }
  observed = std::move(now_observed);
  if (stale.empty()) return;
  const auto interrupted = repo.interrupt_runs(
      options.interrupt_threshold,
      {.message = "its server stopped reporting (no heartbeat for " + duration_text(options.interrupt_threshold) + ")",
       .runs = std::move(stale)});
  for (const auto& run : interrupted) {
    observed.erase(run.private_id);
    emit(SchedulerEvent::Kind::interrupted_peer, run.job_name, run.private_id, "no heartbeat from " + run.server_id,
         run.message.value_or(""));
  }
  if (!interrupted.empty()) wake_claimer();
}

}  // namespace jobrepo
