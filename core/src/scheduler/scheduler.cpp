// The Scheduler's public methods, its events, and what every loop shares.
#include "state.hpp"

#include "../operation.hpp"
#include "instance.hpp"

#include <jobrepo/text.hpp>

#include <algorithm>

namespace jobrepo {

using scheduling::duration_text;
using std::chrono::microseconds;

std::string_view to_string(CancelReason reason) noexcept {
  switch (reason) {
    case CancelReason::none: return "none";
    case CancelReason::stopping: return "stopping";
    case CancelReason::interrupted: return "interrupted";
    case CancelReason::fenced: return "fenced";
    case CancelReason::deadline: return "deadline";
    case CancelReason::operator_request: return "cancelled by operator";
  }
  return "unknown";
}

std::string_view to_string(SchedulerEvent::Kind kind) noexcept {
  switch (kind) {
    case SchedulerEvent::Kind::claimed: return "claimed";
    case SchedulerEvent::Kind::started: return "started";
    case SchedulerEvent::Kind::completed: return "completed";
    case SchedulerEvent::Kind::failed: return "failed";
    case SchedulerEvent::Kind::cancelled: return "cancelled";
    case SchedulerEvent::Kind::interrupted_peer: return "interrupted_peer";
    case SchedulerEvent::Kind::error: return "error";
    case SchedulerEvent::Kind::skipped: return "skipped";
    case SchedulerEvent::Kind::interrupted: return "interrupted";
    case SchedulerEvent::Kind::warning: return "warning";
  }
  return "unknown";
}

std::string_view to_string(SchedulerPhase phase) noexcept {
  switch (phase) {
    case SchedulerPhase::idle: return "idle";
    case SchedulerPhase::starting: return "starting";
    case SchedulerPhase::running: return "running";
    case SchedulerPhase::stopping: return "stopping";
    case SchedulerPhase::stopped: return "stopped";
  }
  return "unknown";
}

Cancelled::Cancelled(CancelReason reason)
    : std::runtime_error("cancelled: " + std::string(to_string(reason))), reason_(reason) {}

void JobContext::throw_if_cancelled() const {
  if (cancelled()) throw Cancelled(cancel_reason());
}

const std::optional<std::string>& JobContext::payload() const {
  static const std::optional<std::string> none;
  return none;
}

std::string progress_problem(std::int64_t completed, std::int64_t total) {
  if (completed >= 0 && total >= 0 && completed <= total) return {};
  return "counts " + std::to_string(completed) + "/" + std::to_string(total) +
         " must be non-negative with completed <= total";
}

namespace {

class FunctionJob final : public JobHandler {
 public:
  FunctionJob(std::string name, std::string description, std::function<microseconds(JobContext&)> run)
      : name_(std::move(name)), description_(std::move(description)), run_(std::move(run)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return description_; }
  microseconds run(JobContext& context) override { return run_(context); }

