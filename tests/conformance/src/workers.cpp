#include "workers.hpp"

#include <jobrepo/error.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo::conformance {

namespace {

using std::chrono::microseconds;

void claim_loop(Repository& repo, const std::string& server, const WorkerPlan& plan, ClaimLog& log) {
  std::this_thread::sleep_until(plan.start_at);
  const auto end = std::chrono::steady_clock::now() + plan.duration;
  int round = 0;
  for (;;) {
    try {
      if (plan.mode == WorkerMode::claim_all) {
        // Vary the batch size so that claims of different sizes interleave.
        const auto runs = repo.run_jobs(server, {.limit = 1 + (round++ % 4)});
        if (runs.empty()) return;
        for (const auto& run : runs) {
          log.run_ids.push_back(run.private_id);
          log.job_names.push_back(run.job_name);
        }
      } else {
        if (std::chrono::steady_clock::now() >= end) return;
        const auto runs = repo.run_jobs(server);
        for (const auto& run : runs) {
          log.run_ids.push_back(run.private_id);
          log.job_names.push_back(run.job_name);
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

ClaimLog run_child_claimers(const std::string& url, const WorkerPlan& plan, int processes) {
  char dir_template[] = "/tmp/jobrepo-conformance-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) return ClaimLog{{}, {}, {"internal: cannot make a temporary directory"}};
  const auto start_us = std::chrono::duration_cast<microseconds>(plan.start_at.time_since_epoch()).count();
  std::vector<pid_t> children;
  std::vector<std::string> outputs;
  ClaimLog all;
  for (int p = 0; p < processes; ++p) {
    outputs.push_back(std::string(dir) + "/child-" + std::to_string(p));
    std::vector<std::string> args = {"/proc/self/exe",
                                     worker_flag,
                                     plan.mode == WorkerMode::claim_all ? "claim_all" : "churn",
                                     url,
                                     plan.plugin_id,
                                     plan.server_prefix + "-p" + std::to_string(p),
                                     std::to_string(plan.threads),
                                     std::to_string(start_us),
                                     std::to_string(plan.duration.count()),
                                     outputs.back()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
      all.errors.push_back("internal: cannot start a child claimer");
      continue;
    }
    children.push_back(pid);
  }
  for (std::size_t i = 0; i < children.size(); ++i) {
    int status = 0;
    waitpid(children[i], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      all.errors.push_back("child claimer " + std::to_string(i) + " ended abnormally (status " +
                           std::to_string(status) + ")");
    }
    std::ifstream in(outputs[i]);
    std::string kind;
    while (std::getline(in, kind, '\t')) {
      std::string a, b;
      std::getline(in, a, '\t');
      std::getline(in, b);
      if (kind == "claim") {
        all.job_names.push_back(a);
        all.run_ids.push_back(b);
      } else {
        all.errors.push_back(a + ": " + b);
      }
    }
    in.close();
    std::remove(outputs[i].c_str());
  }
  rmdir(dir);
  return all;
}

int worker_main(Harness& harness, int argc, char* argv[]) {
  if (argc != 8) {
    std::fprintf(stderr, "conformance worker: expected 8 arguments, got %d\n", argc);
    return 2;
  }
  WorkerPlan plan;
  plan.mode = std::string(argv[0]) == "churn" ? WorkerMode::churn : WorkerMode::claim_all;
  const std::string url = argv[1];
  plan.plugin_id = argv[2];
  plan.server_prefix = argv[3];
  plan.threads = std::atoi(argv[4]);
  plan.start_at = Timestamp(microseconds(std::atoll(argv[5])));
  plan.duration = std::chrono::milliseconds(std::atoll(argv[6]));
  std::ofstream out(argv[7]);
  ClaimLog log;
  try {
    auto store = harness.open(url);
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
