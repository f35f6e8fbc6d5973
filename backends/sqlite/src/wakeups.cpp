#include "wakeups.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

namespace jobrepo::sqlite_backend {

namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// When to look at data_version after a write: the commit becomes visible a
// moment after its WAL frames are written.
constexpr std::array<Steady::duration, 6> looks_after{500us, 2ms, 10ms, 50ms, 250ms, 1s};

}  // namespace

struct CommitWatcher::Impl {
  std::string base, wal, journal;  // the names inotify reports
  std::function<bool()> others_committed;
  std::function<void()> on_commit;
  int inotify = -1;
  std::array<int, 2> stop_pipe{-1, -1};
  std::thread thread;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;
  ~Impl() {
    for (const int fd : {inotify, stop_pipe[0], stop_pipe[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Whether a write to the database file or its WAL or journal was reported.
  bool drain_events() {
    alignas(inotify_event) std::array<char, 4096> buffer{};
    bool relevant = false;
    for (;;) {
      const ssize_t n = ::read(inotify, buffer.data(), buffer.size());
      if (n <= 0) return relevant;  // EAGAIN: all read
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
        if (event->len > 0) {
          const std::string_view name(event->name);
          relevant = relevant || name == base || name == wal || name == journal;
        }
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      }
    }
  }

  void run() noexcept {
    std::deque<Steady::time_point> looks;  // pending looks at data_version, earliest first
    for (;;) {
      timespec timeout{};
      if (!looks.empty()) {
        const auto wait = std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(looks.front() - Steady::now()).count());
        timeout = {static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      }
      std::array<pollfd, 2> fds{pollfd{inotify, POLLIN, 0}, pollfd{stop_pipe[0], POLLIN, 0}};
      if (::ppoll(fds.data(), fds.size(), looks.empty() ? nullptr : &timeout, nullptr) < 0 && errno != EINTR) return;
      if ((fds[1].revents & (POLLIN | POLLHUP)) != 0) return;
      if ((fds[0].revents & POLLIN) != 0 && drain_events()) {
        const auto now = Steady::now();
        looks.clear();
        for (const auto after : looks_after) looks.push_back(now + after);
      }
      if (looks.empty() || Steady::now() < looks.front()) continue;
      looks.pop_front();
      if (!others_committed()) continue;
      looks.clear();
      try {
        on_commit();
      } catch (...) {
        // A subscriber's failure must not end the watcher.
      }
    }
  }
};

std::unique_ptr<CommitWatcher> CommitWatcher::start(const std::string& file, std::function<bool()> others_committed,
                                                    std::function<void()> on_commit) {
  auto impl = std::make_unique<Impl>();
  const std::filesystem::path path(file);
  impl->base = path.filename().string();
  impl->wal = impl->base + "-wal";
  impl->journal = impl->base + "-journal";
  impl->others_committed = std::move(others_committed);
  impl->on_commit = std::move(on_commit);
  impl->inotify = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (impl->inotify < 0) return nullptr;
  const auto directory = path.has_parent_path() ? path.parent_path().string() : std::string(".");
  if (::inotify_add_watch(impl->inotify, directory.c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
    return nullptr;
  }
  if (::pipe2(impl->stop_pipe.data(), O_CLOEXEC | O_NONBLOCK) != 0) return nullptr;
  auto* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<CommitWatcher>(new CommitWatcher(std::move(impl)));
}

CommitWatcher::CommitWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CommitWatcher::~CommitWatcher() {
  const char stop = 0;
  [[maybe_unused]] const auto written = ::write(impl_->stop_pipe[1], &stop, 1);
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace jobrepo::sqlite_backend
