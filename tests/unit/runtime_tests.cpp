// ManualRuntime (runtime.hpp): clocks that move only when told, waits that
// end when the clock passes their deadline or when notified, and settle(),
// which knows whether the threads it started are waiting.
#include <jobrepo/runtime.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("runtime: a manual runtime's clocks stand still until advanced - a wall step leaves the monotonic clock") {
  jobrepo::ManualRuntime rt;
  const auto steady = rt.steady_now();
  const auto wall = rt.wall_now();
  CHECK(wall == jobrepo::ManualRuntime::default_start);
  std::this_thread::sleep_for(5ms);
  CHECK(rt.steady_now() == steady);
  CHECK(rt.wall_now() == wall);
  rt.advance(1500ms);
  CHECK(rt.steady_now() - steady == 1500ms);
  CHECK(rt.wall_now() - wall == 1500ms);
  rt.step_wall(-1h);
  CHECK(rt.steady_now() - steady == 1500ms);
  CHECK(rt.wall_now() - wall == 1500ms - 1h);
  rt.advance(-5s);  // never backwards
  CHECK(rt.steady_now() - steady == 1500ms);
}

TEST_CASE("runtime: a thread's wait ends when the clock passes its deadline or it is notified - settle() knows") {
  jobrepo::ManualRuntime rt;
  std::mutex mutex;
  std::condition_variable cv;
  bool ready = false;
  std::atomic<int> woke{0};
  std::atomic<bool> timed_out{false};
  auto waiter = rt.start_thread([&] {
    std::unique_lock lock(mutex);
    // First: a deadline 10 s on.
    timed_out = !rt.wait_for(lock, cv, 10s, [&] { return ready; });
    ++woke;
    // Then: no deadline, until notified.
    rt.wait_until(lock, cv, jobrepo::Runtime::SteadyTime::max(), [&] { return ready; });
    ++woke;
  });
  REQUIRE(rt.settle(5s));  // it waits
  CHECK(woke == 0);
  CHECK(rt.advance_and_settle(9999ms));
  CHECK(woke == 0);
  CHECK(rt.advance_and_settle(1ms));
  CHECK(woke == 1);
  CHECK(timed_out);
  CHECK(rt.advance_and_settle(1h));  // no deadline: the clock does not end it
  CHECK(woke == 1);
  {
    const std::lock_guard lock(mutex);
    ready = true;
  }
  rt.notify_all(cv);
  CHECK(rt.settle(5s));  // it ended
  CHECK(woke == 2);
  waiter.join();
}

TEST_CASE("runtime: settle() waits for a thread that is busy, and says so when it stays busy") {
  jobrepo::ManualRuntime rt;
  std::atomic<bool> release{false};
  auto busy = rt.start_thread([&] {
    while (!release) std::this_thread::sleep_for(1ms);
  });
  CHECK(!rt.settle(50ms));
  release = true;
  CHECK(rt.settle(5s));
  busy.join();
}

TEST_CASE("runtime: the system runtime waits in real time and wakes on notify") {
  auto& rt = jobrepo::system_runtime();
  std::mutex mutex;
  std::condition_variable cv;
  std::unique_lock lock(mutex);
  const auto before = std::chrono::steady_clock::now();
  CHECK(!rt.wait_for(lock, cv, 20ms, [] { return false; }));
  CHECK(std::chrono::steady_clock::now() - before >= 20ms);
  CHECK(rt.wait_for(lock, cv, std::chrono::microseconds::max(), [] { return true; }));  // no overflow
}
