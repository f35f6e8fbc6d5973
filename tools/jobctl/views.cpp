#include "views.hpp"

#include "duration.hpp"

#include <algorithm>
#include <map>

namespace jobctl {

using nlohmann::json;

std::string json_text(const json& value) { return value.dump(2, ' ', false, json::error_handler_t::replace); }

namespace {

json time_or_null(const std::optional<jobrepo::Timestamp>& t) { return t ? json(iso_utc(*t)) : json(nullptr); }

template <class T>
json or_null(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

}  // namespace

std::string due_text(const jobrepo::Job& job) {
  switch (jobrepo::due_state(job)) {
    case jobrepo::DueState::scheduled: return {};
    case jobrepo::DueState::on_demand: return "on demand";
    case jobrepo::DueState::gave_up:
      return "gave up (" + std::to_string(job.consecutive_failures) +
             (job.consecutive_failures == 1 ? " failure)" : " failures)");
  }
  return {};
}

json to_json(const jobrepo::Job& job) {
  const auto due = jobrepo::due_state(job);
  return {{"plugin_id", job.plugin_id},
          {"name", job.name},
          {"description", job.description},
          {"next_scheduled_run", due == jobrepo::DueState::scheduled ? json(iso_utc(job.next_scheduled_run)) : json()},
          {"due_state", std::string(jobrepo::to_string(due))},
          {"schedule", job.schedule},
          {"paused", job.paused},
          {"run_requested", job.run_requested},
          {"consecutive_failures", job.consecutive_failures},
          {"last_status", job.last_status ? json(std::string(jobrepo::to_string(*job.last_status))) : json(nullptr)},
          {"last_end_time", time_or_null(job.last_end_time)},
          {"last_message", or_null(job.last_message)},
          {"last_success_time", time_or_null(job.last_success_time)},
          {"requested_payload", or_null(job.requested_payload)}};
}

json to_json(const jobrepo::Run& run) {
  return {{"private_id", run.private_id},
          {"job_plugin_id", run.job_plugin_id},
          {"job_name", run.job_name},
          {"server_id", run.server_id},
          {"create_time", iso_utc(run.create_time)},
          {"update_time", iso_utc(run.update_time)},
          {"end_time", time_or_null(run.end_time)},
          {"completed_count", run.completed_count},
          {"total_count", run.total_count},
          {"status", std::string(jobrepo::to_string(run.status))},
          {"message", or_null(run.message)},
          {"attempt", run.attempt},
          {"cancel_requested", run.cancel_requested},
          {"work_end_time", time_or_null(run.work_end_time)},
          {"payload", or_null(run.payload)}};
}

std::vector<const jobrepo::Serving*> JobView::live() const {
  std::vector<const jobrepo::Serving*> out;
  for (const auto& s : servings) {
    if (s.live) out.push_back(&s);
  }
  return out;
}

bool JobView::unserved() const { return live().empty(); }

bool JobView::drifted() const {
  const auto servers = live();
  return std::any_of(servers.begin(), servers.end(),
                     [&](const jobrepo::Serving* s) { return s->fingerprint != servers.front()->fingerprint; });
}

json to_json(const JobView& view) {
  json out = to_json(view.job);
  if (view.running) {
    const auto& r = *view.running;
    out["running"] = {{"run_id", r.private_id},
                      {"server_id", r.server_id},
                      {"create_time", iso_utc(r.create_time)},
                      {"update_time", iso_utc(r.update_time)},
                      {"completed_count", r.completed_count},
                      {"total_count", r.total_count},
                      {"cancel_requested", r.cancel_requested}};
  } else {
    out["running"] = nullptr;
  }
  json servers = json::array();
  for (const auto& s : view.servings) {
    servers.push_back({{"server_id", s.server_id},
                       {"fingerprint", s.fingerprint},
                       {"registered_time", iso_utc(s.registered_time)},
                       {"seen_time", iso_utc(s.seen_time)},
                       {"live", s.live}});
  }
  out["servers"] = servers;
  out["unserved"] = view.unserved();
  out["drifted"] = view.drifted();
  return out;
}

// The jobs (one, when `name` is set) with their running runs and servers:
// three reads, whatever the number of jobs.
std::vector<JobView> job_views(jobrepo::Repository& repo, const std::string& name) {
  std::vector<JobView> views;
  for (auto& job : repo.list_jobs({.name = name, .limit = -1})) views.push_back(JobView{std::move(job), {}, {}});
  std::map<std::string, JobView*> by_name;
  for (auto& view : views) by_name[view.job.name] = &view;
  for (auto& run : repo.list_runs({.job_name = name, .status = jobrepo::Status::running, .limit = -1})) {
    if (const auto found = by_name.find(run.job_name); found != by_name.end()) found->second->running = std::move(run);
  }
  for (auto& serving : repo.list_servings(name)) {
    if (const auto found = by_name.find(serving.job_name); found != by_name.end()) {
      found->second->servings.push_back(std::move(serving));
    }
  }
  return views;
}

}  // namespace jobctl
