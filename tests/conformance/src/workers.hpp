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
// A child process running a Scheduler (scheduler_process_cases.cpp).
inline constexpr const char* scheduler_flag = "--jobrepo-conformance-scheduler";

// What a set of claimers did.
struct ClaimLog {
  std::vector<std::string> run_ids{};    // every run claimed
  std::vector<std::string> job_names{};  // the job of each, same order
  std::vector<std::string> errors{};     // "code: message" of every failed call
  void append(const ClaimLog& other);
};

enum class WorkerMode {
  claim_all,  // claim until a claim returns nothing
  churn,      // claim, report progress, complete with next_run_in 0; repeat until the time is up
};

struct WorkerPlan {
  WorkerMode mode = WorkerMode::claim_all;
  std::string plugin_id = "pi_system";
  std::string server_prefix{};  // each thread is server "<prefix>-<thread>"
  int threads = 1;
  Timestamp start_at;                     // all claimers start at this moment
  std::chrono::milliseconds duration{0};  // churn only
  int claim_limit = 1;                    // churn only
  bool served_only = false;               // RunJobsOptions::served_only of every claim
  // claim_all: each claimer stops with an error after claiming more runs
  // than this (a claim that hands out jobs with running runs never returns
  // nothing) or after time_limit, so that a broken store fails the case
  // within seconds instead of looping without end.
  int max_claims = 100000;
  std::chrono::milliseconds time_limit{30000};
};

// Runs plan.threads claimers on `store` in this process and returns when all end.
ClaimLog run_claimers(Store& store, const WorkerPlan& plan);

// Claimers in child processes of this executable: plan.threads claimers in
// each of `processes` children, on the database at `url`.
class ChildClaimers {
 public:
  // Starts the children and returns once every child has opened its store
  // and waits for go(), so that slow process start-up does not skew a race.
  ChildClaimers(const std::string& url, const WorkerPlan& plan, int processes);
  ChildClaimers(const ChildClaimers&) = delete;
  ChildClaimers& operator=(const ChildClaimers&) = delete;
  ~ChildClaimers();

  // Lets the children start claiming.
  void go();
  // Waits for the children to end and returns what they did. A child that
  // failed is reported in ClaimLog::errors.
  ClaimLog wait();

 private:
  std::chrono::milliseconds wait_limit_;
  std::string dir_;
  std::vector<int> pids_;
  std::vector<std::string> outputs_;
  ClaimLog log_;
};

// The child side of run_child_claimers.
// Whether a file exists at `path`.
bool exists(const std::string& path);

int worker_main(Harness& harness, int argc, char* argv[]);

// The child side of the scheduler processes.
int scheduler_main(Harness& harness, int argc, char* argv[]);

}  // namespace jobrepo::conformance
