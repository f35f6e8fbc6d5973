// The claim loop: claims due runs of the jobs registered here, as many as
// there are free workers and local queue places, and queues them for the
// workers. It sleeps until the earliest known due time of its jobs, at most
// claim_interval, and wakes at once on run_now(), a free worker, a peer's
// run interrupted, or a push from the store (subscribe_due).
#include "state.hpp"

#include <jobrepo/text.hpp>

#include <algorithm>

namespace jobrepo {

using std::chrono::microseconds;

void Scheduler::State::claim_loop() {
  Repository repo = repository();
  std::optional<SteadyTime> last_sweep, last_scan;
  for (;;) {
    claim_tick.store(ticks(now()));
    if (claim_signal.stopped()) return;
    int version = 0;
    const auto jobs = registered(&version);
    // Runs waiting for their final write hold no place (their jobs cannot be
    // claimed again until it is stored).
    int free = options.worker_threads + options.local_queue - queue.taken();
    // The server id is another instance's now: claims would be its.
    if (lease_lost.load()) free = 0;
    if (free > 0 && (!last_sweep || now() - *last_sweep >= options.claim_interval)) {
      guarded("misfire", [&] { skip_missed(repo); });
      last_sweep = now();
    }
    bool maybe_more = false;
    if (free > 0) {
      const int limit = options.claim_limit > 0 ? std::min(options.claim_limit, free) : free;
      guarded("claim", [&] {
        const auto runs = claim(repo, limit, *jobs, version);
        maybe_more = static_cast<int>(runs.size()) == limit;
        for (const auto& local : runs) {
          emit(SchedulerEvent::Kind::claimed, local->job_name(), local->run_id(), "");
          executing.add(local);
          queue.push(local);
        }
      });
    }
    if (claim_signal.stopped()) return;
    if (!last_scan || now() - *last_scan >= options.claim_interval) {
      guarded("list_jobs", [&] {
        scan_jobs(repo);
        last_scan = now();
      });
    }
    if (maybe_more) continue;  // busy: the loop never sleeps
    // Until the earliest known due time of a job registered here, at most
    // claim_interval, at least 1 ms.
    microseconds wait = options.claim_interval;
    const auto database_now = database_clock.now();
    if (const auto due = known_due.next(database_now)) {
      wait = std::min(wait, std::chrono::duration_cast<microseconds>(*due - database_now));
    }
    wait = std::max(wait, microseconds(1000));
    if (claim_signal.wait(now() + wait)) return;
  }
}

// Claims name no jobs: the store claims those of this server's last recorded
// set (served_only), which is made current first when a job was registered
// or unregistered since. Only when that record fails do claims name the jobs.
std::vector<std::shared_ptr<Scheduler::State::LocalRun>> Scheduler::State::claim(
    Repository& repo, int limit, const std::map<std::string, Registered, std::less<>>& jobs, int version) {
  if (jobs.empty()) return {};
  const auto claimed_at = now();
  if (recorded_jobs_version() != version) guarded("record_server", [&] { record_server(repo); });
  RunJobsOptions request{.limit = limit};
  if (recorded_jobs_version() == version) {
    request.served_only = true;
  } else {
    request.only_jobs.emplace();
    for (const auto& entry : jobs) request.only_jobs->push_back(entry.first);
  }
  auto runs = repo.run_jobs(server_id, request);
  if (!runs.empty()) database_clock.observe(runs.front().create_time, now());
  std::vector<std::shared_ptr<LocalRun>> locals;
  std::vector<Run> strangers;
  for (auto& run : runs) {
    const auto job = jobs.find(run.job_name);
    if (job == jobs.end()) {
      strangers.push_back(std::move(run));
      continue;
    }
    auto local = std::make_shared<LocalRun>(std::move(run), job->second.handler, job->second.timing,
                                            job->second.timeout, runtime, claimed_at);
    local->set_fence_after(scheduling::fence_after(options));
    locals.push_back(std::move(local));
  }
  if (!strangers.empty()) hand_back_strangers(repo, strangers);
  return locals;
}

// Jobs with a calendar schedule and Misfire::skip whose due fire time passed
// while no server ran them (all down, busy, or cut off from the database)
// become due at their next fire time still to come, before a claim could
// run them late. A fire time is missed when it is older than half the time
// to the next one (at least claim_interval, at most a minute), by the
// database's clock.
void Scheduler::State::skip_missed(Repository& repo) {
  std::map<std::string, Registered, std::less<>> skipping;
  const auto jobs = registered();  // held: a temporary's map would end before the loop
  for (const auto& [name, job] : *jobs) {
    if (job.timing.schedule && job.timing.misfire == Misfire::skip) skipping.emplace(name, job);
  }
  if (skipping.empty()) return;
  const auto now = repo.database_time();
  database_clock.observe(now, this->now());
  for (const auto& job : repo.list_jobs({.limit = -1})) {
    const auto found = skipping.find(job.name);
    if (found == skipping.end() || job.next_scheduled_run >= now) continue;
    const auto& schedule = *found->second.timing.schedule;
    const auto due = job.next_scheduled_run;
    const auto following = schedule.next_after(due);
    const auto period = following ? std::chrono::duration_cast<microseconds>(*following - due) : max_offset;
    const auto tolerance =
        std::min<microseconds>(std::max<microseconds>(period / 2, options.claim_interval), std::chrono::minutes(1));
    if (now - due <= tolerance) continue;
    const auto next = std::min(schedule.next_after(now).value_or(latest_time), latest_time);
    repo.update_job_next_run(job.name, next);
    emit(SchedulerEvent::Kind::skipped, job.name, "",
         "missed the fire time " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - due).count()) +
             " s ago; next in " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(next - now).count()) +
             " s");
    known_due.add(next);
  }
}

// Reads the due times of the jobs registered here.
void Scheduler::State::scan_jobs(Repository& repo) {
  const auto jobs = registered();
  const auto mark = known_due.mark();
  const auto now = database_clock.now();
  std::vector<Timestamp> due;
  for (const auto& job : repo.list_jobs({.limit = -1})) {
    if (jobs->count(job.name) != 0 && job.next_scheduled_run > now) due.push_back(job.next_scheduled_run);
  }
  known_due.replace(std::move(due), mark);
}

// Runs of jobs not registered here, which no claim should return (the
// store's served set is this server's current one, or the claim named the
// jobs), but a store that failed its contract might: they end at once,
// interrupted before anything ran, the job still due for the servers that
// run it.
void Scheduler::State::hand_back_strangers(Repository& repo, const std::vector<Run>& strangers) {
  std::vector<RunUpdate> updates;
  for (const auto& run : strangers) {
    updates.push_back({.run_id = run.private_id,
                       .status = Status::interrupted,
                       .message = "claimed by " + server_id + ", which does not run this job; handed back"});
  }
  const auto results = repo.update_runs(updates);
  for (std::size_t i = 0; i < strangers.size(); ++i) {
    if (results[i].error) {
      emit(SchedulerEvent::Kind::error, strangers[i].job_name, strangers[i].private_id,
           std::string("claim: handing back a run of a job not registered here: ") + results[i].error->what(), {},
           results[i].error->code());
    }
  }
}

}  // namespace jobrepo
