// The Scheduler's lifecycle (scheduler.hpp, "Lifecycle"): start() takes the
// server id's lease and starts the loops; halt() (stop() and the destructor)
// ends them once every handler returned; run_due() runs due jobs on its
// caller's thread while the scheduler is not started.
#include "state.hpp"

#include "instance.hpp"

#include <jobrepo/text.hpp>

#include <algorithm>
#include <climits>

namespace jobrepo {

using scheduling::duration_text;
using std::chrono::microseconds;

void Scheduler::State::start() {
  SchedulerPhase before = SchedulerPhase::idle;
  {
    std::unique_lock lock(lifecycle_mutex);
    // Another start() or a stop under way: wait for its end.
    runtime.wait_until(lock, lifecycle_changed, SteadyTime::max(), [&] {
      return phase != SchedulerPhase::starting && phase != SchedulerPhase::stopping && !driving;
    });
    if (phase == SchedulerPhase::running) return;
    before = phase;
    phase = SchedulerPhase::starting;
    stop_requested = false;
    stop_begun = false;
    ++life;
  }
  const auto settle_phase = [&](SchedulerPhase to) {
    {
      const std::lock_guard lock(lifecycle_mutex);
      phase = to;
    }
    runtime.notify_all(lifecycle_changed);
  };
  try {
    // A new life: nothing of the last one is left.
    queue.reopen();
    outcomes.reopen();
    claim_signal.reset();
    loops_signal.reset();
    known_due.clear();
    lease_lost.store(false);
    {
      const std::lock_guard lock(record_mutex);
      recorded_version = -1;
      warned_drift.clear();
      last_drift_check.reset();
    }
    auto repo = repository();
    // The server id is this instance's from now on (or take_lease throws).
    const auto leftovers = take_lease(repo);
    bool stopped = false;
    {
      const std::lock_guard lock(lifecycle_mutex);
      stopped = stop_requested;
    }
    if (stopped) {
      guarded("stop", [&] { repo.remove_server(server_id, identity.first); });
      settle_phase(SchedulerPhase::stopped);
      return;
    }
    // Runs this server id left behind (a crash, or a stop whose outcomes
    // could not be stored) whose work is known to be over.
    InterruptRunsOptions left{.server_id = server_id,
                              .message = "left over by its server, which stopped without ending it (restarted)",
                              .runs = leftovers};
    for (const auto& run :
         repo.interrupt_runs(leftovers ? options.interrupt_threshold : microseconds(0), std::move(left))) {
      emit(SchedulerEvent::Kind::interrupted_peer, run.job_name, run.private_id, "left over by this server",
           run.message.value_or(""));
    }
    // The cluster learns what this server serves before it claims anything.
    guarded("record_server", [&] { record_server(repo); });
    // Changes elsewhere that make jobs due wake the claim loop at once, when
    // the store can push them; otherwise it polls every claim_interval.
    subscription = store.subscribe_due(options.plugin_id, [this] { wake_claimer(); });
    for (int i = 0; i < options.worker_threads; ++i) threads.push_back(runtime.start_thread([this] { worker_loop(); }));
    threads.push_back(runtime.start_thread([this] { writer_loop(); }));
    threads.push_back(runtime.start_thread([this] { monitor_loop(); }));
    threads.push_back(runtime.start_thread([this] { fence_loop(); }));
    claimer = runtime.start_thread([this] { claim_loop(); });
  } catch (...) {
    settle_phase(before);
    throw;
  }
  settle_phase(SchedulerPhase::running);
}

// Takes the lease of the server id for this instance (see start()). Returns
// the leftover runs of this server id that may be interrupted now: empty
// (nullopt) for all of them, when their owner is known to be gone; else those
// observed unchanged while waiting. Throws not_unique when the holder proved
// alive; returns an empty list when stop() came meanwhile.
std::optional<std::vector<ObservedRun>> Scheduler::State::take_lease(Repository& repo) {
  const auto record = [&](bool take_over) {
    auto lease = repo.record_server(server_id, options.interrupt_threshold,
                                    {.instance = identity.first, .address = identity.second, .take_over = take_over});
    if (lease.held) database_clock.observe(lease.seen_time, now());
    return lease;
  };
  for (;;) {
    auto lease = record(false);
    if (lease.held) return std::nullopt;  // free: its last holder stopped cleanly, or none
    const auto holder = lease.address.empty() ? std::string("an unknown server") : lease.address;
    if (scheduling::instance_gone(lease.instance)) {
      // A process of this machine that is gone: its handlers with it.
      if (!record(true).held) continue;
      emit(SchedulerEvent::Kind::warning, "", "",
           "start: server id " + quote_text(server_id) + " was held by " + holder +
               ", a process of this machine that is gone: taken over");
      return std::nullopt;
    }
    emit(SchedulerEvent::Kind::warning, "", "",
         "start: server id " + quote_text(server_id) + " is held by " + holder + ": waiting up to " +
             duration_text(options.interrupt_threshold) + " for it to renew its lease (then it is alive) or not");
    // The holder's runs as they are now: a heartbeat of any proves it alive.
    const auto own_runs = [&] {
      std::map<std::string, Timestamp> runs;
      for (const auto& run : repo.list_runs({.status = Status::running, .limit = -1})) {
        if (run.server_id == server_id) runs.emplace(run.private_id, run.update_time);
      }
      return runs;
    };
    const auto runs = own_runs();
    const auto since = now();
    for (;;) {
      {
        std::unique_lock lock(lifecycle_mutex);
        const auto pause = std::min<microseconds>(options.monitor_interval, options.interrupt_threshold / 8);
        if (runtime.wait_for(lock, lifecycle_changed, pause, [&] { return stop_requested; })) {
          return std::vector<ObservedRun>{};
        }
      }
      const auto now_lease = record(false);
      if (now_lease.held) return std::nullopt;  // it stopped cleanly meanwhile
      const bool renewed = now_lease.instance != lease.instance || now_lease.seen_time != lease.seen_time;
      bool heartbeat = false;
      if (!renewed) {
        for (const auto& [id, updated] : own_runs()) {
          const auto found = runs.find(id);
          heartbeat = heartbeat || found == runs.end() || found->second != updated;
        }
      }
      if (renewed || heartbeat) {
        throw Error(ErrorCode::not_unique,
                    "start: server id " + quote_text(server_id) +
                        " is in use by a live server: " + (now_lease.address.empty() ? holder : now_lease.address) +
                        " (it " + (renewed ? "renewed its lease" : "heartbeated a run") +
                        " while this one waited); give every server an id of its own");
      }
      const bool gone = scheduling::instance_gone(lease.instance);
      if (gone || now() - since >= options.interrupt_threshold) {
        if (!record(true).held) break;  // taken by a third meanwhile: look again
        emit(SchedulerEvent::Kind::warning, "", "",
             "start: server id " + quote_text(server_id) + " taken over from " + holder + ", silent for " +
                 duration_text(std::chrono::duration_cast<microseconds>(now() - since)));
        if (gone) return std::nullopt;
        std::vector<ObservedRun> observed_runs;
        for (const auto& [id, updated] : runs) observed_runs.push_back({id, updated});
        return observed_runs;
      }
    }
  }
}

// Runs claimed for the local queue that no worker started: they end at once
// (interrupted, the job stays due), so that a peer may take them without
// waiting for this server's handlers or the interrupt threshold.
void Scheduler::State::hand_back_queued() noexcept {
  guarded("stop", [&] {
    const auto unstarted = queue.take_all();
    if (unstarted.empty()) return;
    std::vector<std::string> ids;
    std::vector<RunUpdate> updates;
    for (const auto& local : unstarted) {
      ids.push_back(local->run_id());
      updates.push_back({.run_id = local->run_id(),
                         .status = Status::interrupted,
                         .message = "its server stopped before it started"});
    }
    executing.remove(ids);
    const auto results = repository().update_runs(updates);
    for (std::size_t i = 0; i < unstarted.size(); ++i) {
      const auto& local = *unstarted[i];
      if (results[i].run) {
        emit(SchedulerEvent::Kind::interrupted, local.job_name(), local.run_id(),
             "its server stopped before it started", results[i].run->message.value_or(""), std::nullopt,
             microseconds(0));
      } else if (results[i].error) {
        emit(SchedulerEvent::Kind::error, local.job_name(), local.run_id(),
             std::string("stop: handing back a queued run: ") + results[i].error->what(), {}, results[i].error->code());
      }
    }
  });
}

bool Scheduler::State::halt(std::optional<microseconds> wait) noexcept {
  try {
    // stop_timeout counts from the call.
    const auto deadline = wait ? now() + std::chrono::duration_cast<SteadyTime::duration>(std::min(*wait, max_offset))
                               : SteadyTime::max();
    {
      std::unique_lock lock(lifecycle_mutex);
      stop_requested = true;
      runtime.notify_all(lifecycle_changed);  // start() waiting for the lease gives up
      const int target = life;
      // A start() under way sees the request and ends; another stop() doing
      // the work is waited for; a new life since means this one ended.
      runtime.wait_until(lock, lifecycle_changed, SteadyTime::max(), [&] {
        return life != target || (phase != SchedulerPhase::starting && !driving && !stopper_active);
      });
      if (life != target) return true;
      if (phase == SchedulerPhase::idle || phase == SchedulerPhase::stopped) {
        phase = SchedulerPhase::stopped;
        runtime.notify_all(lifecycle_changed);
        return true;
      }
      phase = SchedulerPhase::stopping;
      stopper_active = true;
    }
    runtime.notify_all(lifecycle_changed);
    bool stopped = false;
    try {
      stopped = stopping_work(deadline, wait);
    } catch (...) {
      const std::lock_guard lock(lifecycle_mutex);
      stopper_active = false;
      runtime.notify_all(lifecycle_changed);
      throw;
    }
    {
      const std::lock_guard lock(lifecycle_mutex);
      stopper_active = false;
      if (stopped) phase = SchedulerPhase::stopped;
    }
    runtime.notify_all(lifecycle_changed);
    return stopped;
  } catch (const std::exception& e) {
    emit_error("stop", e.what(), std::nullopt);
  } catch (...) {
    emit_error("stop", "unknown exception", std::nullopt);
  }
  return false;
}

bool Scheduler::State::stopping_work(SteadyTime deadline, std::optional<microseconds> wait) {
  if (!stop_begun) {
    stop_begun = true;
    claim_signal.stop();
    if (claimer.joinable()) claimer.join();
    subscription.reset();  // it waits for a callback in progress
    hand_back_queued();
    for (const auto& local : executing.live()) local->cancel(CancelReason::stopping);
  }
  // Heartbeats and fences go on meanwhile, so the runs do not look stale.
  const bool returned = executing.wait_handlers_returned(deadline);
  if (!returned) {
    std::string names;
    int count = 0;
    for (const auto& local : executing.live()) {
      if (++count <= 5) {
        names += (names.empty() ? "" : ", ") + std::string("job ") + quote_text(local->job_name()) + " run " +
                 local->run_id();
      }
    }
    emit(SchedulerEvent::Kind::error, "", "",
         "stop: " + std::to_string(count) + (count == 1 ? " handler" : " handlers") +
             " did not return within stop_timeout " + duration_text(*wait) + " (" + names + (count > 5 ? ", ..." : "") +
             "): their runs stay running here, heartbeated, until they return (stop() again, or the destructor, "
             "waits for them)");
    return false;
  }
  // The outcomes: up to stop_timeout for the writer to store them.
  executing.wait_empty(now() +
                       std::chrono::duration_cast<SteadyTime::duration>(std::min(options.stop_timeout, max_offset)));
  outcomes.close();
  loops_signal.stop();
  queue.close();
  for (auto& thread : threads) {
    if (thread.joinable()) thread.join();
  }
  threads.clear();
  guarded("stop", [&] { repository().remove_server(server_id, identity.first); });
  return true;
}

std::vector<Run> Scheduler::State::run_due(int limit) {
  {
    const std::lock_guard lock(lifecycle_mutex);
    if ((phase != SchedulerPhase::idle && phase != SchedulerPhase::stopped) || driving) {
      throw Error(ErrorCode::invalid_parameter, "run_due: the scheduler is " + std::string(to_string(phase)) +
                                                    (driving ? " (run_due() runs already)" : "") +
                                                    "; run_due() drives a scheduler that is not started");
    }
    driving = true;
  }
  struct Driving {
    State& s;
    explicit Driving(State& state) : s(state) {}
    Driving(const Driving&) = delete;
    Driving& operator=(const Driving&) = delete;
    ~Driving() {
      {
        const std::lock_guard lock(s.lifecycle_mutex);
        s.driving = false;
      }
      s.runtime.notify_all(s.lifecycle_changed);
    }
  } driving_now(*this);
  Repository repo = repository();
  int version = 0;
  const auto jobs = registered(&version);
  const auto claimed = claim(repo, limit < 0 ? INT_MAX : std::max(limit, 1), *jobs, version);
  std::vector<Run> ran;
  for (const auto& local : claimed) {
    emit(SchedulerEvent::Kind::claimed, local->job_name(), local->run_id(), "");
    executing.add(local);
    local->start(now());
    auto outcome = execute(local);
    if (outcome) {
      // Stored at once; what the store throws is the caller's.
      const auto results = repo.update_runs(std::vector<RunUpdate>{outcome->update});
      if (results[0].error) {
        executing.remove(local->run_id());
        throw *results[0].error;
      }
      const auto kind = outcome->update.status == Status::completed     ? SchedulerEvent::Kind::completed
                        : outcome->update.status == Status::interrupted ? SchedulerEvent::Kind::interrupted
                                                                        : SchedulerEvent::Kind::failed;
      emit(scheduling::ended_event(kind, *outcome, results[0].run->message.value_or("")));
    }
    executing.remove(local->run_id());
    if (auto run = repo.lookup_run(local->run_id())) ran.push_back(std::move(*run));
  }
  return ran;
}

}  // namespace jobrepo
