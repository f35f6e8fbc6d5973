#include <jobrepo/error.hpp>
#include <jobrepo/repository.hpp>
#include <jobrepo/text.hpp>

#include "operation.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace jobrepo {

namespace {

constexpr std::int64_t builtin_default_limit = 10000;

std::string quoted(std::string_view text) { return quote_text(text); }

[[noreturn]] void throw_problem(const char* operation, std::string_view what, const TextProblem& problem) {
  throw Error(problem.code, std::string(operation) + ": " + std::string(what) + " " + problem.message);
}

// A text that is stored (text.hpp: text_problem).
void require_text(const char* operation, std::string_view what, TextKind kind, std::string_view value) {
  if (auto problem = text_problem(kind, value)) throw_problem(operation, what, *problem);
}

// A text that is only compared: present and well-formed.
void require_key(const char* operation, std::string_view what, std::string_view value) {
  if (value.empty()) throw_problem(operation, what, TextProblem{ErrorCode::invalid_parameter, "is missing"});
  if (auto problem = encoding_problem(value)) throw_problem(operation, what, *problem);
}

// An optional filter: empty means none; otherwise well-formed.
void require_well_formed(const char* operation, std::string_view what, std::string_view value) {
  if (auto problem = encoding_problem(value)) throw_problem(operation, what, *problem);
}

// Runs `call`, the work of the Repository method `operation`, so that every
// Error it throws names that method.
template <class Call>
auto as_operation(const char* operation, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const Error& error) {
    throw for_operation(error, operation);
  }
}

// Durations within max_offset either way: beyond it, now + value would leave
// the times a database stores, or overflow 64-bit microseconds.
void require_in_range(const char* operation, std::string_view what, std::chrono::microseconds value) {
  if (value > max_offset || value < -max_offset) {
    const auto years = std::chrono::duration_cast<std::chrono::years>(max_offset).count();
    throw Error(ErrorCode::invalid_parameter, std::string(operation) + ": " + std::string(what) + " " +
                                                  std::to_string(value.count()) + "us is out of range (more than " +
                                                  std::to_string(years) + " years)");
  }
}

void require_non_negative(const char* operation, std::string_view what, std::chrono::microseconds value) {
  if (value.count() < 0) {
    throw Error(ErrorCode::invalid_parameter, std::string(operation) + ": " + std::string(what) + " " +
                                                  std::to_string(value.count()) + "us is negative");
  }
  require_in_range(operation, what, value);
}

// An absolute time within [earliest_time, latest_time].
void require_time_in_range(const char* operation, std::string_view what, Timestamp value) {
  if (value < earliest_time || value > latest_time) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(value.time_since_epoch()).count();
    throw Error(ErrorCode::invalid_parameter, std::string(operation) + ": " + std::string(what) + " " +
                                                  std::to_string(us) +
                                                  "us since the epoch is out of range (1970-01-01 to 2262-01-01)");
  }
}

// The Due of a duration or (when set) an absolute time, checked.
Due due_of(const char* operation, std::string_view in_name, std::chrono::microseconds in, std::string_view at_name,
           const std::optional<Timestamp>& at) {
  if (in == std::chrono::microseconds::max() && !at) return Due{std::chrono::microseconds(0), never};
  require_in_range(operation, in_name, in);
  if (!at) return Due{in, std::nullopt};
  if (in.count() != 0) {
    throw Error(ErrorCode::invalid_parameter, std::string(operation) + ": give " + std::string(in_name) + " or " +
                                                  std::string(at_name) + ", not both");
  }
  require_time_in_range(operation, at_name, *at);
  return Due{std::chrono::microseconds(0), at};
}

// The schedule text of a job: for people, so any well-formed text up to the
// length of a description (empty: unknown).
void require_schedule(const char* operation, std::string_view schedule) {
  if (auto problem = encoding_problem(schedule)) throw_problem(operation, "schedule", *problem);
  if (trimmed_length(schedule) > max_description_length) {
    throw Error(ErrorCode::check_constraint, std::string(operation) + ": schedule " + quoted(schedule) + " has " +
                                                 std::to_string(trimmed_length(schedule)) + " characters, more than " +
                                                 std::to_string(max_description_length));
  }
}

// Failures that a retry of the same call may cure (error.hpp: "retry").
bool is_transient(ErrorCode code) { return code == ErrorCode::unavailable || code == ErrorCode::busy; }

