// Pieces shared by the SOCI-based backends (sqlite, postgres): header-only,
// theirs alone (not installed since 0.7). Each query that returns runs or
// jobs selects the columns in the order RunRow / JobRow bind them, with times
// as integer microseconds since the Unix epoch.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>
#include <jobrepo/text.hpp>
#include <jobrepo/types.hpp>

#include <soci/soci.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace jobrepo::soci_support {

using Micros = long long;  // SOCI binds 64-bit integers as long long

// Every stored time becomes a Timestamp here (saturated: types.hpp).
inline Timestamp to_timestamp(Micros us) { return timestamp_from_us(us); }

// A value in a message, as core shows it (text.hpp: escaped, cut, one line).
inline std::string quoted(std::string_view text) { return quote_text(text); }

inline std::string job_subject(const std::string& plugin_id, const std::string& name) {
  return "job " + quoted(name) + " in plugin " + quoted(plugin_id);
}

// Appends `text` to `out` as a JSON string (quoted and escaped).
inline void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(hex[u >> 4U]);
      out.push_back(hex[u & 0xFU]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

// A JSON array of strings: binds a whole list of names as one value.
inline std::string json_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out.push_back(',');
    append_json_string(out, item);
  }
  out.push_back(']');
  return out;
}

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

// Microseconds since the epoch of an absolute due time.
inline Micros to_micros(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// The next_scheduled_run of `due` for a store whose now is `now`.
inline Micros due_micros(const Due& due, Micros now) { return due.at ? to_micros(*due.at) : now + due.in.count(); }

// A pool of connections of type C, opened on demand up to `max`; callers
// wait when all are in use. A Lease returns its connection when it ends,
// unless discard() was called (a broken connection is closed instead).
template <class C>
class Pool {
 public:
  using Factory = std::function<std::unique_ptr<C>()>;

  Pool(int max, Factory factory) : max_(max), factory_(std::move(factory)) {}

  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<C> connection) : pool_(pool), connection_(std::move(connection)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.give_back(std::move(connection_), discarded_); }
    C& operator*() const { return *connection_; }
    C* operator->() const { return connection_.get(); }
    void discard() { discarded_ = true; }

   private:
    Pool& pool_;
    std::unique_ptr<C> connection_;
    bool discarded_ = false;
  };

  // Closes every idle connection (e.g. after one of them was found broken).
  void clear_idle() {
    std::vector<std::unique_ptr<C>> closing;
    {
      const std::lock_guard lock(mutex_);
      closing.swap(idle_);
      open_ -= static_cast<int>(closing.size());
    }
    available_.notify_all();
  }

  Lease acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(connection));
    }
    ++open_;
    lock.unlock();
    try {
      return Lease(*this, factory_());
    } catch (...) {
      lock.lock();
      --open_;
      available_.notify_one();
      throw;
    }
  }

 private:
  void give_back(std::unique_ptr<C> connection, bool discard) {
    {
      const std::lock_guard lock(mutex_);
      if (discard) {
        --open_;
      } else {
        idle_.push_back(std::move(connection));
      }
    }
    available_.notify_one();
    // A discarded connection closes here, outside the lock.
  }

  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<C>> idle_;
  int open_ = 0;
  const int max_;
  Factory factory_;
};

}  // namespace jobrepo::soci_support
