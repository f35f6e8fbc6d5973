// The Scheduler: throughput with no-op handlers and the lag from due time to
// start; wake-up latency of an idle scheduler.
#include "common.hpp"

#include <jobrepo/jobrepo.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace jobrepo_bench {

using namespace std::chrono_literals;
using std::chrono::microseconds;

namespace {

// Counts the store calls the Scheduler makes: how many, how many rows, how long.
class CountingStore final : public jobrepo::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  struct Counter {
    std::atomic<std::int64_t> calls{0}, rows{0}, micros{0};
    json to_json() const {
      const auto c = calls.load();
      return json{{"calls", c},
                  {"rows_per_call", c > 0 ? static_cast<double>(rows.load()) / static_cast<double>(c) : 0.0},
                  {"ms_per_call", c > 0 ? static_cast<double>(micros.load()) / 1000.0 / static_cast<double>(c) : 0.0}};
    }
  };
  Counter claims, transitions;
  std::atomic<bool> counting{false};

  std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest& request) override {
    const auto t0 = Steady::now();
    auto runs = StoreWrapper::claim_runs(request);
    count(claims, t0, runs.size());
    return runs;
  }
  std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> changes) override {
    const auto t0 = Steady::now();
    auto runs = StoreWrapper::transition_runs(changes);
    count(transitions, t0, changes.size());
    return runs;
  }

 private:
  void count(Counter& c, Steady::time_point t0, std::size_t rows) {
    if (!counting) return;
    ++c.calls;
    c.rows += static_cast<std::int64_t>(rows);
    c.micros += std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - t0).count();
  }
};

