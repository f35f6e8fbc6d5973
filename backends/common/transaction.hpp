// The transaction helper and the retry policy of every built-in backend
// (sqlite, postgres, mariadb): header-only, not installed.
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <thread>

namespace jobrepo::store_support {

// The retry policy every store follows. A call that lost a conflict which the
// database settles by refusing one side (a deadlock, a serialization
// failure, SQLite's busy lock) runs again after a random pause of
// 0.2-5.2 ms, so that the calls that collided do not meet again in step,
// until StoreOptions::busy_timeout has passed since the call began; then it
// fails with that conflict's error. What counts as such a conflict is each
// backend's (its errors.cpp); a lost connection is never retried, since the
// call may have committed.
class Retry {
 public:
  explicit Retry(std::chrono::milliseconds budget)
      : deadline_(std::chrono::steady_clock::now() + budget),
        jitter_(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id()))) {}

  // Whether the call may run again: false once the budget is spent,
  // otherwise true after the pause.
  bool again() {
    if (std::chrono::steady_clock::now() >= deadline_) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200 + jitter_() % 5000));
    return true;
  }

 private:
  std::chrono::steady_clock::time_point deadline_;
  std::minstd_rand jitter_;
};

// Runs `body()` as one transaction on `c`: c.begin() opens it, c.commit()
// ends it when `body` returns, c.rollback() (which never throws) when
// anything throws, and the exception goes on.
template <class Connection, class Body>
auto in_transaction(Connection& c, Body&& body) {
  c.begin();
  try {
    auto result = std::forward<Body>(body)();
    c.commit();
    return result;
  } catch (...) {
    c.rollback();
    throw;
  }
}

}  // namespace jobrepo::store_support
