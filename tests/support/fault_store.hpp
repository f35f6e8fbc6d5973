// Test helper: a Store that makes calls fail or hang at random, like
// LevelDB's fault-injection Env. Every call of the Store interface (but
// subscribe_due and set_clock_offset) may, with the set probabilities:
//   - fail before it reaches the target with `unavailable` or `busy`;
//   - hang for up to `max_hang`, then go on;
//   - reach the target and then fail with `unavailable` (the reply was
//     lost: what the target did stays done), the nastiest fault a client
//     sees when a connection breaks after a commit.
// Thread-safe. Counters say how often each fault struck.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store_wrapper.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace jobrepo::test {

struct Faults {
  double fail = 0;        // fail before the call
  double hang = 0;        // hang, then call
  double lose_reply = 0;  // call, then fail
  std::chrono::milliseconds max_hang{200};
};

class FaultStore : public StoreWrapper {
 public:
  FaultStore(Store& target, Faults faults, unsigned seed = std::random_device{}())
      : StoreWrapper(target), faults_(faults), random_(seed) {}

  void set_faults(Faults faults) {
    const std::lock_guard lock(mutex_);
    faults_ = faults;
  }

  std::atomic<int> failed{0}, hung{0}, lost{0};

 protected:
  void around(const char* operation, const std::function<void()>& forward) override {
    if (std::string_view(operation) == "migrate") {  // set-up, never faulted
      forward();
      return;
    }
    std::chrono::milliseconds hang_for{0};
    switch (roll(hang_for)) {
      case Fault::fail_busy:
        ++failed;
        throw Error(ErrorCode::busy, std::string(operation) + ": injected lock conflict");
      case Fault::fail_unavailable:
        ++failed;
        throw Error(ErrorCode::unavailable, std::string(operation) + ": injected outage");
      case Fault::hang:
        ++hung;
        std::this_thread::sleep_for(hang_for);
        break;
      case Fault::lose_reply:
        forward();
        ++lost;
        throw Error(ErrorCode::unavailable, std::string(operation) + ": injected lost reply");
      case Fault::none: break;
    }
    forward();
  }

 private:
  enum class Fault { none, fail_busy, fail_unavailable, hang, lose_reply };

  Fault roll(std::chrono::milliseconds& hang_for) {
    const std::lock_guard lock(mutex_);
    std::uniform_real_distribution<double> chance(0.0, 1.0);
    const double x = chance(random_);
    if (x < faults_.fail) return random_() % 2 ? Fault::fail_busy : Fault::fail_unavailable;
    if (x < faults_.fail + faults_.hang) {
      hang_for = std::chrono::milliseconds(random_() % (faults_.max_hang.count() + 1));
      return Fault::hang;
    }
    if (x < faults_.fail + faults_.hang + faults_.lose_reply) return Fault::lose_reply;
    return Fault::none;
  }

  std::mutex mutex_;
  Faults faults_;
  std::minstd_rand random_;
};

}  // namespace jobrepo::test