double ms_of(jobrepo::Timestamp a, jobrepo::Timestamp b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// raw_exec for the statements that change every job while the scheduler
// runs: PostgreSQL may pick them as a deadlock's victim (they lock the jobs
// in table order, the scheduler in its own); they are tried again.
void raw_exec_retrying(const Target& t, const std::string& sql) {
  for (int attempt = 1;; ++attempt) {
    try {
      raw_exec(t, sql);
      return;
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      if (attempt >= 20 || (what.find("deadlock detected") == std::string::npos &&  // PostgreSQL
                            what.find("Deadlock found") == std::string::npos)) {    // MariaDB
        throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

// Throughput: `jobs` due jobs whose no-op handlers return next_run_in 0, so
// that every job is due again as soon as its run is stored (a backlog that
// never drains); after a 1 s warm-up, completed runs are counted for
// `seconds`. Lag: then the handlers return a period P of 2 s and the due
// times of as many jobs as offer half the measured rate are spread evenly
// over P (the others move a day ahead), so that runs fall due at a steady
// half of capacity. A run's lag is its handler's start minus its due time,
// the end of the job's previous run plus P (the store writes both in one
// statement; all clocks are this machine's). Without `with_lag` the lag is
// not measured (its fields are null): the peer workload needs the rate only.
json scheduler_throughput(const Target& t, const Options& o, int worker_threads, int local_queue, bool with_lag) {
  reset(t, o.jobs, 1, o.scheduler_history);
  auto real = jobrepo::open_store(t.url, {std::max(4, worker_threads / 4), std::chrono::milliseconds(10000)});
  CountingStore store(*real);
  std::mutex mutex;
  std::map<std::string, jobrepo::Timestamp> started;  // run id -> handler start
  std::atomic<std::int64_t> period_us{0};
  std::atomic<bool> counting{false};
  std::atomic<std::int64_t> completed{0}, errors{0};
  std::vector<Steady::time_point> stored;  // when each completion counted was stored (its event), under `mutex`
  jobrepo::SchedulerOptions options;
  options.worker_threads = worker_threads;
  options.local_queue = local_queue;
  options.claim_interval = 1s;
  options.on_event = [&](const jobrepo::SchedulerEvent& e) {
    if (e.kind == jobrepo::SchedulerEvent::Kind::completed && counting) {
      ++completed;
      const std::lock_guard lock(mutex);
      stored.push_back(Steady::now());
    }
    if (e.kind == jobrepo::SchedulerEvent::Kind::error && ++errors == 1) {
      std::cerr << "jobrepo-bench: scheduler: " << e.detail << "\n";
    }
  };
  jobrepo::Scheduler scheduler("bench", store, options);
  const auto registering = Steady::now();
  for (int i = 0; i < o.jobs; ++i) {
    scheduler.register_job(jobrepo::make_job("job-" + std::to_string(i), "bench job", [&](jobrepo::JobContext& c) {
      const auto now = jobrepo::Clock::now();
      {
        const std::lock_guard lock(mutex);
        started.emplace(c.run_id(), now);
      }
      return microseconds(period_us.load());
    }));
  }
  const double register_s = std::chrono::duration<double>(Steady::now() - registering).count();
  scheduler.start();
  std::this_thread::sleep_for(1s);
  store.counting = true;
  const auto measured_from = Steady::now();
  counting = true;
  std::this_thread::sleep_for(seconds_of(o.seconds));
  counting = false;
  const auto measured_to = Steady::now();
  store.counting = false;
  const double rate = static_cast<double>(completed.load()) / o.seconds;
  // A writer that stalls stores nothing for a while: the fewest completions
  // stored in any 0.5 s window of the measured time, and the longest time
  // without one (from the window's start, between two, to its end).
  std::int64_t fewest = -1;
  double longest_gap_ms = 0;
  {
    const std::lock_guard lock(mutex);
    std::sort(stored.begin(), stored.end());
    for (auto from = measured_from; from + 500ms <= measured_to; from += 500ms) {
      const auto n = std::count_if(stored.begin(), stored.end(),
                                   [&](const Steady::time_point at) { return at >= from && at < from + 500ms; });
      fewest = fewest < 0 ? n : std::min<std::int64_t>(fewest, n);
    }
    auto last = measured_from;
    for (const auto at : stored) {
      longest_gap_ms = std::max(longest_gap_ms, std::chrono::duration<double, std::milli>(at - last).count());
      last = at;
    }
    longest_gap_ms = std::max(longest_gap_ms, std::chrono::duration<double, std::milli>(measured_to - last).count());
  }
  json row{{"workload", "scheduler"},
           {"backend", t.backend},
           {"jobs", o.jobs},
           {"worker_threads", worker_threads},
           {"local_queue", local_queue},
           {"seconds", o.seconds},
           {"runs_per_second", rate},
           {"history_runs", o.scheduler_history},
           {"fewest_per_half_second", fewest < 0 ? json(nullptr) : json(fewest)},
           {"longest_gap_ms", longest_gap_ms},
           {"claims", store.claims.to_json()},
           {"writes", store.transitions.to_json()},
           {"register_seconds", register_s}};
  if (!with_lag) {
    scheduler.stop();
    row["lag_p50_ms"] = nullptr;
    row["lag_p99_ms"] = nullptr;
    row["errors"] = errors.load();
    return row;
  }
  // The lag at half the throughput.
  const double period_s = 2.0;
  const int active = std::clamp(static_cast<int>(rate * 0.5 * period_s), 1, o.jobs);
  // First every job goes a day ahead as its run ends (so the spread below
  // races with no writer), then the active ones are spread over the period.
  period_us = std::chrono::duration_cast<microseconds>(24h).count();
  raw_exec_retrying(t,
                    t.backend == "sqlite" ? "UPDATE job SET next_scheduled_run = next_scheduled_run + 86400000000"
                    : t.backend == "mariadb"
                        ? "UPDATE job SET next_scheduled_run = UTC_TIMESTAMP(6) + INTERVAL 1 DAY"
                        : "UPDATE job SET next_scheduled_run = now() + interval '1 day' WHERE (plugin_id, name) IN"
                          " (SELECT plugin_id, name FROM job FOR UPDATE SKIP LOCKED)");  // running ones end a day ahead
  std::this_thread::sleep_for(500ms);
  period_us = static_cast<std::int64_t>(period_s * 1e6);
  const auto spread_at = jobrepo::Clock::now();
  const std::string p = std::to_string(period_us.load()), a = std::to_string(active);
  raw_exec_retrying(
      t,
      t.backend == "sqlite"
          ? "UPDATE job SET next_scheduled_run = CASE WHEN CAST(substr(name, 5) AS INTEGER) < " + a + " THEN " +
                std::to_string(std::chrono::duration_cast<microseconds>(spread_at.time_since_epoch()).count()) +
                " + CAST(substr(name, 5) AS INTEGER) * " + p + " / " + a + " ELSE " +
                std::to_string(std::chrono::duration_cast<microseconds>((spread_at + 24h).time_since_epoch()).count()) +
                " END"
      : t.backend == "mariadb" ? "UPDATE job SET next_scheduled_run = IF(CAST(SUBSTR(name, 5) AS SIGNED) < " + a +
                                     ", UTC_TIMESTAMP(6) + INTERVAL (CAST(SUBSTR(name, 5) AS SIGNED) * " + p + " DIV " +
                                     a + ") MICROSECOND, UTC_TIMESTAMP(6) + INTERVAL 1 DAY)"
                               : "UPDATE job SET next_scheduled_run = CASE WHEN CAST(substr(name, 5) AS integer) < " +
                                     a + " THEN now() + CAST(substr(name, 5) AS bigint) * " + p + " / " + a +
                                     " * interval '1 microsecond' ELSE now() + interval '1 day' END");
  std::this_thread::sleep_for(seconds_of(period_s + 1.5));  // every active job runs with the period
  const auto window_start = jobrepo::Clock::now();
  std::this_thread::sleep_for(seconds_of(std::max(o.seconds, period_s)));
  const auto window_end = jobrepo::Clock::now();
  scheduler.stop();
  jobrepo::Repository repo(*real);
  auto runs = repo.list_runs({.limit = -1});
  std::sort(runs.begin(), runs.end(), [](const jobrepo::Run& a, const jobrepo::Run& b) {
    return a.job_name != b.job_name ? a.job_name < b.job_name : a.create_time < b.create_time;
  });
  std::vector<double> lag_ms;
  const auto period = microseconds(period_us.load());
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const auto& previous = runs[i - 1];
    const auto& run = runs[i];
    if (previous.job_name != run.job_name || !previous.end_time || previous.create_time < spread_at) continue;
    const auto start = started.find(run.private_id);
    if (start == started.end() || start->second < window_start || start->second > window_end) continue;
    lag_ms.push_back(ms_of(*previous.end_time + period, start->second));
  }
  row["lag_period_seconds"] = period_s;
  row["lag_jobs"] = active;
  row["lag_offered_runs_per_second"] = active / period_s;
  row["lag_p50_ms"] = percentile(lag_ms, 0.5);
  row["lag_p99_ms"] = percentile(lag_ms, 0.99);
  row["lag_samples"] = lag_ms.size();
  row["errors"] = errors.load();
  return row;
}

// The other process of the wake-up workload: for each line on stdin, makes
// job "wake" due now and prints the steady clock (CLOCK_MONOTONIC, the same
// in every process) read just before, in nanoseconds.
int wake_child_main(const std::string& url) {
  auto store = jobrepo::open_store(url);
  jobrepo::Repository repo(*store);
  char line[16];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    const auto t0 = Steady::now().time_since_epoch();
    repo.update_job_next_run("wake", 0s);
    std::printf("%lld\n", static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(t0).count()));
    std::fflush(stdout);
  }
  return 0;
}

namespace {

// A child process of this tool running wake_child_main, spoken to by pipes.
class WakeChild {
 public:
  WakeChild(const std::string& self, const std::string& url) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) throw std::runtime_error("wakeup: pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addclose(&actions, to_child[1]);
    posix_spawn_file_actions_addclose(&actions, from_child[0]);
    std::vector<std::string> args{self, "--wake-child", url};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (rc != 0) throw std::runtime_error("wakeup: cannot start " + self);
    to_ = fdopen(to_child[1], "w");
    from_ = fdopen(from_child[0], "r");
  }
  WakeChild(const WakeChild&) = delete;
  WakeChild& operator=(const WakeChild&) = delete;
  ~WakeChild() {
    std::fclose(to_);  // EOF: the child ends
    std::fclose(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  // Asks for a run_now; returns the steady time the child read before it.
  Steady::time_point wake() {
    std::fputs("go\n", to_);
    std::fflush(to_);
    long long ns = 0;
    if (std::fscanf(from_, "%lld", &ns) != 1) throw std::runtime_error("wakeup: the child process failed");
    return Steady::time_point(std::chrono::duration_cast<Steady::duration>(std::chrono::nanoseconds(ns)));
  }

 private:
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

}  // namespace

// An idle scheduler (claim_interval 10 s, so polling cannot explain a fast
// start) with one job due in an hour; another process (or, in-process, another
// thread on the same store) makes it due now. Latency: from just before that
// call to the start of the handler.
json wakeup_latency(const Target& t, const Options& o, bool other_process) {
  reset(t, 0);
  auto store = jobrepo::open_store(t.url);
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Steady::time_point> started;
  jobrepo::SchedulerOptions options;
  options.worker_threads = 1;
  options.claim_interval = 10s;
  jobrepo::Scheduler scheduler("bench", *store, options);
  scheduler.register_job(jobrepo::make_job("wake", "wake-up probe",
                                           [&](jobrepo::JobContext&) {
                                             const std::lock_guard lock(mutex);
                                             started = Steady::now();
                                             cv.notify_all();
                                             return microseconds(1h);
                                           }),
                         {.next_run_in = 1h});
  scheduler.start();
  std::unique_ptr<WakeChild> child;
  if (other_process) child = std::make_unique<WakeChild>(o.self, t.url);
  jobrepo::Repository same(*store);
  std::vector<double> ms;
  std::int64_t missed = 0;
  const int samples = o.wakeups;
  for (int i = 0; i < samples; ++i) {
    // Idle again: the last run is stored (a wake-up while it runs would be
    // undone by its completion, which reschedules the job an hour ahead, as
    // it must), then the loop asleep.
    const auto stored_by = Steady::now() + 15s;
    while (!same.list_runs({.job_name = "wake", .status = jobrepo::Status::running}).empty() &&
           Steady::now() < stored_by) {
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(100ms);
    {
      const std::lock_guard lock(mutex);
      started.reset();
    }
    const auto asked = child ? child->wake() : [&] {
      const auto t0 = Steady::now();
      same.update_job_next_run("wake", 0s);
      return t0;
    }();
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, 15s, [&] { return started.has_value(); })) {
      ++missed;
      continue;
    }
    ms.push_back(ms_between(asked, *started));
  }
  scheduler.stop();
  const std::string how = !other_process            ? "same process, same store"
                          : t.backend == "postgres" ? "other process (LISTEN/NOTIFY)"
                          : t.backend == "mariadb"  ? "other process (polled every 250 ms)"
                                                    : "other process (inotify + data_version)";
  return json{{"workload", "wakeup"},
              {"backend", t.backend},
              {"from", how},
              {"samples", ms.size()},
              {"p50_ms", percentile(ms, 0.5)},
              {"p99_ms", percentile(ms, 0.99)},
              {"max_ms", percentile(ms, 1.0)},
              {"missed", missed}};
}

}  // namespace jobrepo_bench