// Empty when the counts of a transition are valid, else what is wrong with them.
std::string describe_invalid_counts(const RunTransition& change) {
  const auto& completed = change.completed_count;
  const auto& total = change.total_count;
  if (completed && *completed < 0) return "completed count " + std::to_string(*completed) + " is negative";
  if (total && *total < 0) return "total count " + std::to_string(*total) + " is negative";
  if (completed && total && *completed > *total) {
    return "completed count " + std::to_string(*completed) + " exceeds total count " + std::to_string(*total);
  }
  return {};
}

}  // namespace

DueState due_state(const Job& job) noexcept {
  // At or past `never` (a time written by hand past it reads back saturated
  // at the end of what a Timestamp holds): no time makes the job due.
  if (job.next_scheduled_run < never) return DueState::scheduled;
  return job.consecutive_failures > 0 ? DueState::gave_up : DueState::on_demand;
}

std::string_view to_string(DueState state) noexcept {
  switch (state) {
    case DueState::scheduled: return "scheduled";
    case DueState::on_demand: return "on_demand";
    case DueState::gave_up: return "gave_up";
  }
  return "scheduled";
}

Error for_operation(const Error& error, std::string_view operation) {
  const std::string prefix = std::string(operation) + ": ";
  std::string_view message = error.what();
  if (message.substr(0, prefix.size()) == prefix) return error;
  std::size_t word = 0;
  while (word < message.size() && ((message[word] >= 'a' && message[word] <= 'z') ||
                                   (message[word] >= '0' && message[word] <= '9') || message[word] == '_')) {
    ++word;
  }
  if (word > 0 && message.substr(word, 2) == ": ") message.remove_prefix(word + 2);
  return Error(error.code(), prefix + std::string(message), error.native_code());
}

NewJob Repository::new_job(const char* operation, std::string_view name, std::string_view description,
                           const CreateJobOptions& options) const {
  // invalid_parameter before check_constraint, whichever text has it.
  const auto name_problem = text_problem(TextKind::job_name, name);
  const auto description_problem = text_problem(TextKind::description, description);
  for (const auto code : {ErrorCode::invalid_parameter, ErrorCode::check_constraint}) {
    if (name_problem && name_problem->code == code) throw_problem(operation, "name", *name_problem);
    if (description_problem && description_problem->code == code) {
      throw_problem(operation, "description", *description_problem);
    }
  }
  const auto due = due_of(operation, "next_run_in", options.next_run_in, "next_run_at", options.next_run_at);
  require_schedule(operation, options.schedule);
  return NewJob{plugin_id_, std::string(name), std::string(description), due, options.schedule};
}

Error Repository::no_such(const char* what, const char* operation, std::string_view key) const {
  return Error(ErrorCode::record_not_found,
               std::string(operation) + ": no " + what + " " + quoted(key) + " in plugin " + quoted(plugin_id_));
}

Repository::Repository(Store& store, RepositoryOptions options)
    : store_(store),
      plugin_id_(std::move(options.plugin_id)),
      default_limit_(options.default_limit == 0 ? builtin_default_limit : options.default_limit) {
  require_text("Repository", "plugin_id", TextKind::plugin_id, plugin_id_);
}

Job Repository::create_job(std::string_view name, std::string_view description, CreateJobOptions options) {
  constexpr const char* op = "create_job";
  return as_operation(op, [&] { return store_.create_job(new_job(op, name, description, options)); });
}

Job Repository::ensure_job(std::string_view name, std::string_view description, CreateJobOptions options) {
  constexpr const char* op = "ensure_job";
  return as_operation(op, [&] { return store_.ensure_job(new_job(op, name, description, options)); });
}

std::optional<Job> Repository::lookup_job(std::string_view name) {
  constexpr const char* op = "lookup_job";
  require_key(op, "name", name);
  return as_operation(op, [&] { return store_.lookup_job(plugin_id_, std::string(name)); });
}

std::vector<Job> Repository::list_jobs(ListJobsOptions options) {
  constexpr const char* op = "list_jobs";
  require_well_formed(op, "name", options.name);
  JobQuery query{plugin_id_, std::nullopt, options.limit == 0 ? default_limit_ : options.limit};
  if (!options.name.empty()) query.name = options.name;
  return as_operation(op, [&] { return store_.list_jobs(query); });
}

