// Conformance cases: concurrent claims from threads and processes.
#include "support.hpp"
#include "workers.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

namespace jobrepo::conformance {

void link_race_cases() {}

namespace {

std::string describe(const std::vector<std::string>& errors) {
  std::string out;
  for (std::size_t i = 0; i < errors.size() && i < 5; ++i) out += "\n  " + errors[i];
  return out;
}

}  // namespace

TEST_CASE("threads and processes claiming the same due jobs get each job once, without errors", "[conformance][race]") {
  Fixture f;
  constexpr int jobs = 1000;
  for (int i = 0; i < jobs; ++i) f.repo.create_job("race-" + std::to_string(i), "d");

  WorkerPlan plan;
  plan.mode = WorkerMode::claim_all;
  plan.threads = 8;
  plan.server_prefix = "thread";
  const bool processes = !f.db.url.empty();
  std::optional<ChildClaimers> child_claimers;
  if (processes) {
    WorkerPlan child_plan = plan;
    child_plan.threads = 2;
    child_plan.server_prefix = "process";
    child_claimers.emplace(f.db.url, child_plan, 4);
  } else {
    note_not_applicable("cross-process claims (the database cannot be opened from another process)");
  }
  plan.start_at = Clock::now();
  if (child_claimers) child_claimers->go();
  ClaimLog log = run_claimers(f.store, plan);
  const ClaimLog children = child_claimers ? child_claimers->wait() : ClaimLog{};
  log.append(children);

  INFO("errors:" << describe(log.errors));
  CHECK(log.errors.empty());
  std::map<std::string, int> per_job;
  for (const auto& name : log.job_names) ++per_job[name];
  CHECK(log.job_names.size() == static_cast<std::size_t>(jobs));
  CHECK(per_job.size() == static_cast<std::size_t>(jobs));
  const auto twice = std::count_if(per_job.begin(), per_job.end(), [](const auto& e) { return e.second > 1; });
  CHECK(twice == 0);
  if (processes) {
    INFO("claims made by the child processes: " << children.run_ids.size());
    CHECK(!children.run_ids.empty());
  }

  // The database agrees: exactly one running run per job.
  const auto running = f.repo.interrupt_runs(0s);
  std::set<std::string> running_jobs;
  for (const auto& run : running) running_jobs.insert(run.job_name);
  CHECK(running.size() == static_cast<std::size_t>(jobs));
  CHECK(running_jobs.size() == static_cast<std::size_t>(jobs));
}

TEST_CASE("claim and complete churn never runs one job twice at once", "[conformance][race]") {
  Fixture f;
  constexpr int jobs = 20;
  for (int i = 0; i < jobs; ++i) f.repo.create_job("churn-" + std::to_string(i), "d");

  WorkerPlan plan;
  plan.mode = WorkerMode::churn;
  plan.duration = 3s;
  plan.threads = 4;
  plan.server_prefix = "thread";
  std::optional<ChildClaimers> child_claimers;
  if (!f.db.url.empty()) {
    WorkerPlan child_plan = plan;
    child_plan.threads = 2;
    child_plan.server_prefix = "process";
    child_claimers.emplace(f.db.url, child_plan, 2);
  } else {
    note_not_applicable("cross-process churn (the database cannot be opened from another process)");
  }
  plan.start_at = Clock::now();
  if (child_claimers) child_claimers->go();
  ClaimLog log = run_claimers(f.store, plan);
  const ClaimLog children = child_claimers ? child_claimers->wait() : ClaimLog{};
  log.append(children);

  INFO("errors:" << describe(log.errors));
  CHECK(log.errors.empty());
  REQUIRE(log.run_ids.size() > static_cast<std::size_t>(jobs));

  // Audit: the runs of each job, ordered by start, never overlap.
  std::map<std::string, std::vector<Run>> runs_of;
  for (const auto& id : log.run_ids) {
    const auto run = f.repo.lookup_run(id);
    REQUIRE(run.has_value());
    runs_of[run->job_name].push_back(*run);
  }
  int overlaps = 0;
  int unfinished = 0;
  for (auto& [name, runs] : runs_of) {
    std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.create_time < b.create_time; });
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (!runs[i].end_time) {
        ++unfinished;
        continue;
      }
      if (i + 1 < runs.size() && *runs[i].end_time > runs[i + 1].create_time) ++overlaps;
    }
  }
  CAPTURE(log.run_ids.size(), runs_of.size());
  CHECK(overlaps == 0);
  CHECK(unfinished == 0);
}

}  // namespace jobrepo::conformance
