// jobctl serve's metrics (docs/operations.md, "Metrics"): counts from the
// Scheduler's events and from every store call (MeteredStore), and the
// Prometheus text of them with the cluster-wide values of a snapshot.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/scheduler.hpp>
#include <jobrepo/store_wrapper.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace jobctl {

// What one server counted. Thread-safe.
class Metrics {
 public:
  // The upper bounds of the run-duration histogram's buckets, in seconds.
  static constexpr std::array<double, 12> buckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};

  // completed / failed / interrupted (this server ended the run) and
  // interrupted_peer (this server interrupted another's) count as runs
  // ended here; claimed as claims.
  void on_event(const jobrepo::SchedulerEvent& event);
  void store_call_succeeded();
  void store_call_failed(jobrepo::ErrorCode code);

  struct Values {
    bool up = false;                                                // the last store call succeeded
    std::map<std::pair<std::string, std::string>, long long> runs;  // (job, status) -> count
    struct Histogram {
      std::array<long long, buckets.size()> counts{};  // per bucket, not cumulative
      long long count = 0;
      double sum = 0;
    };
    std::map<std::string, Histogram> durations;  // by job
    long long claims = 0;
    std::map<std::string, long long> store_errors;  // by code
  };
  Values values() const;

 private:
  mutable std::mutex mutex_;
  Values values_;
};

// What the cluster looks like from the store, as of its last reading.
struct ClusterJob {
  std::string name;
  bool paused = false;
  std::optional<jobrepo::Timestamp> last_success;
  std::optional<jobrepo::Timestamp> next_run;  // empty when no time makes it due
  bool gave_up = false;                        // jobrepo::DueState::gave_up
  std::int64_t consecutive_failures{};
  std::optional<jobrepo::Status> last_status{};  // of its last ended run, on any server
  std::vector<std::string> live_server_ids{};    // the live servers that serve it
};

// The writer of this server's scheduler (jobrepo::SchedulerHealth): the
// store call of outcomes in flight, the outcomes not stored yet, stalls.
struct WriterState {
  double call_seconds = 0;  // how long the call in flight has run; 0: none
  std::size_t outcomes_waiting = 0;
  std::int64_t stalls = 0;
};

// The Prometheus text exposition (version 0.0.4) of `values`, the jobs
// running here (`running_here`: job names), the cluster's jobs, the
// periods of the scheduled jobs served here (seconds, by job name) and the
// writer's state.
std::string prometheus_text(const Metrics::Values& values, const std::vector<std::string>& registered,
                            const std::vector<std::string>& running_here, const std::vector<ClusterJob>& cluster,
                            const std::map<std::string, double>& periods = {}, const WriterState& writer = {});

// A Store that tells `on_success` / `on_failure` of every call's outcome
// (for jobrepo_up, jobrepo_store_errors_total and outage logging). Each
// call is forwarded; what it throws is rethrown.
class MeteredStore final : public jobrepo::StoreWrapper {
 public:
  MeteredStore(jobrepo::Store& target, std::function<void()> on_success,
               std::function<void(const jobrepo::Error&)> on_failure)
      : StoreWrapper(target), on_success_(std::move(on_success)), on_failure_(std::move(on_failure)) {}

 protected:
  void around(const char* operation, const std::function<void()>& call) override;

 private:
  std::function<void()> on_success_;
  std::function<void(const jobrepo::Error&)> on_failure_;
};

}  // namespace jobctl