Timestamp Repository::database_time() {
  return as_operation("database_time", [&] { return store_.now(); });
}

Job Repository::update_job_next_run(std::string_view name, std::chrono::microseconds next_run_in) {
  return reschedule("update_job_next_run", name,
                    due_of("update_job_next_run", "next_run_in", next_run_in, "next_run_at", std::nullopt));
}

Job Repository::update_job_next_run(std::string_view name, Timestamp next_run_at) {
  require_time_in_range("update_job_next_run", "next_run_at", next_run_at);
  return reschedule("update_job_next_run", name, Due{std::chrono::microseconds(0), next_run_at});
}

template <class Change>
Job Repository::change_job(const char* op, std::string_view name, Change&& change) {
  require_key(op, "name", name);
  auto job = as_operation(op, [&] { return change(std::string(name)); });
  if (!job) throw no_such("job", op, name);
  return std::move(*job);
}

Job Repository::reschedule(const char* op, std::string_view name, const Due& due) {
  return change_job(op, name, [&](const std::string& job) { return store_.reschedule_job(plugin_id_, job, due); });
}

void Repository::delete_job(std::string_view name) {
  constexpr const char* op = "delete_job";
  require_key(op, "name", name);
  if (!as_operation(op, [&] { return store_.delete_job(plugin_id_, std::string(name)); })) {
    throw no_such("job", op, name);
  }
}

std::vector<Run> Repository::run_jobs(std::string_view server_id, RunJobsOptions options) {
  constexpr const char* op = "run_jobs";
  require_text(op, "server_id", TextKind::server_id, server_id);
  if (options.only_jobs) {
    for (const auto& name : *options.only_jobs) require_key(op, "only_jobs name", name);
  }
  ClaimRequest request{plugin_id_, std::string(server_id), options.limit == 0 ? 1 : options.limit,
                       std::move(options.only_jobs), options.served_only};
  return as_operation(op, [&] { return store_.claim_runs(request); });
}

Run Repository::update_progress(std::string_view run_id, std::int64_t completed, std::int64_t total) {
  return transition("update_progress", run_id, RunTransition{{}, {}, Status::running, completed, total, {}});
}

Run Repository::complete_run(std::string_view run_id, std::chrono::microseconds next_run_in) {
  const auto due = due_of("complete_run", "next_run_in", next_run_in, "next_run_at", std::nullopt);
  return transition("complete_run", run_id, RunTransition{{}, {}, Status::completed, {}, {}, due});
}

Run Repository::complete_run(std::string_view run_id, Timestamp next_run_at) {
  const auto due = due_of("complete_run", "next_run_in", std::chrono::microseconds(0), "next_run_at", next_run_at);
  return transition("complete_run", run_id, RunTransition{{}, {}, Status::completed, {}, {}, due});
}

Run Repository::fail_run(std::string_view run_id, FailRunOptions options) {
  std::optional<Due> due;
  if (options.retry_in && options.retry_at) {
    throw Error(ErrorCode::invalid_parameter, "fail_run: give retry_in or retry_at, not both");
  }
  if (options.retry_in || options.retry_at) {
    due = due_of("fail_run", "retry_in", options.retry_in.value_or(std::chrono::microseconds(0)), "retry_at",
                 options.retry_at);
  }
  RunTransition change{{}, {}, Status::failed, {}, {}, due};
  if (!options.message.empty()) change.message = message_text(options.message);
  return transition("fail_run", run_id, std::move(change));
}

std::string definition_fingerprint(std::string_view definition) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : definition) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex[hash & 0xFU];
    hash >>= 4U;
  }
  return out;
}

Job Repository::pause_job(std::string_view name) {
  return change_job("pause_job", name,
                    [&](const std::string& job) { return store_.set_job_paused(plugin_id_, job, true); });
}

Job Repository::resume_job(std::string_view name) {
  return change_job("resume_job", name,
                    [&](const std::string& job) { return store_.set_job_paused(plugin_id_, job, false); });
}

