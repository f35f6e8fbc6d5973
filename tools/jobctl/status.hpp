// jobctl serve --http (docs/operations.md, "HTTP: metrics, health, status
// page"): what the server shows of itself and of the cluster, and the HTTP
// server (http_server.hpp) that serves it. Read-only.
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "views.hpp"

#include <jobrepo/jobrepo.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jobctl {

// The cluster as the store last showed it.
struct ClusterSnapshot {
  std::chrono::steady_clock::time_point taken{};
  jobrepo::Timestamp taken_at{};  // the same moment on the system clock
  std::vector<JobView> jobs;
  std::vector<jobrepo::Run> runs;      // the 50 newest (jobctl runs)
  std::vector<jobrepo::Run> failures;  // the 10 newest failed ones
  std::string error;                   // why the last reading failed, if it did
};

// What the HTTP endpoints show; the serve loop feeds it.
class StatusBoard {
 public:
  StatusBoard(std::string server_id, Metrics& metrics, jobrepo::SchedulerOptions options);

  // While serve waits for its database: the reason healthz gives.
  void set_waiting(const std::string& reason);
  // The scheduler serving (nullptr while none): its health and local runs.
  void set_scheduler(const jobrepo::Scheduler* scheduler, std::vector<std::string> registered);
  // The period of each scheduled job served here, in seconds.
  void set_periods(std::map<std::string, double> periods);
  // Reads the cluster from the store (at most every few seconds: the
  // refresher calls it; scrapes never do).
  void refresh(jobrepo::Repository& repo);

  std::string metrics_text() const;
  // 200 "ok", or 503 and why not.
  std::pair<int, std::string> health() const;
  // Why serve would not recover by itself: a loop of the scheduler (or the
  // status refresher) that stopped going round; empty otherwise, also while
  // it waits for the database or stops. The systemd watchdog's test.
  std::string stuck() const;
  std::string page_html() const;
  std::string api_jobs() const;  // as jobctl jobs --json
  std::string api_runs() const;  // as jobctl runs --json

 private:
  std::string stuck_locked(const jobrepo::SchedulerHealth& health, std::chrono::steady_clock::time_point now) const;

  const std::string server_id_;
  Metrics& metrics_;
  const jobrepo::SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::string waiting_;
  const jobrepo::Scheduler* scheduler_ = nullptr;
  std::vector<std::string> registered_;
  std::map<std::string, double> periods_;
  ClusterSnapshot snapshot_;
};

// The HTTP server, on a thread of its own from start() to stop().
class HttpServer {
 public:
  // `names`: Host names it answers besides its address (--http-host).
  HttpServer(StatusBoard& board, HttpAddress address, std::vector<std::string> names = {});
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();
  // Binds (ServeError when the address cannot be had) and starts serving.
  void start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobctl
