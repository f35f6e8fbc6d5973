// Pieces shared by the SOCI-based backends (sqlite, postgres): header-only,
// theirs alone (not installed since 0.7); what every backend shares is in
// store_support.hpp. Each query that returns runs or
// jobs selects the columns in the order RunRow / JobRow bind them, with times
// as integer microseconds since the Unix epoch.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>
#include <jobrepo/text.hpp>
#include <jobrepo/types.hpp>

#include <soci/soci.h>

#include "store_support.hpp"

#include <string>

namespace jobrepo::soci_support {

using namespace store_support;  // NOLINT(google-build-using-namespace)

// Prepares `query` on a statement whose into() and use() elements were
// exchanged already, in the order of the columns and of the placeholders.
inline void prepare(soci::statement& st, const std::string& query) {
  st.alloc();
  st.prepare(query);
  st.define_and_bind();
}

// Destination of one row of: private_id, job_plugin_id, job_name, server_id,
// create_time, update_time, end_time, completed_count, total_count, status,
// message, attempt, cancel_requested (0 or 1), work_end_time, payload.
struct RunRow {
  std::string private_id, job_plugin_id, job_name, server_id, status, message, payload;
  Micros create_time = 0, update_time = 0, end_time = 0, work_end_time = 0;
  soci::indicator end_ind = soci::i_null, message_ind = soci::i_null, work_end_ind = soci::i_null,
                  payload_ind = soci::i_null;
  long long completed = 0, total = 0, attempt = 1;
  int cancel_requested = 0;

  void bind(soci::statement& st) {
    st.exchange(soci::into(private_id));
    st.exchange(soci::into(job_plugin_id));
    st.exchange(soci::into(job_name));
    st.exchange(soci::into(server_id));
    st.exchange(soci::into(create_time));
    st.exchange(soci::into(update_time));
    st.exchange(soci::into(end_time, end_ind));
    st.exchange(soci::into(completed));
    st.exchange(soci::into(total));
    st.exchange(soci::into(status));
    st.exchange(soci::into(message, message_ind));
    st.exchange(soci::into(attempt));
    st.exchange(soci::into(cancel_requested));
    st.exchange(soci::into(work_end_time, work_end_ind));
    st.exchange(soci::into(payload, payload_ind));
  }

  Run to_run() const {
    Run run{private_id,   job_plugin_id, job_name, server_id,      to_timestamp(create_time), to_timestamp(update_time),
            std::nullopt, completed,     total,    Status::running};
    if (end_ind == soci::i_ok) run.end_time = to_timestamp(end_time);
    const auto parsed = parse_status(status);
    if (!parsed) throw Error(ErrorCode::internal, "run " + quoted(private_id) + " has unknown status " + status);
    run.status = *parsed;
    if (message_ind == soci::i_ok) run.message = message;
    run.attempt = attempt;
    run.cancel_requested = cancel_requested != 0;
    if (work_end_ind == soci::i_ok) run.work_end_time = to_timestamp(work_end_time);
    if (payload_ind == soci::i_ok) run.payload = payload;
    return run;
  }
};

// The columns JobRow binds, in its order (SQL of SQLite; PostgreSQL
// converts the times and booleans in queries.hpp).
#define JR_JOB_ROW_COLUMNS                                                                                    \
  "plugin_id, name, description, next_scheduled_run, schedule, paused, run_requested, consecutive_failures, " \
  "last_status, last_end_time, last_message, last_success_time, requested_payload"

// Destination of one row of: plugin_id, name, description,
// next_scheduled_run (microseconds since the epoch), schedule, paused (0 or
// 1), run_requested (0 or 1), consecutive_failures, last_status,
// last_end_time, last_message, last_success_time, requested_payload.
struct JobRow {
  std::string plugin_id, name, description, schedule, last_status, last_message, requested_payload;
  Micros next = 0, last_end = 0, last_success = 0;
  int paused = 0, run_requested = 0;
  long long failures = 0;
  soci::indicator last_status_ind = soci::i_null, last_end_ind = soci::i_null, last_message_ind = soci::i_null,
                  last_success_ind = soci::i_null, requested_payload_ind = soci::i_null;

  void bind(soci::statement& st) {
    st.exchange(soci::into(plugin_id));
    st.exchange(soci::into(name));
    st.exchange(soci::into(description));
    st.exchange(soci::into(next));
    st.exchange(soci::into(schedule));
    st.exchange(soci::into(paused));
    st.exchange(soci::into(run_requested));
    st.exchange(soci::into(failures));
    st.exchange(soci::into(last_status, last_status_ind));
    st.exchange(soci::into(last_end, last_end_ind));
    st.exchange(soci::into(last_message, last_message_ind));
    st.exchange(soci::into(last_success, last_success_ind));
    st.exchange(soci::into(requested_payload, requested_payload_ind));
  }
  Job to_job() const {
    Job job{plugin_id, name, description, to_timestamp(next), schedule};
    job.paused = paused != 0;
    job.run_requested = run_requested != 0;
    job.consecutive_failures = failures;
    if (last_status_ind == soci::i_ok) job.last_status = parse_status(last_status);
    if (last_end_ind == soci::i_ok) job.last_end_time = to_timestamp(last_end);
    if (last_message_ind == soci::i_ok) job.last_message = last_message;
    if (last_success_ind == soci::i_ok) job.last_success_time = to_timestamp(last_success);
    if (requested_payload_ind == soci::i_ok) job.requested_payload = requested_payload;
    return job;
  }
};

// Destination of one row of: job_name, server_id, fingerprint,
// registered_time, seen_time (microseconds), live (0 or 1).
struct ServingRow {
  std::string job_name, server_id, fingerprint;
  Micros registered = 0, seen = 0;
  int live = 0;

  void bind(soci::statement& st) {
    st.exchange(soci::into(job_name));
    st.exchange(soci::into(server_id));
    st.exchange(soci::into(fingerprint));
    st.exchange(soci::into(registered));
    st.exchange(soci::into(seen));
    st.exchange(soci::into(live));
  }
  Serving to_serving() const {
    return Serving{job_name, server_id, fingerprint, to_timestamp(registered), to_timestamp(seen), live != 0};
  }
};

}  // namespace jobrepo::soci_support