Job Repository::run_now(std::string_view name, std::optional<std::string> payload) {
  constexpr const char* op = "run_now";
  require_key(op, "name", name);
  if (payload) {
    if (auto problem = payload_problem(*payload)) throw_problem(op, "payload of job " + quoted(name), *problem);
  }
  auto job = change_job(op, name, [&](const std::string& job) { return store_.request_run(plugin_id_, job, payload); });
  if (payload && !job.requested_payload) {
    throw Error(ErrorCode::internal, std::string(op) + ": the store did not keep the payload of job " + quoted(name));
  }
  // The store kept the payload that waits for a claim and wrote nothing:
  // refused, so that the caller knows that its arguments were not taken.
  if (payload && job.requested_payload != payload) {
    throw Error(ErrorCode::invalid_job_run_state,
                std::string(op) + ": job " + quoted(name) + " in plugin " + quoted(plugin_id_) +
                    " already has a run requested with other arguments, " + quoted(*job.requested_payload) +
                    ", that no server has claimed yet: ask again once that run has started");
  }
  return job;
}

Run Repository::cancel_run(std::string_view run_id) {
  constexpr const char* op = "cancel_run";
  require_text(op, "run id", TextKind::run_id, run_id);
  auto run = as_operation(op, [&] { return store_.request_cancel(plugin_id_, std::string(run_id)); });
  if (!run) {
    throw no_such("run", op, run_id);
  }
  if (is_final(run->status)) {
    throw Error(ErrorCode::invalid_job_run_state,
                std::string(op) + ": run " + quoted(run_id) + " is already " + std::string(to_string(run->status)));
  }
  return std::move(*run);
}

ServerLease Repository::record_server(std::string_view server_id, std::chrono::microseconds ttl,
                                      RecordServerOptions options) {
  constexpr const char* op = "record_server";
  require_text(op, "server_id", TextKind::server_id, server_id);
  require_text(op, "instance", TextKind::server_id, options.instance);
  require_well_formed(op, "address", options.address);
  if (trimmed_length(options.address) > max_server_id_length) {
    throw Error(ErrorCode::check_constraint, std::string(op) + ": address " + quoted(options.address) + " has " +
                                                 std::to_string(trimmed_length(options.address)) +
                                                 " characters, more than " + std::to_string(max_server_id_length));
  }
  require_non_negative(op, "ttl", ttl);
  if (options.jobs) {
    for (const auto& job : *options.jobs) {
      require_key(op, "job name", job.name);
      require_key(op, "fingerprint", job.fingerprint);
      if (job.fingerprint.size() > 64) {
        throw Error(ErrorCode::invalid_parameter,
                    std::string(op) + ": fingerprint " + quoted(job.fingerprint) + " is longer than 64 bytes");
      }
    }
  }
  ServerRecord record{plugin_id_,
                      std::string(server_id),
                      std::move(options.instance),
                      std::move(options.address),
                      ttl,
                      std::move(options.jobs),
                      options.take_over};
  return as_operation(op, [&] { return store_.record_server(record); });
}

void Repository::remove_server(std::string_view server_id, std::string_view instance) {
  constexpr const char* op = "remove_server";
  require_key(op, "server_id", server_id);
  require_well_formed(op, "instance", instance);
  as_operation(op, [&] { store_.remove_server(plugin_id_, std::string(server_id), std::string(instance)); });
}

std::vector<Serving> Repository::list_servings(std::string_view name) {
  constexpr const char* op = "list_servings";
  require_well_formed(op, "name", name);
  std::optional<std::string> filter;
  if (!name.empty()) filter = std::string(name);
  return as_operation(op, [&] { return store_.list_servings(plugin_id_, filter); });
}

Run Repository::transition(const char* operation, std::string_view run_id, RunTransition change) {
  require_text(operation, "run id", TextKind::run_id, run_id);
  change.plugin_id = plugin_id_;
  change.run_id = std::string(run_id);
  return as_operation(operation, [&] {
    const std::string counts_problem = describe_invalid_counts(change);
    if (counts_problem.empty()) {
      auto result = store_.transition_runs(std::span<const RunTransition>(&change, 1));
      if (result.size() == 1 && result.front()) return std::move(*result.front());
    }
    // Nothing was written: find out which error the caller gets, in the
    // documented order (record_not_found, invalid_job_run_state, check_constraint).
    throw_transition_error(operation, change.run_id, counts_problem);
  });
}

std::vector<RunUpdateResult> Repository::update_runs(std::span<const RunUpdate> updates) {
  constexpr const char* op = "update_runs";
  return as_operation(op, [&] { return apply_updates(op, updates); });
}

