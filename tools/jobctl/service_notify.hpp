// systemd's service notifications for jobctl serve (docs/operations.md,
// "Running serve under systemd"): READY, RELOADING, STOPPING and STATUS
// through libsystemd's sd_notify(), and the watchdog (WatchdogSec=), pinged
// while serve is not stuck. Not under systemd (no NOTIFY_SOCKET, or a unit
// of Type=simple) it sends nothing and starts no thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace jobctl {

class ServiceNotifier {
 public:
  // `stuck` says why serve would not recover by itself (a loop that stopped
  // going round), or returns empty: the watchdog is pinged only then.
  explicit ServiceNotifier(std::function<std::string()> stuck);
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;
  ~ServiceNotifier();

  void ready(const std::string& status);
  void status(const std::string& status);
  void reloading();
  void stopping();

 private:
  void send(const std::string& message) noexcept;
  void watchdog_loop() noexcept;

  bool enabled_ = false;                               // systemd listens: NOTIFY_SOCKET was set when serve started
  std::optional<std::chrono::microseconds> watchdog_;  // WATCHDOG_USEC, when systemd asks for pings
  std::function<std::string()> stuck_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// The variables by which systemd speaks to serve alone: a command's
// environment goes without them (command_environment()).
inline constexpr const char* service_variables[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};

}  // namespace jobctl
