// Test helper: a Store that makes calls fail or hang at random, like
// LevelDB's fault-injection Env. Every call of the Store interface (but
// subscribe_due and set_clock_offset) may, with the set probabilities:
//   - fail before it reaches the target with `unavailable` or `busy`;
//   - hang for up to `max_hang`, then go on;
//   - reach the target and then fail with `unavailable` (the reply was
//     lost: what the target did stays done), the nastiest fault a client
//     sees when a connection breaks after a commit.
// Thread-safe. Counters say how often each fault struck.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store_wrapper.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>

namespace jobrepo::test {

struct Faults {
  double fail = 0;        // fail before the call
  double hang = 0;        // hang, then call
  double lose_reply = 0;  // call, then fail
  std::chrono::milliseconds max_hang{200};
};

class FaultStore : public StoreWrapper {
 public:
  FaultStore(Store& target, Faults faults, unsigned seed = std::random_device{}())
      : StoreWrapper(target), faults_(faults), random_(seed) {}

  void set_faults(Faults faults) {
    const std::lock_guard lock(mutex_);
    faults_ = faults;
  }

  std::atomic<int> failed{0}, hung{0}, lost{0};

  Job create_job(const NewJob& job) override {
    return call("create_job", [&] { return StoreWrapper::create_job(job); });
  }
  Job ensure_job(const NewJob& job) override {
    return call("ensure_job", [&] { return StoreWrapper::ensure_job(job); });
  }
  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return call("lookup_job", [&] { return StoreWrapper::lookup_job(plugin_id, name); });
  }
  std::vector<Job> list_jobs(const JobQuery& query) override {
    return call("list_jobs", [&] { return StoreWrapper::list_jobs(query); });
  }
  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    return call("reschedule_job", [&] { return StoreWrapper::reschedule_job(plugin_id, name, due); });
  }
  Timestamp now() override {
    return call("now", [&] { return StoreWrapper::now(); });
  }
  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return call("delete_job", [&] { return StoreWrapper::delete_job(plugin_id, name); });
  }
  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return call("claim_runs", [&] { return StoreWrapper::claim_runs(request); });
  }
  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    return call("transition_runs", [&] { return StoreWrapper::transition_runs(changes); });
  }
  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    return call("interrupt_stale_runs", [&] { return StoreWrapper::interrupt_stale_runs(query); });
  }
  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return call("lookup_run", [&] { return StoreWrapper::lookup_run(plugin_id, run_id); });
  }
  std::vector<Run> list_runs(const RunQuery& query) override {
    return call("list_runs", [&] { return StoreWrapper::list_runs(query); });
  }
  std::int64_t prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) override {
    return call("prune_runs", [&] { return StoreWrapper::prune_runs(plugin_id, older_than); });
  }
  std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) override {
    return call("set_job_paused", [&] { return StoreWrapper::set_job_paused(plugin_id, name, paused); });
  }
  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name) override {
    return call("request_run", [&] { return StoreWrapper::request_run(plugin_id, name); });
  }
  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return call("request_cancel", [&] { return StoreWrapper::request_cancel(plugin_id, run_id); });
  }
  void record_server(const ServerRecord& record) override {
    call("record_server", [&] {
      StoreWrapper::record_server(record);
      return 0;
    });
  }
  void remove_server(const std::string& plugin_id, const std::string& server_id) override {
    call("remove_server", [&] {
      StoreWrapper::remove_server(plugin_id, server_id);
      return 0;
    });
  }
  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return call("list_servings", [&] { return StoreWrapper::list_servings(plugin_id, name); });
  }

 private:
  enum class Fault { none, fail_busy, fail_unavailable, hang, lose_reply };

  Fault roll(std::chrono::milliseconds& hang_for) {
    const std::lock_guard lock(mutex_);
    std::uniform_real_distribution<double> chance(0.0, 1.0);
    const double x = chance(random_);
    if (x < faults_.fail) return random_() % 2 ? Fault::fail_busy : Fault::fail_unavailable;
    if (x < faults_.fail + faults_.hang) {
      hang_for = std::chrono::milliseconds(random_() % (faults_.max_hang.count() + 1));
      return Fault::hang;
    }
    if (x < faults_.fail + faults_.hang + faults_.lose_reply) return Fault::lose_reply;
    return Fault::none;
  }

  template <class Call>
  auto call(const char* operation, Call&& forward) -> decltype(forward()) {
    std::chrono::milliseconds hang_for{0};
    switch (roll(hang_for)) {
      case Fault::fail_busy:
        ++failed;
        throw Error(ErrorCode::busy, std::string(operation) + ": injected lock conflict");
      case Fault::fail_unavailable:
        ++failed;
        throw Error(ErrorCode::unavailable, std::string(operation) + ": injected outage");
      case Fault::hang:
        ++hung;
        std::this_thread::sleep_for(hang_for);
        break;
      case Fault::lose_reply: {
        forward();
        ++lost;
        throw Error(ErrorCode::unavailable, std::string(operation) + ": injected lost reply");
      }
      case Fault::none: break;
    }
    return forward();
  }

  std::mutex mutex_;
  Faults faults_;
  std::minstd_rand random_;
};

}  // namespace jobrepo::test
