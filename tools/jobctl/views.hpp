// What jobctl shows of jobs and runs, as JSON (docs/cli.md, "JSON output"):
// one definition for jobctl --json and for serve's /api/jobs and /api/runs.
#pragma once

#include <jobrepo/jobrepo.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace jobctl {

// JSON as jobctl prints it, all of it: indented by 2, and text that is not
// UTF-8 (stored by an older version or by hand) shown with U+FFFD instead of
// aborting.
std::string json_text(const nlohmann::json& value);

// The words jobctl shows instead of a next-run time when no time makes the
// job due (jobrepo::due_state): "on demand", "gave up (3 failures)"; empty
// for a scheduled job. One text for jobctl jobs, job show and the status page.
std::string due_text(const jobrepo::Job& job);

// A job as JSON: next_scheduled_run is null when no time makes it due, and
// due_state says why ("scheduled", "on_demand", "gave_up").
nlohmann::json to_json(const jobrepo::Job& job);
nlohmann::json to_json(const jobrepo::Run& run);

// A job with what the cluster knows of it: its running run, and the servers
// that serve it (live or not) with the fingerprints of their definitions.
struct JobView {
  jobrepo::Job job;
  std::optional<jobrepo::Run> running;
  std::vector<jobrepo::Serving> servings;

  std::vector<const jobrepo::Serving*> live() const;
  bool unserved() const;  // no live server serves it
  bool drifted() const;   // live servers define it differently
};

nlohmann::json to_json(const JobView& view);

template <class T>
nlohmann::json to_json(const std::vector<T>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : items) out.push_back(to_json(item));
  return out;
}

// The jobs (one, when `name` is set) with their running runs and servers:
// three reads, whatever the number of jobs.
std::vector<JobView> job_views(jobrepo::Repository& repo, const std::string& name = {});

}  // namespace jobctl
