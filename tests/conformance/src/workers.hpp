// Claim loops shared by the race cases, in threads of this process or in
// child processes (this same executable, started with worker_flag).
#pragma once

#include <jobrepo/conformance.hpp>
#include <jobrepo/repository.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace jobrepo::conformance {

inline constexpr const char* worker_flag = "--jobrepo-conformance-worker";

// What a set of claimers did.
struct ClaimLog {
  std::vector<std::string> run_ids{};    // every run claimed
  std::vector<std::string> job_names{};  // the job of each, same order
  std::vector<std::string> errors{};     // "code: message" of every failed call
  void append(const ClaimLog& other);
};

enum class WorkerMode {
  claim_all,  // claim until a claim returns nothing
  churn,      // claim one, complete it with next_run_in 0, repeat until the time is up
};

struct WorkerPlan {
  WorkerMode mode = WorkerMode::claim_all;
  std::string plugin_id = "pi_system";
  std::string server_prefix{};  // each thread is server "<prefix>-<thread>"
  int threads = 1;
  Timestamp start_at;                     // all claimers start at this moment
  std::chrono::milliseconds duration{0};  // churn only
};

// Runs plan.threads claimers on `store` in this process and returns when all end.
ClaimLog run_claimers(Store& store, const WorkerPlan& plan);

// Runs plan.threads claimers in each of `processes` children of this
// executable, on the database at `url`; returns when all children end.
// A child that fails is reported in ClaimLog::errors.
ClaimLog run_child_claimers(const std::string& url, const WorkerPlan& plan, int processes);

// The child side of run_child_claimers.
int worker_main(Harness& harness, int argc, char* argv[]);

}  // namespace jobrepo::conformance
