// A tour of the Repository API: two servers share one SQLite database. They claim due jobs at
// the same moment (each job goes to exactly one of them), report progress,
// complete and fail runs; one server "crashes" mid-run and the other
// interrupts its stale run and runs the job again. Ends with a table.
//
// Usage: repository_tour [URL]   (default: sqlite:repository-tour.db)
#include <jobrepo/jobrepo.hpp>

#include <barrier>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::mutex print_mutex;
std::vector<std::string> seen_runs;

std::string clock_text(jobrepo::Timestamp t) {
  const std::time_t seconds = jobrepo::Clock::to_time_t(t);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &local);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  char out[24];
  std::snprintf(out, sizeof out, "%s.%03lld", text, static_cast<long long>(millis));
  return out;
}

void say(const std::string& server, const std::string& what) {
  const std::lock_guard lock(print_mutex);
  std::cout << "  " << clock_text(jobrepo::Clock::now()) << "  " << server << "  " << what << std::endl;
}

// One server: its own store (as another process would have) and repository.
struct Server {
  std::string id;
  std::unique_ptr<jobrepo::Store> store;
  jobrepo::Repository repo;

  Server(std::string server_id, const std::string& url)
      : id(std::move(server_id)), store(jobrepo::open_store(url)), repo(*store) {}

  std::vector<jobrepo::Run> claim(int limit) {
    auto runs = repo.run_jobs(id, {.limit = limit});
    const std::lock_guard lock(print_mutex);
    for (const auto& run : runs) seen_runs.push_back(run.private_id);
    return runs;
  }

  void work(const jobrepo::Run& run, int steps) {
    for (int step = 1; step <= steps; ++step) {
      std::this_thread::sleep_for(120ms);
      repo.update_progress(run.private_id, step, steps);
    }
    say(id, "progress " + std::to_string(steps) + "/" + std::to_string(steps) + " on " + run.job_name);
  }
};

std::string pad(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

}  // namespace

int main(int argc, char* argv[]) try {
  const std::string url = argc > 1 ? argv[1] : "sqlite:repository-tour.db";
  std::cout << "repository tour on " << url << "\n\n";
  {
    auto store = jobrepo::open_store(url);
    store->migrate();
    jobrepo::Repository admin(*store);
    for (const auto& job : admin.list_jobs()) {
      (void)job;
      std::cout << "(the database already holds jobs; use a new file for a clean demo)\n";
      break;
    }
    admin.create_job("send-digest", "Mails the daily digest");
    admin.create_job("rebuild-index", "Rebuilds the search index");
    admin.create_job("flaky-import", "Imports a partner feed that is often down");
    admin.create_job("cleanup", "Deletes expired sessions");
    admin.create_job("rotate-keys", "Rotates signing keys", {.next_run_in = 1h});
    std::cout << "created 5 jobs; rotate-keys is due in 1h, the others now\n\n";
  }

  Server a("server-a", url);
  Server b("server-b", url);

  std::cout << "1. both servers claim at the same moment (up to 2 jobs each):\n";
  std::vector<jobrepo::Run> runs_a, runs_b;
  std::barrier start(2);
  std::thread ta([&] {
    start.arrive_and_wait();
    runs_a = a.claim(2);
  });
  std::thread tb([&] {
    start.arrive_and_wait();
    runs_b = b.claim(2);
  });
  ta.join();
  tb.join();
  for (const auto* server : {&a, &b}) {
    for (const auto& run : server == &a ? runs_a : runs_b) say(server->id, "claimed " + run.job_name);
  }
  std::cout << "   and a third claim finds nothing left that is due and not running: "
            << a.repo.run_jobs("server-a", {.limit = -1}).size() << " runs\n\n";

  std::cout << "2. they work, report progress, complete or fail:\n";
  jobrepo::Run crashed{};
  for (auto* server : {&a, &b}) {
    for (const auto& run : server == &a ? runs_a : runs_b) {
      if (run.job_name == "cleanup") {
        server->repo.update_progress(run.private_id, 1, 10);
        say(server->id, "progress 1/10 on cleanup, then the server crashes (no more heartbeats)");
        crashed = run;
        continue;
      }
      server->work(run, 3);
      if (run.job_name == "flaky-import") {
        server->repo.fail_run(run.private_id);
        say(server->id, "failed flaky-import (it stays due: any server may retry it)");
      } else {
        server->repo.complete_run(run.private_id, 30min);
        say(server->id, "completed " + run.job_name + ", next run in 30m");
      }
    }
  }

  std::cout << "\n3. the crashed server's run goes stale; a peer interrupts it and runs the job again:\n";
  Server& survivor = crashed.server_id == "server-a" ? b : a;
  std::this_thread::sleep_for(1500ms);
  for (const auto& run : survivor.repo.interrupt_runs(1s)) {
    say(survivor.id, "interrupted " + run.job_name + " of " + run.server_id + " (no update for 1s)");
  }
  for (const auto& run : survivor.claim(-1)) {
    say(survivor.id, "claimed " + run.job_name);
    if (run.job_name == "flaky-import") {
      survivor.repo.fail_run(run.private_id);
      say(survivor.id, "failed flaky-import again");
      continue;
    }
    survivor.work(run, 2);
    survivor.repo.complete_run(run.private_id, 30min);
    say(survivor.id, "completed " + run.job_name);
  }
  if (!crashed.private_id.empty()) {
    Server& zombie = crashed.server_id == "server-a" ? a : b;
    try {
      zombie.repo.update_progress(crashed.private_id, 2, 10);
    } catch (const jobrepo::Error& e) {
      say(zombie.id,
          "comes back, reports progress on its old run and is refused: " + std::string(jobrepo::to_string(e.code())));
    }
  }

  std::cout << "\nRuns:\n";
  std::cout << "  " << pad("RUN", 24) << pad("JOB", 15) << pad("SERVER", 10) << pad("STATUS", 12) << pad("PROGRESS", 10)
            << pad("STARTED", 14) << "DURATION\n";
  for (const auto& id : seen_runs) {
    const auto run = a.repo.lookup_run(id);
    if (!run) continue;
    const auto end = run->end_time.value_or(jobrepo::Clock::now());
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - run->create_time).count();
    std::cout << "  " << pad(run->private_id, 24) << pad(run->job_name, 15) << pad(run->server_id, 10)
              << pad(std::string(jobrepo::to_string(run->status)), 12)
              << pad(std::to_string(run->completed_count) + "/" + std::to_string(run->total_count), 10)
              << pad(clock_text(run->create_time), 14) << ms << " ms\n";
  }
  std::cout << "\nJobs:\n  " << pad("JOB", 15) << "NEXT RUN\n";
  for (const auto& job : a.repo.list_jobs()) {
    const auto in = std::chrono::round<std::chrono::minutes>(job.next_scheduled_run - jobrepo::Clock::now());
    std::cout << "  " << pad(job.name, 15)
              << (in.count() <= 0 ? std::string("due now") : "in " + std::to_string(in.count()) + "m") << "\n";
  }
  return 0;
} catch (const jobrepo::Error& e) {
  std::cerr << "repository_tour: " << e.what() << " (" << jobrepo::to_string(e.code()) << ")\n";
  return 1;
}
