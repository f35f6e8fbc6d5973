// A scheduler process for the multi-process tests. Prints one line per event:
//   <unix ms> <event> <job> <run id>
// Usage: jobrepo_scheduler_node URL SERVER_ID churn|long SECONDS
//   churn: 10 short jobs that reschedule at once; stops after SECONDS.
//   long:  one job "long" that runs until cancelled; runs until killed.
#include <jobrepo/jobrepo.hpp>

#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

using namespace std::chrono_literals;

int main(int argc, char* argv[]) try {
  if (argc != 5) {
    std::cerr << "usage: jobrepo_scheduler_node URL SERVER_ID churn|long SECONDS\n";
    return 2;
  }
  const std::string url = argv[1], server = argv[2], mode = argv[3];
  const int seconds = std::stoi(argv[4]);
  auto store = jobrepo::open_store(url);
  store->migrate();
  std::mutex out;
  jobrepo::SchedulerOptions options;
  options.worker_threads = 4;
  options.claim_interval = 200ms;
  options.monitor_interval = 250ms;
  options.interrupt_threshold = 2s;
  options.on_event = [&](const jobrepo::SchedulerEvent& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(jobrepo::Clock::now().time_since_epoch());
    const std::lock_guard lock(out);
    std::cout << ms.count() << ' ' << jobrepo::to_string(e.kind) << ' ' << (e.job_name.empty() ? "-" : e.job_name)
              << ' ' << (e.run_id.empty() ? "-" : e.run_id) << ' ' << e.detail << std::endl;
  };
  jobrepo::Scheduler scheduler(server, *store, options);
  if (mode == "churn") {
    for (int i = 0; i < 10; ++i) {
      scheduler.register_job(jobrepo::make_job("churn-" + std::to_string(i), "a short job", [](jobrepo::JobContext& c) {
        thread_local std::minstd_rand random{std::random_device{}()};
        c.sleep_for(std::chrono::milliseconds(2 + random() % 10));
        return std::chrono::microseconds(0);
      }));
    }
  } else {
    scheduler.register_job(jobrepo::make_job("long", "runs until cancelled", [](jobrepo::JobContext& c) {
      while (c.sleep_for(1h)) {
      }
      c.throw_if_cancelled();
      return std::chrono::microseconds(0);
    }));
  }
  scheduler.start();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  scheduler.stop();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "jobrepo_scheduler_node: " << e.what() << std::endl;
  return 1;
}
