// Helpers of the Scheduler tests (scheduler_tests.cpp, edge_tests.cpp): an
// event recorder, fast options, a fixture with a database, a blocking job.
#pragma once

#include "backend.hpp"

#include <jobrepo/jobrepo.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jobrepo::test::scheduler {

using namespace std::chrono_literals;
using jobrepo::SchedulerEvent;
using Steady = std::chrono::steady_clock;

inline jobrepo::test::Databases databases;

// Events seen, with the moment each arrived.
struct Recorder {
  struct Entry {
    SchedulerEvent event;
    Steady::time_point at;
  };
  mutable std::mutex mutex;
  std::vector<Entry> entries;

  std::function<void(const SchedulerEvent&)> callback() {
    return [this](const SchedulerEvent& e) {
      const std::lock_guard lock(mutex);
      entries.push_back({e, Steady::now()});
    };
  }
  int count(SchedulerEvent::Kind kind, const std::string& job) const {
    const std::lock_guard lock(mutex);
    return static_cast<int>(std::count_if(entries.begin(), entries.end(), [&](const Entry& e) {
      return e.event.kind == kind && e.event.job_name == job;
    }));
  }
  std::vector<Entry> of(SchedulerEvent::Kind kind, const std::string& job) const {
    const std::lock_guard lock(mutex);
    std::vector<Entry> out;
    for (const auto& e : entries) {
      if (e.event.kind == kind && e.event.job_name == job) out.push_back(e);
    }
    return out;
  }
  std::string dump() const {
    const std::lock_guard lock(mutex);
    std::string out;
    for (const auto& e : entries) {
      out += std::string(jobrepo::to_string(e.event.kind)) + " " + e.event.job_name + " " + e.event.detail + "\n";
    }
    return out;
  }
};

inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto end = Steady::now() + timeout;
  while (Steady::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

inline jobrepo::SchedulerOptions fast_options(Recorder& recorder) {
  jobrepo::SchedulerOptions options;
  options.worker_threads = 2;
  options.claim_interval = 100ms;
  options.monitor_interval = 100ms;
  options.interrupt_threshold = 1s;
  options.stop_timeout = 5s;
  options.backoff.initial = 200ms;
  options.backoff.jitter = 0.0;
  options.on_event = recorder.callback();
  return options;
}

struct Fixture {
  std::string url = databases.make();
  std::unique_ptr<jobrepo::Store> store = jobrepo::open_store(url);
  jobrepo::Repository repo = (store->migrate(), jobrepo::Repository(*store));
  Recorder recorder;
};

// A job that blocks until cancelled and records why it stopped.
inline std::shared_ptr<jobrepo::JobHandler> blocking_job(const std::string& name, std::atomic<int>& reason) {
  return jobrepo::make_job(name, "blocks until cancelled", [&reason](jobrepo::JobContext& c) {
    c.report_progress(3, 10);
    while (c.sleep_for(1h)) {
    }
    reason = static_cast<int>(c.cancel_reason());
    c.throw_if_cancelled();
    return std::chrono::microseconds(0);
  });
}

// A blocking_job's handler runs (it reported its progress): a cancel now
// reaches the handler, not a run whose handler has yet to start.
inline bool handler_started(jobrepo::Scheduler& scheduler) {
  const auto executing = scheduler.executing();
  return executing.size() == 1 && executing.front().completed_count == 3;
}

}  // namespace jobrepo::test::scheduler