 private:
  std::string name_, description_;
  std::function<microseconds(JobContext&)> run_;
};

}  // namespace

std::shared_ptr<JobHandler> make_job(std::string name, std::string description,
                                     std::function<microseconds(JobContext&)> run) {
  return std::make_shared<FunctionJob>(std::move(name), std::move(description), std::move(run));
}

// --- State: what every loop shares -------------------------------------------

Scheduler::State::State(std::string id, Store& s, SchedulerOptions o)
    : server_id(std::move(id)),
      store(s),
      options(std::move(o)),
      runtime(options.runtime ? *options.runtime : system_runtime()),
      identity(scheduling::new_instance()),
      executing(runtime),
      queue(runtime),
      outcomes(runtime),
      claim_signal(runtime),
      loops_signal(runtime),
      database_clock(runtime) {}

void Scheduler::State::emit(SchedulerEvent::Kind kind, const std::string& job, const std::string& run,
                            std::string detail, std::string message, std::optional<ErrorCode> code,
                            microseconds duration) const noexcept {
  if (!options.on_event) return;
  try {
    options.on_event(SchedulerEvent{kind, job, run, std::move(detail), std::move(message), duration, code});
  } catch (...) {
    // A failing observer must not stop the scheduler.
  }
}

void Scheduler::State::emit(SchedulerEvent event) const noexcept {
  if (!options.on_event) return;
  try {
    options.on_event(event);
  } catch (...) {
  }
}

void Scheduler::State::emit_error(const char* what, const std::string& message,
                                  std::optional<ErrorCode> code) const noexcept {
  try {
    // A Repository error names the method already: `what` leads once.
    const std::string prefix = std::string(what) + ": ";
    std::string detail = message.rfind(prefix, 0) == 0 ? message : prefix + message;
    SchedulerEvent event{SchedulerEvent::Kind::error, "", "", std::move(detail)};
    event.code = code;
    emit(std::move(event));
  } catch (...) {
  }
}

std::shared_ptr<const Scheduler::State::JobMap> Scheduler::State::registered(int* version) const {
  const std::lock_guard lock(jobs_mutex);
  if (version) *version = jobs_version;
  if (!jobs_snapshot || snapshot_version != jobs_version) {
    jobs_snapshot = std::make_shared<const JobMap>(jobs);
    snapshot_version = jobs_version;
  }
  return jobs_snapshot;
}

double Scheduler::State::spread(const BackoffOptions& backoff) {
  const std::lock_guard lock(random_mutex);
  return std::uniform_real_distribution<double>(1.0 - backoff.jitter, 1.0 + backoff.jitter)(random);
}

std::vector<ServedJob> Scheduler::State::served_jobs(int* version) const {
  const std::lock_guard lock(jobs_mutex);
  if (version) *version = jobs_version;
  std::vector<ServedJob> served;
  for (const auto& [name, job] : jobs) served.push_back(ServedJob{name, job.fingerprint});
  return served;
}

// --- Scheduler -------------------------------------------------------------------

Scheduler::Scheduler(std::string server_id, Store& store, SchedulerOptions options) {
  // The rule of run_jobs: a server id its claims would be refused for must
  // not start a claim loop that fails forever.
  if (const auto problem = text_problem(TextKind::server_id, server_id)) {
    throw Error(problem->code, "Scheduler: server_id " + problem->message);
  }
  if (const auto problem = scheduler_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "Scheduler: " + problem);
  }
  // The Repository's rule for its plugin id, named as the caller knows it.
  if (const auto problem = text_problem(TextKind::plugin_id, options.plugin_id)) {
    throw Error(problem->code, "Scheduler: plugin_id " + problem->message);
  }
  state_ = std::make_unique<State>(std::move(server_id), store, std::move(options));
}

Scheduler::~Scheduler() { state_->halt(std::nullopt); }

const std::string& Scheduler::server_id() const noexcept { return state_->server_id; }

void Scheduler::register_job(std::shared_ptr<JobHandler> handler, RegisterJobOptions options) {
  if (!handler) throw Error(ErrorCode::invalid_parameter, "register_job: missing handler");
  auto& s = *state_;
  const std::string name = handler->name();
  const auto refuse = [&](const std::string& why) {
    throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) + ": " + why);
  };
  // microseconds::max() is "none" for a timeout and "never" for every.
  if (options.timeout.count() < 0 || (options.timeout > max_offset && options.timeout != microseconds::max())) {
    refuse("timeout " + duration_text(options.timeout) + " is not between 0 and 100 years");
  }
  if (options.every &&
      (options.every->count() < 0 || (*options.every > max_offset && *options.every != microseconds::max()))) {
    refuse("every " + duration_text(*options.every) + " is not between 0 and 100 years");
  }
  const BackoffOptions backoff = options.backoff.value_or(s.options.backoff);
  if (const auto problem = backoff_problem(backoff); !problem.empty()) refuse(problem);
  if (options.on_demand && (options.schedule || options.every)) {
    refuse("an on-demand job has no calendar schedule and no every");
  }
  {
    const std::lock_guard lock(s.jobs_mutex);
    if (!options.replace && s.jobs.count(name) != 0) {
      throw Error(ErrorCode::invalid_parameter, "register_job: " + quote_text(name) +
                                                    " is registered already (RegisterJobOptions::replace replaces it)");
    }
  }
  try {
    auto repo = s.repository();
    CreateJobOptions job{.next_run_in = options.next_run_in, .schedule = options.schedule_text};
    if (options.on_demand) {
      if (options.next_run_in.count() != 0) refuse("give on_demand or next_run_in, not both");
      job.next_run_in = microseconds(0);
      job.next_run_at = never;
      if (job.schedule.empty()) job.schedule = "on demand";
      const auto existing = repo.lookup_job(name);
      repo.ensure_job(name, handler->description(), job);
      // A job that was scheduled otherwise until now waits to be asked.
      if (existing && existing->schedule != job.schedule) repo.update_job_next_run(name, never);
    } else if (options.schedule) {
      if (options.next_run_in.count() != 0) refuse("give a calendar schedule or next_run_in, not both");
      // The first run: the next fire time after now, as the database tells it.
      const auto first = options.schedule->next_after(repo.database_time());
      job.next_run_at = std::min(first.value_or(latest_time), latest_time);
      if (job.schedule.empty()) {
        job.schedule = options.schedule->to_string();
        if (options.misfire == Misfire::skip) job.schedule += ", missed fire times skipped";
      }
      // A job that was scheduled otherwise until now (another expression, a
      // duration) is due at this schedule's next fire time, not at the old one.
      const auto existing = repo.lookup_job(name);
      repo.ensure_job(name, handler->description(), job);
      if (existing && existing->schedule != job.schedule) repo.update_job_next_run(name, *job.next_run_at);
    } else {
      // A job due `never` that was scheduled otherwise until now (on demand,
      // or given up under another schedule) is due as a new job would be;
      // one whose handler said "never" under this same schedule stays so.
      const auto existing = repo.lookup_job(name);
      repo.ensure_job(name, handler->description(), job);
      if (existing && existing->schedule != job.schedule && existing->next_scheduled_run >= never) {
        repo.update_job_next_run(name, options.next_run_in);
      }
    }
  } catch (const Error& e) {
    throw for_operation(e, "register_job");
  }
  std::string definition = options.definition;
  if (definition.empty()) {
    definition = "schedule=" + (options.schedule ? options.schedule->to_string() : std::string()) +
                 ";misfire=" + (options.misfire == Misfire::skip ? "skip" : "run_once") +
                 ";every=" + (options.every ? duration_text(*options.every) : std::string()) +
                 ";timeout=" + duration_text(options.timeout) + ";backoff=" + duration_text(backoff.initial) + "," +
                 duration_text(backoff.max) + "," + std::to_string(backoff.multiplier) + "," +
                 std::to_string(backoff.max_attempts) + (backoff.give_up ? ",give_up" : "") +
                 (options.on_demand ? ";on_demand" : "");
  }
  {
    const std::lock_guard lock(s.jobs_mutex);
    s.jobs[name] = State::Registered{
        std::move(handler), options.timeout,
        scheduling::JobTiming{options.schedule, options.misfire, options.every, backoff, options.on_demand},
        definition_fingerprint(definition)};
    ++s.jobs_version;
  }
  s.wake_claimer();
}

