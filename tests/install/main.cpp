// The API snippet of the README, compiled against an installed jobrepo.
#include <jobrepo/jobrepo.hpp>

#include <cassert>
#include <iostream>

using namespace std::chrono_literals;

int main(int argc, char* argv[]) {
  const std::string url = argc > 1 ? argv[1] : "sqlite::memory:";
  std::unique_ptr<jobrepo::Store> store = jobrepo::open_store(url);
  store->migrate();
  store->migrate();  // idempotent
  jobrepo::Repository repo(*store);
  jobrepo::Repository other(*store, {.plugin_id = "pi_x", .default_limit = 10});

  jobrepo::Job j = repo.create_job("report", "Builds the nightly report");
  repo.create_job("later", "Due in an hour", {.next_run_in = 1h});
  std::optional<jobrepo::Job> lj = repo.lookup_job("report");
  std::vector<jobrepo::Job> js = repo.list_jobs();
  std::vector<jobrepo::Job> one = repo.list_jobs({.name = "later", .limit = 3});
  jobrepo::Job u = repo.update_job_next_run("later", 2h);
  std::vector<jobrepo::Run> rs = repo.run_jobs("server-1");
  std::vector<jobrepo::Run> none = repo.run_jobs("server-2", {.limit = 3});
  jobrepo::Run r = repo.update_progress(rs.at(0).private_id, 1, 2);
  r = repo.complete_run(r.private_id, 1h);
  other.create_job("x", "d");
  jobrepo::Run f = other.fail_run(other.run_jobs("s1").at(0).private_id);
  other.create_job("y", "d");
  other.run_jobs("s1");
  std::vector<jobrepo::Run> ir = other.interrupt_runs(5min);
  std::vector<jobrepo::Run> ir2 = other.interrupt_runs(0min, {.server_id = "s1"});
  std::optional<jobrepo::Run> lr = repo.lookup_run(r.private_id);
  try {
    repo.create_job("report", "again");
    return 1;
  } catch (const jobrepo::Error& e) {
    if (e.code() != jobrepo::ErrorCode::not_unique) return 1;
  }
  const bool ok = lj && *lj == j && js.size() == 2 && one.size() == 1 && u.name == "later" && rs.size() == 1 &&
                  none.empty() && r.status == jobrepo::Status::completed && f.status == jobrepo::Status::failed &&
                  ir.empty() && ir2.size() == 1 && lr && lr->end_time.has_value();
  std::cout << "consumer: " << (ok ? "ok" : "FAILED") << ", run " << r.private_id << " is "
            << jobrepo::to_string(r.status) << std::endl;
  return ok ? 0 : 1;
}
