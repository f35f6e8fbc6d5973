// Conformance cases: concurrent claims from threads and processes.
#include "support.hpp"
#include "workers.hpp"

#include <jobrepo/audit.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace jobrepo::conformance {

void link_race_cases() {}

namespace {

std::string describe(const std::vector<std::string>& errors) {
  std::string out;
  for (std::size_t i = 0; i < errors.size() && i < 5; ++i) out += "\n  " + errors.at(i);
  return out;
}

struct Audit {
  std::size_t runs = 0, jobs = 0;
  int overlaps = 0, unfinished = 0, missing = 0;
};

// Reads every run back from the store: per job, ordered by start, a run must
// end before (or when) the next one starts.
Audit audit_runs(Repository& repo, const std::vector<std::string>& run_ids) {
  Audit audit;
  std::vector<Run> runs;
  std::set<std::string> jobs;
  for (const auto& id : run_ids) {
    const auto run = repo.lookup_run(id);
    if (!run) {
      ++audit.missing;
      continue;
    }
    if (!run->end_time) ++audit.unfinished;
    jobs.insert(run->job_name);
    runs.push_back(*run);
  }
  audit.overlaps = static_cast<int>(find_overlaps(std::move(runs)).size());
  audit.runs = run_ids.size();
  audit.jobs = jobs.size();
  return audit;
}

// Why the cases with child processes cannot run here, or empty.
std::string cross_process_problem(const Fixture& f) {
  if (!capabilities().shares_across_processes) return "the harness's databases cannot be shared across processes";
  if (f.db.url.empty()) return "the database has no url for another process";
  return {};
}

// Runs plan.threads claimers in this process and, when `processes` > 0,
// `processes` children with `child_threads` each, all starting at once.
// Returns everything claimed; `children` gets the children's part.
ClaimLog race(Fixture& f, WorkerPlan plan, int processes, int child_threads, ClaimLog& children) {
  plan.server_prefix = "thread";
  std::optional<ChildClaimers> child_claimers;
  if (processes > 0) {
    WorkerPlan child_plan = plan;
    child_plan.threads = child_threads;
    child_plan.server_prefix = "process";
    child_claimers.emplace(f.db.url, child_plan, processes);
  }
  plan.start_at = Clock::now();
  if (child_claimers) child_claimers->go();
  ClaimLog log = run_claimers(f.store, plan);
  if (child_claimers) children = child_claimers->wait();
  log.append(children);
  return log;
}

void claim_race(Fixture& f, int processes) {
  constexpr int jobs = 1000;
  for (int i = 0; i < jobs; ++i) f.repo.create_job("race-" + std::to_string(i), "d");

  WorkerPlan plan;
  plan.mode = WorkerMode::claim_all;
  plan.threads = 8;
  plan.max_claims = jobs;
  ClaimLog children;
  const ClaimLog log = race(f, plan, processes, 2, children);

  INFO("errors:" << describe(log.errors));
  CHECK(log.errors.empty());
  std::map<std::string, int> per_job;
  for (const auto& name : log.job_names) ++per_job[name];
  CHECK(log.job_names.size() == static_cast<std::size_t>(jobs));
  CHECK(per_job.size() == static_cast<std::size_t>(jobs));
  const auto twice = std::count_if(per_job.begin(), per_job.end(), [](const auto& e) { return e.second > 1; });
  CHECK(twice == 0);
  if (processes > 0) {
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

void churn_race(Fixture& f, int processes) {
  constexpr int jobs = 20;
  for (int i = 0; i < jobs; ++i) f.repo.create_job("churn-" + std::to_string(i), "d");

  WorkerPlan plan;
  plan.mode = WorkerMode::churn;
  plan.duration = 1500ms;
  plan.threads = 4;
  ClaimLog children;
  const ClaimLog log = race(f, plan, processes, 2, children);

  INFO("errors:" << describe(log.errors));
  CHECK(log.errors.empty());
  REQUIRE(log.run_ids.size() > static_cast<std::size_t>(jobs));
  if (processes > 0) CHECK(!children.run_ids.empty());

  const Audit audit = audit_runs(f.repo, log.run_ids);
  CHECK(audit.overlaps == 0);
  CHECK(audit.unfinished == 0);
  CHECK(audit.missing == 0);
}

// Two groups of 4 threads, each thread a server with served_only claims:
// "thread-0".."thread-3" serve jobs 0-599, "thread-4".."thread-7" jobs 0-199
// and 600-999, so that from the start both groups race for jobs 0-199, the
// earliest due.
void served_race(Fixture& f) {
  constexpr int jobs = 1000;
  const auto serves = [](int thread, int job) { return job < 200 || (thread < 4 ? job < 600 : job >= 600); };
  for (int i = 0; i < jobs; ++i) f.repo.create_job("race-" + std::to_string(i), "d");
  for (int t = 0; t < 8; ++t) {
    std::vector<ServedJob> set;
    for (int i = 0; i < jobs; ++i) {
      if (serves(t, i)) set.push_back({"race-" + std::to_string(i), "f"});
    }
    const std::string server = "thread-" + std::to_string(t);
    REQUIRE(f.repo.record_server(server, 1h, {.instance = server, .jobs = set}).held);
  }

  WorkerPlan plan;
  plan.mode = WorkerMode::claim_all;
  plan.threads = 8;
  plan.max_claims = jobs;
  plan.served_only = true;
  ClaimLog children;
  ClaimLog log = race(f, plan, 0, 0, children);
  // A claimer stops at its first empty claim, and a claim that lost every
  // race for its jobs may return none (architecture.md, "The claim"): all
  // four of a group may stop while jobs only they serve are left. Each
  // server then claims what is left, alone.
  std::size_t left = 0;
  for (int t = 0; t < 8; ++t) {
    for (;;) {
      const auto runs = f.repo.run_jobs("thread-" + std::to_string(t), {.limit = -1, .served_only = true});
      if (runs.empty()) break;
      for (const auto& run : runs) {
        log.run_ids.push_back(run.private_id);
        log.job_names.push_back(run.job_name);
      }
      left += runs.size();
    }
  }

  INFO("errors:" << describe(log.errors) << "\nclaimed after the race: " << left);
  CHECK(log.errors.empty());
  std::map<std::string, int> per_job;
  for (const auto& name : log.job_names) ++per_job[name];
  CHECK(log.job_names.size() == static_cast<std::size_t>(jobs));
  CHECK(per_job.size() == static_cast<std::size_t>(jobs));

  // The database agrees: one running run per job, each owned by a server
  // that serves the job.
  const auto running = f.repo.interrupt_runs(0s);
  std::set<std::string> running_jobs;
  int not_served = 0;
  for (const auto& run : running) {
    running_jobs.insert(run.job_name);
    const int job = std::stoi(run.job_name.substr(std::string("race-").size()));
    const int thread = std::stoi(run.server_id.substr(std::string("thread-").size()));
    if (!serves(thread, job)) ++not_served;
  }
  CHECK(running.size() == static_cast<std::size_t>(jobs));
  CHECK(running_jobs.size() == static_cast<std::size_t>(jobs));
  CHECK(not_served == 0);
}

}  // namespace

TEST_CASE("threads claiming the same due jobs get each job once, without errors", "[conformance][race]") {
  Fixture f;
  claim_race(f, 0);
}

TEST_CASE("threads and processes claiming the same due jobs get each job once, without errors",
          "[conformance][race][shared]") {
  Fixture f;
  if (const auto why = cross_process_problem(f); !why.empty()) JR_SKIP(why);
  claim_race(f, 4);
}

TEST_CASE("servers serving overlapping sets claim with served_only at once: each job once, by a server serving it",
          "[conformance][race][servers]") {
  Fixture f;
  served_race(f);
}

TEST_CASE("threads churning claims and completions never run one job twice at once", "[conformance][race]") {
  Fixture f;
  churn_race(f, 0);
}

TEST_CASE("threads and processes churning claims and completions never run one job twice at once",
          "[conformance][race][shared]") {
  Fixture f;
  if (const auto why = cross_process_problem(f); !why.empty()) JR_SKIP(why);
  churn_race(f, 2);
}

}  // namespace jobrepo::conformance

namespace jobrepo::conformance {

// The soak race (hidden: run it by its tag, "[soak]"): 4 processes x 4
// threads, each thread its own server, claim / progress / complete 2,000 due
// jobs that reschedule themselves at once, for 20 s (JOBREPO_SOAK_SECONDS to
// change); then every run is read back and audited.
TEST_CASE("soak: 4 processes x 4 threads churn 2,000 jobs; no overlapping runs, no errors", "[.][soak]") {
  Fixture f;
  if (const auto why = cross_process_problem(f); !why.empty()) JR_SKIP(why);
  constexpr int jobs = 2000;
  for (int i = 0; i < jobs; ++i) f.repo.create_job("soak-" + std::to_string(i), "d");
  const char* seconds = std::getenv("JOBREPO_SOAK_SECONDS");
  WorkerPlan plan;
  plan.mode = WorkerMode::churn;
  plan.duration = std::chrono::seconds(seconds ? std::atoi(seconds) : 20);
  plan.threads = 4;
  plan.claim_limit = 4;
  plan.server_prefix = "soak";
  ChildClaimers children(f.db.url, plan, 4);
  const auto started = std::chrono::steady_clock::now();
  children.go();
  const ClaimLog log = children.wait();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const Audit audit = audit_runs(f.repo, log.run_ids);
  const auto still_running = f.repo.interrupt_runs(0s).size();
  std::printf(
      "soak audit [%s]: %d jobs, 16 claimers, %.1f s: claims %zu (%.0f/s), runs read back %zu, jobs run %zu, "
      "overlaps %d, unfinished %d, missing %d, errors %zu, left running %zu\n",
      harness().name().c_str(), jobs, elapsed, log.run_ids.size(), log.run_ids.size() / elapsed,
      audit.runs - audit.missing, audit.jobs, audit.overlaps, audit.unfinished, audit.missing, log.errors.size(),
      still_running);
  INFO("errors:" << describe(log.errors));
  CHECK(log.errors.empty());
  CHECK(log.run_ids.size() > static_cast<std::size_t>(jobs));
  CHECK(audit.overlaps == 0);
  CHECK(audit.unfinished == 0);
  CHECK(audit.missing == 0);
  CHECK(still_running == 0);
}

}  // namespace jobrepo::conformance
