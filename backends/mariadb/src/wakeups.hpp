// Wake-ups of the MariaDB store (Store::subscribe_due), without LISTEN:
// changes this store commits are told at once; changes by other processes
// are found by polling, every poll_interval (250 ms by default, the URL's
// wakeup_poll_ms), the earliest due time and the count of each subscribed
// plugin's claimable jobs (one indexed query per plugin): a change tells
// that plugin's subscribers. After the database could not be read, the
// next good poll tells them too (news may have been lost).
#pragma once

#include <jobrepo/backend.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace jobrepo::mariadb_backend {

class DuePoller {
 public:
  // (earliest due time, count) of a plugin's claimable jobs, or nullopt
  // when the database cannot be read now.
  using State = std::pair<long long, long long>;
  using Read = std::function<std::optional<State>(const std::string& plugin_id)>;

  DuePoller(Read read, std::chrono::milliseconds interval);
  DuePoller(const DuePoller&) = delete;
  DuePoller& operator=(const DuePoller&) = delete;
  ~DuePoller();

  // Starts the polling thread at the first call.
  std::unique_ptr<DueSubscription> subscribe(const std::string& plugin_id, std::function<void()> on_due);

  // A change of plugin_id this store is about to commit on this thread:
  // told by flush() once committed, dropped by discard().
  void changed(const std::string& plugin_id);
  void flush();
  void discard();

 private:
  class Subscription;
  void loop();
  void release(const std::string& plugin_id);

  const Read read_;
  const std::chrono::milliseconds interval_;
  DueNotifier notifier_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, int> plugins_;  // subscribed plugins, with their count of subscriptions
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace jobrepo::mariadb_backend
