// A SQLite-only program built against an installed jobrepo.
#include <jobrepo/jobrepo.hpp>

#include <iostream>

int main() {
  auto store = jobrepo::open_store("sqlite::memory:");
  store->migrate();
  jobrepo::Repository repo(*store);
  repo.create_job("report", "d");
  const auto runs = repo.run_jobs("s1");
  const auto done = repo.complete_run(runs.at(0).private_id, std::chrono::hours(1));
  const auto schemes = jobrepo::registered_backends();
  std::cout << "sqlite_only: run " << jobrepo::to_string(done.status) << ", backends:";
  for (const auto& scheme : schemes) std::cout << " " << scheme;
  std::cout << std::endl;
  return done.status == jobrepo::Status::completed ? 0 : 1;
}