std::vector<RunUpdateResult> Repository::apply_updates(const char* op, std::span<const RunUpdate> updates) {
  std::vector<RunUpdateResult> results(updates.size());
  std::vector<std::size_t> sent;  // the updates that go to the store
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const auto& update = updates[i];
    try {
      require_text(op, "run id", TextKind::run_id, update.run_id);
      if (update.status != Status::running && update.status != Status::completed && update.status != Status::failed &&
          update.status != Status::interrupted) {
        throw Error(ErrorCode::invalid_parameter, std::string(op) + ": run " + quoted(update.run_id) + ": status " +
                                                      std::string(to_string(update.status)) +
                                                      " is not running, completed, failed or interrupted");
      }
      if (update.completed_count.has_value() != update.total_count.has_value()) {
        throw Error(ErrorCode::invalid_parameter,
                    std::string(op) + ": run " + quoted(update.run_id) + ": give both counts or neither");
      }
      if (update.next_run_in && update.next_run_at) {
        throw Error(ErrorCode::invalid_parameter,
                    std::string(op) + ": run " + quoted(update.run_id) + ": give next_run_in or next_run_at, not both");
      }
      if (update.next_run_in || update.next_run_at) {
        const std::string run = "run " + quoted(update.run_id) + ": ";
        due_of(op, run + "next_run_in", update.next_run_in.value_or(std::chrono::microseconds(0)), run + "next_run_at",
               update.next_run_at);
      }
      // Which error wins for bad counts depends on the run as it is before this call.
      const RunTransition change{{}, {}, Status::running, update.completed_count, update.total_count, {}};
      if (const auto problem = describe_invalid_counts(change); !problem.empty()) {
        throw_transition_error(op, update.run_id, problem);
      }
    } catch (const Error& e) {
      results[i].error = e;
      continue;
    }
    sent.push_back(i);
  }
  // The store gets the changes ordered by run id (stably: changes of one run
  // keep their order), so that concurrent batches, say one server's
  // completions and its heartbeats, lock rows in one order and cannot
  // deadlock each other.
  std::stable_sort(sent.begin(), sent.end(),
                   [&](std::size_t a, std::size_t b) { return updates[a].run_id < updates[b].run_id; });
  std::vector<RunTransition> changes;
  changes.reserve(sent.size());
  for (const auto i : sent) {
    const auto& u = updates[i];
    std::optional<Due> due;
    if (u.next_run_at) {
      due = Due{std::chrono::microseconds(0), u.next_run_at};
    } else if (u.next_run_in == std::chrono::microseconds::max()) {
      due = Due{std::chrono::microseconds(0), never};
    } else if (u.next_run_in) {
      due = Due{*u.next_run_in, std::nullopt};
    }
    RunTransition change{plugin_id_, u.run_id, u.status, u.completed_count, u.total_count, due};
    if (u.message && is_final(u.status)) change.message = message_text(*u.message);
    changes.push_back(std::move(change));
  }
  std::vector<std::optional<Run>> applied;
  if (!changes.empty()) {
    try {
      applied = store_.transition_runs(std::span<const RunTransition>(changes));
    } catch (const Error& e) {
      // One change the store cannot take (a value its database rejects, say)
      // fails the whole batch, and must not cost the others theirs: apply
      // them one at a time, each its own transaction, so that each gets its
      // own run or error. A transient failure is the whole call's: its
      // caller retries it, and nothing was written.
      if (changes.size() == 1 || is_transient(e.code())) throw;
      applied.assign(changes.size(), std::nullopt);
      for (std::size_t k = 0; k < changes.size(); ++k) {
        try {
          auto one = store_.transition_runs(std::span<const RunTransition>(&changes[k], 1));
          if (!one.empty()) applied[k] = std::move(one.front());
        } catch (const Error& single) {
          // The changes before it may be committed: even a transient error
          // is now this change's alone.
          results[sent[k]].error = single;
        }
      }
    }
  }
  for (std::size_t k = 0; k < sent.size() && k < applied.size(); ++k) results[sent[k]].run = applied[k];
  // Whatever the store did not apply found its run missing or final (which
  // it stays): the error its single call would have had.
  for (std::size_t i = 0; i < updates.size(); ++i) {
    if (results[i].run || results[i].error) continue;
    try {
      throw_transition_error(op, updates[i].run_id, "");
    } catch (const Error& e) {
      results[i].error = e;
    }
  }
  // Each error names the method its caller called, the store's too.
  for (auto& result : results) {
    if (result.error) result.error = for_operation(*result.error, op);
  }
  return results;
}

