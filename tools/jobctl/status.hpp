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
#include <string_view>
#include <thread>
#include <vector>

namespace jobctl {

// The newest runs of one job, shared between snapshots while they do not change.
using JobRuns = std::shared_ptr<const std::vector<jobrepo::Run>>;

// The cluster as the store last showed it.
struct ClusterSnapshot {
  std::chrono::steady_clock::time_point taken{};
  jobrepo::Timestamp taken_at{};  // the same moment on the system clock
  std::vector<JobView> jobs;
  std::vector<jobrepo::Run> runs;           // the newest StatusBoard::runs_kept (jobctl runs)
  std::vector<jobrepo::Run> failures;       // the 10 newest failed ones
  std::map<std::string, JobRuns> job_runs;  // by job: its newest StatusBoard::runs_per_job
  // By job: its calendar schedule (read from Job::schedule, "cron EXPR in
  // ZONE"), whose zone its times are shown in; jobs without one show UTC.
  std::map<std::string, jobrepo::CronSchedule> calendars;
  std::string error;  // why the last reading failed, if it did
};

// What the HTTP endpoints show; the serve loop feeds it. Thread-safe; the
// readers (the HTTP loop) only read memory, never the store.
class StatusBoard {
 public:
  // How often serve's refresher calls refresh().
  static constexpr std::chrono::seconds refresh_interval{5};
  // Runs kept: the newest of the plugin (/api/runs), and the newest of each
  // job (/api/runs?job=NAME).
  static constexpr int runs_kept = 50;
  static constexpr int runs_per_job = 20;

  StatusBoard(std::string server_id, Metrics& metrics, jobrepo::SchedulerOptions options);

  // While serve waits for its database: the reason healthz gives.
  void set_waiting(const std::string& reason);
  // The scheduler serving (nullptr while none): its health and local runs.
  void set_scheduler(const jobrepo::Scheduler* scheduler, std::vector<std::string> registered);
  // The period of each scheduled job served here, in seconds.
  void set_periods(std::map<std::string, double> periods);
  // Reads the cluster from the store (every refresh_interval: the refresher
  // calls it, one thread at a time; scrapes and pages never do). A job's
  // newest runs are read again only when its row or running run shows a
  // change (a run started, reported progress or ended), or a minute after
  // they were read (runs pruned), so a refresh costs a few reads, not one
  // per job.
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
  // As jobctl runs --json, from the last reading: the newest runs, or with
  // `job=NAME` that job's ("[]" for a name no job has), at most `limit=N`
  // (1 to runs_kept, or to runs_per_job with job). 200 and the JSON, or 400
  // and one line saying what is wrong with `query` (the URL's query, as
  // sent: percent-encoded, '+' a space; an unknown or repeated parameter,
  // a limit out of range).
  std::pair<int, std::string> api_runs(std::string_view query = {}) const;

 private:
  std::string stuck_locked(const jobrepo::SchedulerHealth& health, std::chrono::steady_clock::time_point now) const;
  // What refresh() keeps between readings (its thread's alone).
  struct RunsRead {
    std::string key;  // what the job's row and running run said of its runs
    std::chrono::steady_clock::time_point read{};
    JobRuns runs;
  };
  std::map<std::string, JobRuns> read_job_runs(jobrepo::Repository& repo, const std::vector<JobView>& jobs,
                                               std::chrono::steady_clock::time_point now);
  std::map<std::string, jobrepo::CronSchedule> read_calendars(const std::vector<JobView>& jobs);

  const std::string server_id_;
  Metrics& metrics_;
  const jobrepo::SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::string waiting_;
  const jobrepo::Scheduler* scheduler_ = nullptr;
  std::vector<std::string> registered_;
  std::map<std::string, double> periods_;
  ClusterSnapshot snapshot_;
  // refresh()'s own, not under mutex_.
  std::map<std::string, RunsRead> runs_read_;
  std::map<std::string, std::optional<jobrepo::CronSchedule>> calendar_of_schedule_;
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
