// Pieces every built-in backend shares (sqlite, postgres, mariadb),
// whatever its database layer: header-only, not installed. Times cross the
// database boundary as integer microseconds since the Unix epoch.
#pragma once

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

}  // namespace jobrepo::store_support
