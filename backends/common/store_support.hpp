// Pieces every built-in backend shares (sqlite, postgres, mariadb),
// whatever its database layer: header-only, not installed. Times cross the
// database boundary as integer microseconds since the Unix epoch.
#pragma once

#include "bound_value.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>
#include <jobrepo/text.hpp>
#include <jobrepo/types.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace jobrepo::store_support {

using Micros = long long;

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

// Microseconds since the epoch of an absolute due time.
inline Micros to_micros(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// The next_scheduled_run of `due` for a store whose now is `now`.
inline Micros due_micros(const Due& due, Micros now) { return due.at ? to_micros(*due.at) : now + due.in.count(); }

// The run in the columns of `row` (every store selects them in this order:
// private_id, job_plugin_id, job_name, server_id, create_time, update_time,
// end_time, completed_count, total_count, status, message, attempt,
// cancel_requested (0/1), work_end_time, payload; times in microseconds).
// `Row` reads a column by index: null(i), number(i), text(i), optional_text(i).
template <class Row>
Run run_from_row(const Row& row) {
  Run run{row.text(0),
          row.text(1),
          row.text(2),
          row.text(3),
          to_timestamp(row.number(4)),
          to_timestamp(row.number(5)),
          std::nullopt,
          row.number(7),
          row.number(8),
          Status::running};
  if (!row.null(6)) run.end_time = to_timestamp(row.number(6));
  const auto status = parse_status(row.text(9));
  if (!status) throw Error(ErrorCode::internal, "run " + quoted(run.private_id) + " has unknown status " + row.text(9));
  run.status = *status;
  run.message = row.optional_text(10);
  run.attempt = row.number(11);
  run.cancel_requested = row.number(12) != 0;
  if (!row.null(13)) run.work_end_time = to_timestamp(row.number(13));
  run.payload = row.optional_text(14);
  return run;
}

// The job in the columns of `row`: plugin_id, name, description,
// next_scheduled_run, schedule, paused (0/1), run_requested (0/1),
// consecutive_failures, last_status, last_end_time, last_message,
// last_success_time, requested_payload.
template <class Row>
Job job_from_row(const Row& row) {
  Job job{row.text(0), row.text(1), row.text(2), to_timestamp(row.number(3)), row.text(4)};
  job.paused = row.number(5) != 0;
  job.run_requested = row.number(6) != 0;
  job.consecutive_failures = row.number(7);
  if (!row.null(8)) job.last_status = parse_status(row.text(8));
  if (!row.null(9)) job.last_end_time = to_timestamp(row.number(9));
  job.last_message = row.optional_text(10);
  if (!row.null(11)) job.last_success_time = to_timestamp(row.number(11));
  job.requested_payload = row.optional_text(12);
  return job;
}

// The jobs a server serves as one JSON array of {"name", "fingerprint"}.
inline std::string served_jobs_json(const std::vector<ServedJob>& jobs) {
  std::string out = "[";
  for (const auto& job : jobs) {
    if (out.size() > 1) out.push_back(',');
    out.append("{\"name\":");
    append_json_string(out, job.name);
    out.append(",\"fingerprint\":");
    append_json_string(out, job.fingerprint);
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

// Observed runs as one JSON array of {"id", "updated"} (microseconds).
inline std::string observed_runs_json(const std::vector<ObservedRun>& runs) {
  std::string out = "[";
  for (const auto& run : runs) {
    if (out.size() > 1) out.push_back(',');
    out.append("{\"id\":");
    append_json_string(out, run.run_id);
    out.append(",\"updated\":").append(std::to_string(to_micros(run.update_time))).append("}");
  }
  out.push_back(']');
  return out;
}

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

  // acquire() for `operation`: a jobrepo::Error of opening a connection
  // names the operation first ("run_jobs: cannot connect to ...").
  Lease acquire_for(const char* operation) {
    try {
      return acquire();
    } catch (const Error& e) {
      throw Error(e.code(), std::string(operation) + ": " + e.what(), e.native_code());
    }
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

}  // namespace jobrepo::store_support
