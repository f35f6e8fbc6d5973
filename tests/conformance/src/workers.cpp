#include "workers.hpp"

#include <jobrepo/error.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <csignal>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo::conformance {

namespace {

using std::chrono::microseconds;

void claim_loop(Repository& repo, const std::string& server, const WorkerPlan& plan, ClaimLog& log) {
  std::this_thread::sleep_until(plan.start_at);
  const auto started = std::chrono::steady_clock::now();
  const auto end = started + plan.duration;
  int round = 0;
  for (;;) {
    try {
      if (plan.mode == WorkerMode::claim_all) {
        if (static_cast<int>(log.run_ids.size()) > plan.max_claims) {
          log.errors.push_back("claimer " + server + ": claimed " + std::to_string(log.run_ids.size()) +
                               " runs, more than the " + std::to_string(plan.max_claims) +
                               " due jobs: a claim returned jobs that had a running run");
          return;
        }
        if (std::chrono::steady_clock::now() - started > plan.time_limit) {
          log.errors.push_back("claimer " + server + ": still claiming after " +
                               std::to_string(plan.time_limit.count()) + " ms (" + std::to_string(log.run_ids.size()) +
                               " runs): claims never ran out of due jobs");
          return;
        }
        // Vary the batch size so that claims of different sizes interleave.
        const auto runs = repo.run_jobs(server, {.limit = 1 + (round++ % 4), .served_only = plan.served_only});
        if (runs.empty()) return;
        for (const auto& run : runs) {
          log.run_ids.push_back(run.private_id);
          log.job_names.push_back(run.job_name);
        }
      } else {
        if (std::chrono::steady_clock::now() >= end) return;
        const auto runs = repo.run_jobs(server, {.limit = plan.claim_limit, .served_only = plan.served_only});
        for (const auto& run : runs) {
          log.run_ids.push_back(run.private_id);
          log.job_names.push_back(run.job_name);
          repo.update_progress(run.private_id, 1, 1);
          repo.complete_run(run.private_id, microseconds(0));
        }
      }
    } catch (const Error& e) {
      log.errors.push_back(std::string(to_string(e.code())) + ": " + e.what());
      if (log.errors.size() > 20) return;
    }
  }
}

}  // namespace

void ClaimLog::append(const ClaimLog& other) {
  run_ids.insert(run_ids.end(), other.run_ids.begin(), other.run_ids.end());
  job_names.insert(job_names.end(), other.job_names.begin(), other.job_names.end());
  errors.insert(errors.end(), other.errors.begin(), other.errors.end());
}

