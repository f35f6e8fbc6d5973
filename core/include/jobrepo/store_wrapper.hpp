// jobrepo: StoreWrapper, a Store that forwards every call to another Store.
//
// Subclass it and override the calls you want to change, or around() to see
// every call (to inject faults in tests, or to add logging or metrics). The target must outlive the
// wrapper. Thread-safe as far as the target is.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>

#include <functional>
#include <optional>
#include <string>

namespace jobrepo {

class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store& target) : target_(target) {}

  Store& target() const { return target_; }

  StoreContract8 contract() const override { return {}; }
  void migrate() override {
    around("migrate", [&] { target_.migrate(); });
  }
  Timestamp now() override {
    return forward("now", [&] { return target_.now(); });
  }
  Job create_job(const NewJob& job) override {
    return forward("create_job", [&] { return target_.create_job(job); });
  }
  Job ensure_job(const NewJob& job) override {
    return forward("ensure_job", [&] { return target_.ensure_job(job); });
  }
  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return forward("lookup_job", [&] { return target_.lookup_job(plugin_id, name); });
  }
  std::vector<Job> list_jobs(const JobQuery& query) override {
    return forward("list_jobs", [&] { return target_.list_jobs(query); });
  }
  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    return forward("reschedule_job", [&] { return target_.reschedule_job(plugin_id, name, due); });
  }
  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return forward("delete_job", [&] { return target_.delete_job(plugin_id, name); });
  }
  std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) override {
    return forward("set_job_paused", [&] { return target_.set_job_paused(plugin_id, name, paused); });
  }
  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    return forward("request_run", [&] { return target_.request_run(plugin_id, name, payload); });
  }
  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return forward("request_cancel", [&] { return target_.request_cancel(plugin_id, run_id); });
  }
  ServerLease record_server(const ServerRecord& record) override {
    return forward("record_server", [&] { return target_.record_server(record); });
  }
  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    around("remove_server", [&] { target_.remove_server(plugin_id, server_id, instance); });
  }
  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return forward("list_servings", [&] { return target_.list_servings(plugin_id, name); });
  }
  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return forward("claim_runs", [&] { return target_.claim_runs(request); });
  }
  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    return forward("transition_runs", [&] { return target_.transition_runs(changes); });
  }
  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    return forward("interrupt_stale_runs", [&] { return target_.interrupt_stale_runs(query); });
  }
  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return forward("record_work_end", [&] { return target_.record_work_end(plugin_id, run_id, ended); });
  }
  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return forward("lookup_run", [&] { return target_.lookup_run(plugin_id, run_id); });
  }
  std::vector<Run> list_runs(const RunQuery& query) override {
    return forward("list_runs", [&] { return target_.list_runs(query); });
  }
  std::int64_t prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) override {
    return forward("prune_runs", [&] { return target_.prune_runs(plugin_id, older_than); });
  }
  std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const JobRunsPrune& prune) override {
    return forward("prune_job_runs", [&] { return target_.prune_job_runs(plugin_id, prune); });
  }
  // Not wrapped by around(): a subscription is not a call that succeeds or fails.
  std::unique_ptr<DueSubscription> subscribe_due(const std::string& plugin_id, std::function<void()> on_due) override {
    return target_.subscribe_due(plugin_id, std::move(on_due));
  }
  void set_clock_offset(std::chrono::microseconds offset) override { target_.set_clock_offset(offset); }
  void set_time_source(std::function<Timestamp()> source) override { target_.set_time_source(std::move(source)); }

 protected:
  // Every forwarded call but subscribe_due and set_clock_offset goes
  // through here: `call` calls the target (its result is kept for the
  // caller); `operation` names the Store method. Override it to observe
  // every call's outcome (count it, time it) or to inject faults: call it
  // (or not), and throw what the caller should see. The default just calls.
  virtual void around(const char* operation, const std::function<void()>& call) {
    (void)operation;
    call();
  }

 private:
  template <class Call>
  auto forward(const char* operation, Call&& call) -> decltype(call()) {
    std::optional<decltype(call())> result;
    around(operation, [&] { result.emplace(call()); });
    if (!result)
      throw Error(ErrorCode::internal, std::string(operation) + ": the store wrapper did not call the store");
    return std::move(*result);
  }

  Store& target_;
};

}  // namespace jobrepo
