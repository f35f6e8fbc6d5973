#include "wakeups.hpp"

namespace jobrepo::mariadb_backend {

namespace {

// The changes the calling thread's current operation made (a store's
// operation runs on its caller's thread, one at a time).
thread_local std::vector<std::string> pending;

}  // namespace

class DuePoller::Subscription : public DueSubscription {
 public:
  Subscription(DuePoller& poller, std::string plugin_id, std::unique_ptr<DueSubscription> inner)
      : poller_(poller), plugin_id_(std::move(plugin_id)), inner_(std::move(inner)) {}
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() override {
    inner_.reset();
    poller_.release(plugin_id_);
  }

 private:
  DuePoller& poller_;
  std::string plugin_id_;
  std::unique_ptr<DueSubscription> inner_;
};

DuePoller::DuePoller(Read read, std::chrono::milliseconds interval) : read_(std::move(read)), interval_(interval) {}

DuePoller::~DuePoller() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<DueSubscription> DuePoller::subscribe(const std::string& plugin_id, std::function<void()> on_due) {
  auto inner = notifier_.subscribe(plugin_id, std::move(on_due));
  const std::lock_guard lock(mutex_);
  ++plugins_[plugin_id];
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  return std::make_unique<Subscription>(*this, plugin_id, std::move(inner));
}

void DuePoller::release(const std::string& plugin_id) {
  const std::lock_guard lock(mutex_);
  const auto found = plugins_.find(plugin_id);
  if (found != plugins_.end() && --found->second <= 0) plugins_.erase(found);
}

void DuePoller::changed(const std::string& plugin_id) { pending.push_back(plugin_id); }

void DuePoller::flush() {
  std::vector<std::string> told;
  told.swap(pending);
  for (const auto& plugin_id : told) notifier_.notify(plugin_id);
}

void DuePoller::discard() { pending.clear(); }

void DuePoller::loop() {
  std::map<std::string, std::optional<State>> last;  // per plugin; nullopt: not readable last time
  std::unique_lock lock(mutex_);
  while (!stop_) {
    std::vector<std::string> plugins;
    for (const auto& [plugin_id, count] : plugins_) plugins.push_back(plugin_id);
    lock.unlock();
    for (const auto& plugin_id : plugins) {
      const auto state = read_(plugin_id);
      const auto known = last.find(plugin_id);
      // The first poll of a plugin sets what is known; a change, or a
      // good read after a failed one, tells its subscribers.
      if (known != last.end() && state && known->second != state) notifier_.notify(plugin_id);
      last[plugin_id] = state;
    }
    lock.lock();
    for (auto it = last.begin(); it != last.end();) {
      it = plugins_.count(it->first) != 0 ? std::next(it) : last.erase(it);
    }
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace jobrepo::mariadb_backend
