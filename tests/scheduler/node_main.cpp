// A scheduler process for the multi-process tests. Prints one line per event:
//   <unix ms> <event> <job> <run id>
// Usage: jobrepo_scheduler_node URL SERVER_ID churn|long|stubborn SECONDS
//   churn:    10 short jobs that reschedule at once; stops after SECONDS.
//   long:     one job "long" that runs until cancelled; runs until killed.
//   stubborn: one job "stubborn" whose handler ignores cancellation and
//             works for SECONDS; while the file JOBREPO_NODE_OUTAGE_FILE
//             exists, this process's store calls fail (unavailable), as
//             when its database is out of reach.
#include <jobrepo/jobrepo.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include <unistd.h>

using namespace std::chrono_literals;

namespace {

// A store that fails every call while the outage file exists.
class OutageStore final : public jobrepo::StoreWrapper {
 public:
  OutageStore(jobrepo::Store& target, std::string file) : StoreWrapper(target), file_(std::move(file)) {}

 protected:
  void around(const char* operation, const std::function<void()>& call) override {
    if (!file_.empty() && ::access(file_.c_str(), F_OK) == 0) {
      throw jobrepo::Error(jobrepo::ErrorCode::unavailable, std::string(operation) + ": injected outage");
    }
    call();
  }

 private:
  std::string file_;
};

}  // namespace

int main(int argc, char* argv[]) try {
  if (argc != 5) {
    std::cerr << "usage: jobrepo_scheduler_node URL SERVER_ID churn|long|stubborn SECONDS\n";
    return 2;
  }
  const std::string url = argv[1], server = argv[2], mode = argv[3];
  const int seconds = std::stoi(argv[4]);
  auto real_store = jobrepo::open_store(url);
  real_store->migrate();
  const char* outage = std::getenv("JOBREPO_NODE_OUTAGE_FILE");
  OutageStore wrapped(*real_store, outage ? outage : "");
  jobrepo::Store* store = &wrapped;
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
  } else if (mode == "stubborn") {
    scheduler.register_job(jobrepo::make_job("stubborn", "ignores cancellation", [seconds](jobrepo::JobContext&) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
      while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
      return std::chrono::microseconds(1h);
    }));
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