bool Scheduler::unregister_job(std::string_view job_name) {
  auto& s = *state_;
  const std::lock_guard lock(s.jobs_mutex);
  const auto found = s.jobs.find(job_name);
  if (found == s.jobs.end()) return false;
  s.jobs.erase(found);
  ++s.jobs_version;
  return true;
}

void Scheduler::start() { state_->start(); }

bool Scheduler::stop() { return state_->halt(state_->options.stop_timeout); }

std::vector<Run> Scheduler::run_due(int limit) { return state_->run_due(limit); }

void Scheduler::run_now(std::string_view job_name, std::optional<std::string> payload) {
  try {
    state_->repository().run_now(job_name, std::move(payload));
  } catch (const Error& e) {
    throw for_operation(e, "run_now");
  }
  state_->wake_claimer();
}

SchedulerPhase Scheduler::phase() const {
  const std::lock_guard lock(state_->lifecycle_mutex);
  return state_->phase;
}

SchedulerHealth Scheduler::health() const {
  const auto& s = *state_;
  const auto at = [](const std::atomic<Runtime::SteadyTime::rep>& tick) {
    return Runtime::SteadyTime(Runtime::SteadyTime::duration(tick.load()));
  };
  SchedulerHealth health;
  {
    const std::lock_guard lock(s.lifecycle_mutex);
    health.phase = s.phase;
  }
  health.started = health.phase == SchedulerPhase::running || health.phase == SchedulerPhase::stopping;
  health.stopping = health.phase == SchedulerPhase::stopping;
  health.lease_lost = s.lease_lost.load();
  health.claim_loop = at(s.claim_tick);
  health.monitor_loop = at(s.monitor_tick);
  health.fence_loop = at(s.fence_tick);
  if (s.store_answered.load() != 0) health.store_answered = at(s.store_answered);
  if (s.write_began.load() != 0) {
    health.write_call = at(s.write_began);
    health.write_call_outcomes = s.write_rows.load();
  }
  health.outcomes_waiting = s.executing.returned_count();
  health.write_stalls = s.write_stalls.load();
  return health;
}

std::vector<ExecutingRun> Scheduler::executing() const {
  std::vector<ExecutingRun> out;
  for (const auto& local : state_->executing.all()) {
    const auto [completed, total] = local->counts();
    out.push_back(ExecutingRun{local->run_id(), local->job_name(), local->run().create_time, completed, total,
                               local->cancel_reason()});
  }
  return out;
}

}  // namespace jobrepo
