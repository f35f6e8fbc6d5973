#include <jobrepo/runtime.hpp>

#include <algorithm>
#include <list>
#include <utility>

namespace jobrepo {

bool Runtime::wait_for(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                       std::chrono::microseconds timeout, const std::function<bool()>& ready) {
  const auto now = steady_now();
  // Beyond what a time point holds: no deadline.
  const auto room = std::chrono::duration_cast<std::chrono::microseconds>(SteadyTime::max() - now);
  const auto deadline =
      timeout >= room ? SteadyTime::max() : now + std::chrono::duration_cast<SteadyTime::duration>(timeout);
  return wait_until(lock, cv, deadline, ready);
}

namespace {

class SystemRuntime final : public Runtime {
 public:
  SteadyTime steady_now() override { return std::chrono::steady_clock::now(); }
  Timestamp wall_now() override { return Clock::now(); }
  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, SteadyTime deadline,
                  const std::function<bool()>& ready) override {
    if (deadline == SteadyTime::max()) {
      cv.wait(lock, ready);
      return true;
    }
    return cv.wait_until(lock, deadline, ready);
  }
  void notify_all(std::condition_variable& cv) override { cv.notify_all(); }
  std::thread start_thread(std::function<void()> body) override { return std::thread(std::move(body)); }
};

}  // namespace

Runtime& system_runtime() {
  static SystemRuntime runtime;
  return runtime;
}

// --- ManualRuntime ------------------------------------------------------------
//
// `busy` counts the threads started through the runtime that are not
// waiting in wait_until() (or that were woken from it and have not waited
// again). A wait is woken by notify_all() of its cv or by advance() past its
// deadline; whoever wakes it counts it busy at once, under the runtime's
// mutex, so that settle() never sees zero between the wake and the thread's
// return from cv.wait(). Lock order: a waiter's own mutex, then the
// runtime's. advance() notifies under the runtime's mutex, while no woken
// wait can have left (and its cv be gone); a notify that comes between a
// wait's registration and its cv.wait() is not lost: the wait looks again
// every 10 ms of real time.

namespace {

thread_local const void* managed_by = nullptr;  // the ManualRuntime that started this thread

}  // namespace

struct ManualRuntime::Impl {
  struct Waiter {
    std::condition_variable* cv;
    SteadyTime deadline;
    bool managed;
    bool woken = false;
  };

  std::mutex mutex;
  std::condition_variable settled;
  SteadyTime steady{std::chrono::hours(1)};  // not the epoch: no "long ago" by accident
  Timestamp wall;
  std::list<Waiter*> waiters;
  int busy = 0;

  void idle() {  // under mutex
    if (--busy == 0) settled.notify_all();
  }
  void move(std::chrono::microseconds by);  // under mutex: advance()'s work
};

ManualRuntime::ManualRuntime(Timestamp wall_start) : impl_(std::make_unique<Impl>()) { impl_->wall = wall_start; }

ManualRuntime::~ManualRuntime() = default;

Runtime::SteadyTime ManualRuntime::steady_now() {
  const std::lock_guard lock(impl_->mutex);
  return impl_->steady;
}

Timestamp ManualRuntime::wall_now() {
  const std::lock_guard lock(impl_->mutex);
  return impl_->wall;
}

bool ManualRuntime::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, SteadyTime deadline,
                               const std::function<bool()>& ready) {
  if (ready()) return true;
  auto& impl = *impl_;
  Impl::Waiter waiter{&cv, deadline, managed_by == this};
  {
    const std::lock_guard guard(impl.mutex);
    if (impl.steady >= deadline) return false;
    impl.waiters.push_back(&waiter);
    if (waiter.managed) impl.idle();
  }
  for (;;) {
    cv.wait_for(lock, std::chrono::milliseconds(10));
    const bool is_ready = ready();
    const std::lock_guard guard(impl.mutex);
    if (is_ready || impl.steady >= deadline) {
      impl.waiters.remove(&waiter);
      if (waiter.managed && !waiter.woken) ++impl.busy;
      return is_ready;
    }
    // Woken, but not for it (another wait's news, or spuriously): waits again.
    if (waiter.woken) {
      waiter.woken = false;
      if (waiter.managed) impl.idle();
    }
  }
}

void ManualRuntime::notify_all(std::condition_variable& cv) {
  {
    const std::lock_guard guard(impl_->mutex);
    for (auto* waiter : impl_->waiters) {
      if (waiter->cv != &cv || waiter->woken) continue;
      waiter->woken = true;
      if (waiter->managed) ++impl_->busy;
    }
  }
  cv.notify_all();
}

std::thread ManualRuntime::start_thread(std::function<void()> body) {
  {
    const std::lock_guard guard(impl_->mutex);
    ++impl_->busy;
  }
  return std::thread([this, body = std::move(body)] {
    managed_by = this;
    body();
    const std::lock_guard guard(impl_->mutex);
    impl_->idle();
  });
}

void ManualRuntime::Impl::move(std::chrono::microseconds by) {
  steady += std::max(by, std::chrono::microseconds(0));
  wall += std::max(by, std::chrono::microseconds(0));
  for (auto* waiter : waiters) {
    if (waiter->deadline > steady || waiter->woken) continue;
    waiter->woken = true;
    if (waiter->managed) ++busy;
    waiter->cv->notify_all();
  }
}

void ManualRuntime::advance(std::chrono::microseconds by) {
  const std::lock_guard guard(impl_->mutex);
  impl_->move(by);
}

void ManualRuntime::step_wall(std::chrono::microseconds by) {
  const std::lock_guard guard(impl_->mutex);
  impl_->wall += by;
}

bool ManualRuntime::settle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->settled.wait_for(lock, timeout, [&] { return impl_->busy == 0; });
}

// The clock moves under the same lock that sees every thread settled: a
// wait woken meanwhile from outside the runtime (a store's wake-up thread)
// counts as busy under that lock, so its work runs wholly before the move
// or wholly after it, never reading a time from each side of it.
bool ManualRuntime::advance_and_settle(std::chrono::microseconds by, std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(impl_->mutex);
    if (!impl_->settled.wait_for(lock, timeout, [&] { return impl_->busy == 0; })) return false;
    impl_->move(by);
  }
  return settle(timeout);
}

}  // namespace jobrepo
