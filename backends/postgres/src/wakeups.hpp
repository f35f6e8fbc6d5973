// Wake-ups of the PostgreSQL store (Store::subscribe_due): DueListener,
// LISTEN jobrepo_due on a connection of its own, feeding a DueNotifier.
// Started by a PostgresStore's first subscribe_due().
#pragma once

#include <jobrepo/backend.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace jobrepo::postgres_backend {

// The channel the store NOTIFYs (payload: the plugin id) in the transaction
// of each change that may make jobs due.
inline constexpr const char* due_channel = "jobrepo_due";

class DueListener {
 public:
  // `conninfo`: a libpq connection string or URI. Connects on its own thread,
  // reconnecting after a failure (backing off up to `max_backoff`); after
  // each (re)connect every subscriber is told, since news may have been lost.
  DueListener(std::string conninfo, const DueNotifier& notifier,
              std::chrono::milliseconds max_backoff = std::chrono::milliseconds(2000));
  DueListener(const DueListener&) = delete;
  DueListener& operator=(const DueListener&) = delete;
  ~DueListener();

 private:
  void loop();
  bool wait_for_stop(std::chrono::milliseconds duration) const;

  const std::string conninfo_;
  const DueNotifier& notifier_;
  const std::chrono::milliseconds max_backoff_;
  int stop_fd_ = -1;  // eventfd: readable once the destructor runs
  std::thread thread_;
};

}  // namespace jobrepo::postgres_backend
