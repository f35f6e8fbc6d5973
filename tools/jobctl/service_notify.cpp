#include "service_notify.hpp"

#include "log.hpp"

#include <cstdlib>
#include <ctime>

#ifdef JOBCTL_WITH_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace jobctl {

ServiceNotifier::ServiceNotifier(std::function<std::string()> stuck) : stuck_(std::move(stuck)) {
#ifdef JOBCTL_WITH_SYSTEMD
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // > 0: systemd asks this process (WATCHDOG_PID unset or ours) for pings.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_ = std::chrono::microseconds(usec);
    thread_ = std::thread([this] { watchdog_loop(); });
  }
#endif
}

ServiceNotifier::~ServiceNotifier() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServiceNotifier::send(const std::string& message) noexcept {
#ifdef JOBCTL_WITH_SYSTEMD
  if (!enabled_) return;
  if (const int r = sd_notify(0, message.c_str()); r < 0) {
    // Once: a socket that refuses one message refuses the next ones too.
    static std::once_flag said;
    std::call_once(said, [&] {
      log(LogLevel::warning, "systemd notification failed (NOTIFY_SOCKET): error " + std::to_string(-r));
    });
  }
#else
  (void)message;
#endif
}

namespace {

// A status line for systemd: one line, within what `systemctl status` shows.
std::string status_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (text.size() > 200) text = text.substr(0, 197) + "...";
  return text;
}

}  // namespace

void ServiceNotifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status_line(status)); }

void ServiceNotifier::status(const std::string& status) { send("STATUS=" + status_line(status)); }

void ServiceNotifier::reloading() {
  // MONOTONIC_USEC: what Type=notify-reload (systemd 253) asks for; others ignore it.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<long long>(now.tv_sec) * 1000000LL + now.tv_nsec / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the config");
}

void ServiceNotifier::stopping() { send("STOPPING=1\nSTATUS=stopping: ending the runs of this server"); }

// Pings at half the watchdog's period (systemd's advice) while `stuck_` says
// nothing; says once in the log and in the status when it stops pinging,
// and when it pings again.
void ServiceNotifier::watchdog_loop() noexcept {
  const auto period = *watchdog_ / 2;
  bool withheld = false;
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    std::string reason;
    try {
      reason = stuck_();
    } catch (const std::exception& e) {
      reason = std::string("the health check failed: ") + e.what();
    } catch (...) {
      reason = "the health check failed";
    }
    if (reason.empty()) {
      send("WATCHDOG=1");
      if (withheld) log(LogLevel::info, "systemd watchdog: pinging again");
      withheld = false;
    } else if (!withheld) {
      withheld = true;
      log(LogLevel::error, "systemd watchdog: not pinging, so that systemd restarts serve: " + status_line(reason));
      send("STATUS=stuck: " + status_line(reason));
    }
    lock.lock();
    wake_.wait_for(lock, period, [&] { return stop_; });
  }
}

}  // namespace jobctl