ClaimLog run_claimers(Store& store, const WorkerPlan& plan) {
  std::vector<ClaimLog> logs(static_cast<std::size_t>(plan.threads));
  std::vector<std::thread> threads;
  for (int i = 0; i < plan.threads; ++i) {
    threads.emplace_back([&, i] {
      Repository repo(store, {plan.plugin_id});
      claim_loop(repo, plan.server_prefix + "-" + std::to_string(i), plan, logs[static_cast<std::size_t>(i)]);
    });
  }
  for (auto& t : threads) t.join();
  ClaimLog all;
  for (const auto& log : logs) all.append(log);
  return all;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

namespace {

void touch(const std::string& path) { std::ofstream(path).put('\n'); }

}  // namespace

ChildClaimers::ChildClaimers(const std::string& url, const WorkerPlan& plan, int processes)
    : wait_limit_(plan.duration + plan.time_limit + std::chrono::seconds(30)) {
  std::string pattern = "/tmp/jobrepo-conformance-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    log_.errors.push_back("internal: cannot make a temporary directory");
    return;
  }
  dir_ = pattern;
  for (int p = 0; p < processes; ++p) {
    outputs_.push_back(dir_ + "/child-" + std::to_string(p));
    std::vector<std::string> args = {"/proc/self/exe",
                                     worker_flag,
                                     plan.mode == WorkerMode::claim_all ? "claim_all" : "churn",
                                     url,
                                     plan.plugin_id,
                                     plan.server_prefix + "-p" + std::to_string(p),
                                     std::to_string(plan.threads),
                                     dir_ + "/go",
                                     std::to_string(plan.duration.count()),
                                     std::to_string(plan.claim_limit),
                                     std::to_string(plan.max_claims),
                                     std::to_string(plan.time_limit.count()),
                                     plan.served_only ? "served" : "any",
                                     outputs_.back()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
      log_.errors.push_back("internal: cannot start a child claimer");
      continue;
    }
    pids_.push_back(pid);
  }
  // Each child touches "<output>.ready" once its store is open.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (const auto& output : outputs_) {
    while (!exists(output + ".ready") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

void ChildClaimers::go() {
  if (!dir_.empty()) touch(dir_ + "/go");
}

ClaimLog ChildClaimers::wait() {
  go();  // never leave a child waiting
  // A child has its own limits; one that outlives them by far is killed.
  const auto deadline = std::chrono::steady_clock::now() + wait_limit_;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    int status = 0;
    bool killed = false;
    while (waitpid(pids_[i], &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline && !killed) {
        kill(pids_[i], SIGKILL);
        killed = true;
        log_.errors.push_back("child claimer " + std::to_string(i) + " did not end in time and was killed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!killed && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
      log_.errors.push_back("child claimer " + std::to_string(i) + " ended abnormally (status " +
                            std::to_string(status) + ")");
    }
    std::ifstream in(outputs_[i]);
    std::string kind;
    while (std::getline(in, kind, '\t')) {
      std::string a, b;
      std::getline(in, a, '\t');
      std::getline(in, b);
      if (kind == "claim") {
        log_.job_names.push_back(a);
        log_.run_ids.push_back(b);
      } else {
        log_.errors.push_back(a + ": " + b);
      }
    }
  }
  pids_.clear();
  return log_;
}

ChildClaimers::~ChildClaimers() {
  if (!pids_.empty()) wait();
  if (!dir_.empty()) {
    for (const auto& output : outputs_) {
      std::remove(output.c_str());
      std::remove((output + ".ready").c_str());
    }
    std::remove((dir_ + "/go").c_str());
    rmdir(dir_.c_str());
  }
}

int worker_main(Harness& harness, int argc, char* argv[]) {
  if (argc != 12) {
    std::fprintf(stderr, "conformance worker: expected 12 arguments, got %d\n", argc);
    return 2;
  }
  WorkerPlan plan;
  plan.mode = std::string(argv[0]) == "churn" ? WorkerMode::churn : WorkerMode::claim_all;
  const std::string url = argv[1];
  plan.plugin_id = argv[2];
  plan.server_prefix = argv[3];
  plan.threads = std::atoi(argv[4]);
  const std::string go_file = argv[5];
  plan.duration = std::chrono::milliseconds(std::atoll(argv[6]));
  plan.claim_limit = std::atoi(argv[7]);
  plan.max_claims = std::atoi(argv[8]);
  plan.time_limit = std::chrono::milliseconds(std::atoll(argv[9]));
  plan.served_only = std::string(argv[10]) == "served";
  const std::string output = argv[11];
  std::ofstream out(output);
  ClaimLog log;
  try {
    auto store = harness.open(url);
    touch(output + ".ready");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!exists(go_file) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    plan.start_at = Clock::now();
    log = run_claimers(*store, plan);
  } catch (const Error& e) {
    log.errors.push_back(std::string(to_string(e.code())) + ": " + e.what());
  }
  for (std::size_t i = 0; i < log.run_ids.size(); ++i)
    out << "claim\t" << log.job_names[i] << '\t' << log.run_ids[i] << '\n';
  for (const auto& error : log.errors) {
    const auto colon = error.find(": ");
    out << "error\t" << error.substr(0, colon) << '\t' << error.substr(colon + 2) << '\n';
  }
  return out.good() ? 0 : 1;
}

}  // namespace jobrepo::conformance