void Repository::throw_transition_error(const char* operation, const std::string& run_id,
                                        const std::string& counts_problem) {
  const auto run = store_.lookup_run(plugin_id_, run_id);
  if (!run) {
    throw no_such("run", operation, run_id);
  }
  if (is_final(run->status)) {
    throw Error(ErrorCode::invalid_job_run_state, std::string(operation) + ": run " + quoted(run_id) + " is already " +
                                                      std::string(to_string(run->status)));
  }
  if (!counts_problem.empty()) {
    throw Error(ErrorCode::check_constraint,
                std::string(operation) + ": run " + quoted(run_id) + ": " + counts_problem);
  }
  // The store declined a running run: it should not happen, say so.
  throw Error(ErrorCode::internal,
              std::string(operation) + ": the store did not apply the change to running run " + quoted(run_id));
}

std::vector<Run> Repository::interrupt_runs(std::chrono::microseconds threshold, InterruptRunsOptions options) {
  constexpr const char* op = "interrupt_runs";
  require_non_negative(op, "threshold", threshold);
  require_well_formed(op, "server_id", options.server_id);
  if (options.runs) {
    for (const auto& run : *options.runs) require_text(op, "run id", TextKind::run_id, run.run_id);
  }
  StaleRunQuery query{plugin_id_, threshold, std::nullopt};
  if (!options.server_id.empty()) query.server_id = options.server_id;
  if (!options.message.empty()) query.message = message_text(options.message);
  query.runs = std::move(options.runs);
  if (query.runs && query.runs->empty()) return {};
  return as_operation(op, [&] { return store_.interrupt_stale_runs(query); });
}

Run Repository::record_work_end(std::string_view run_id, Timestamp ended) {
  constexpr const char* op = "record_work_end";
  require_text(op, "run id", TextKind::run_id, run_id);
  require_time_in_range(op, "ended", ended);
  auto run = as_operation(op, [&] { return store_.record_work_end(plugin_id_, std::string(run_id), ended); });
  if (!run) throw no_such("run", op, run_id);
  return std::move(*run);
}

std::optional<Run> Repository::lookup_run(std::string_view run_id) {
  constexpr const char* op = "lookup_run";
  require_text(op, "run id", TextKind::run_id, run_id);
  return as_operation(op, [&] { return store_.lookup_run(plugin_id_, std::string(run_id)); });
}

std::vector<Run> Repository::list_runs(ListRunsOptions options) {
  constexpr const char* op = "list_runs";
  require_well_formed(op, "job_name", options.job_name);
  RunQuery query{plugin_id_, std::nullopt, options.status, options.limit == 0 ? default_limit_ : options.limit};
  if (!options.job_name.empty()) query.job_name = options.job_name;
  return as_operation(op, [&] { return store_.list_runs(query); });
}

std::int64_t Repository::prune_runs(std::chrono::microseconds older_than) {
  constexpr const char* op = "prune_runs";
  require_non_negative(op, "older_than", older_than);
  return as_operation(op, [&] { return store_.prune_runs(plugin_id_, older_than); });
}

std::int64_t Repository::prune_job_runs(std::string_view name, PruneJobRunsOptions options) {
  constexpr const char* op = "prune_job_runs";
  require_key(op, "name", name);
  if (options.keep_last && *options.keep_last < 1) {
    throw Error(ErrorCode::invalid_parameter,
                std::string(op) + ": keep_last " + std::to_string(*options.keep_last) + " is less than 1");
  }
  if (options.older_than) require_non_negative(op, "older_than", *options.older_than);
  if (options.limit < 0 || options.limit > max_pruned_runs) {
    throw Error(ErrorCode::invalid_parameter, std::string(op) + ": limit " + std::to_string(options.limit) +
                                                  " is out of range (1 to " + std::to_string(max_pruned_runs) +
                                                  ", or 0 for " + std::to_string(max_pruned_runs) + ")");
  }
  const JobRunsPrune prune{std::string(name), options.keep_last, options.older_than,
                           options.limit == 0 ? max_pruned_runs : options.limit};
  const auto deleted = as_operation(op, [&] { return store_.prune_job_runs(plugin_id_, prune); });
  if (!deleted) throw no_such("job", op, name);
  return *deleted;
}

}  // namespace jobrepo
