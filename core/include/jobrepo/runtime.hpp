// jobrepo: Runtime, the clocks, waits and threads of a Scheduler in one
// injectable place (in the manner of LevelDB's Env), and ManualRuntime, a
// runtime whose clocks move only when a test says so.
//
// Every time the Scheduler reads (the monotonic clock for its timeouts,
// fences and intervals, the wall clock for what people read), every wait of
// its threads (and JobContext::sleep_for) and every thread it starts go
// through its Runtime (SchedulerOptions::runtime; by default
// system_runtime()). A test gives it a ManualRuntime, moves time with
// advance(), and waits with settle() until the scheduler has done what that
// time asks for: no test sleeps for time to pass, and times are exact.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <jobrepo/types.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace jobrepo {

class Runtime {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  Runtime() = default;
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  virtual ~Runtime() = default;

  // The monotonic clock: never steps (an NTP step moves the wall clock only).
  virtual SteadyTime steady_now() = 0;
  // The wall clock (UTC).
  virtual Timestamp wall_now() = 0;

  // Waits on `cv` until `ready()` is true or steady_now() reaches `deadline`
  // (SteadyTime::max(): no deadline); returns ready(). REQUIRES: `lock`
  // holds the mutex that guards what ready() reads, and whoever makes
  // ready() true does so under that mutex and then calls notify_all(cv).
  // ready() is called with the lock held.
  virtual bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, SteadyTime deadline,
                          const std::function<bool()>& ready) = 0;
  // wait_until(steady_now() + timeout), without overflow for long timeouts.
  bool wait_for(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, std::chrono::microseconds timeout,
                const std::function<bool()>& ready);
  // Wakes the waits on `cv`, each to check its ready() again. Use it, not
  // cv.notify_all(), for a cv that wait_until() waits on: a ManualRuntime
  // counts the woken waits as busy until they wait again (settle()).
  virtual void notify_all(std::condition_variable& cv) = 0;

  // Starts a thread that runs `body` (which must not throw).
  virtual std::thread start_thread(std::function<void()> body) = 0;
};

// The process's own clocks, real waits and plain threads.
Runtime& system_runtime();

// A runtime for tests: its clocks stand still until advance() or
// step_wall(), and it knows whether the threads it started are busy or
// waiting (settle()).
class ManualRuntime final : public Runtime {
 public:
  // 2030-01-01T00:00:00Z, so that tests can assert exact times.
  static constexpr Timestamp default_start{std::chrono::seconds(1893456000)};

  explicit ManualRuntime(Timestamp wall_start = default_start);
  ManualRuntime(const ManualRuntime&) = delete;
  ManualRuntime& operator=(const ManualRuntime&) = delete;
  ManualRuntime(ManualRuntime&&) = delete;
  ManualRuntime& operator=(ManualRuntime&&) = delete;
  ~ManualRuntime() override;

  SteadyTime steady_now() override;
  Timestamp wall_now() override;
  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, SteadyTime deadline,
                  const std::function<bool()>& ready) override;
  void notify_all(std::condition_variable& cv) override;
  std::thread start_thread(std::function<void()> body) override;

  // Moves both clocks forward by `by` (>= 0) and wakes every wait whose
  // deadline it passed. Does not wait for them: call settle().
  void advance(std::chrono::microseconds by);
  // Moves the wall clock alone, forward or back, as an NTP step does; the
  // monotonic clock stays.
  void step_wall(std::chrono::microseconds by);

  // Waits, in real time up to `timeout`, until every thread started through
  // this runtime waits on it with a deadline still to come, or has ended:
  // then whatever the scheduler does next needs the clock to move. False
  // when `timeout` passed first: a thread is busy outside the runtime's
  // waits (a handler that does not wait with JobContext::sleep_for, a store
  // call that hangs).
  bool settle(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // settle(), advance(by), then settle() again; false as settle() (when
  // the first one fails, the clock has not moved). The first settle and
  // the move are one step: a thread woken meanwhile from outside the
  // runtime (a store's wake-up thread) does its work wholly before the move
  // or wholly after it, so no store call reads a time from each side.
  bool advance_and_settle(std::chrono::microseconds by, std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobrepo
