#include "wakeups.hpp"

#include "connection.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace jobrepo::postgres_backend {

DueListener::DueListener(std::string conninfo, const DueNotifier& notifier, std::chrono::milliseconds max_backoff)
    : conninfo_(std::move(conninfo)), notifier_(notifier), max_backoff_(max_backoff) {
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    throw Error(ErrorCode::internal, "subscribe_due: eventfd failed: " + std::system_category().message(errno));
  }
  thread_ = std::thread([this] { loop(); });
}

DueListener::~DueListener() {
  const std::uint64_t one = 1;
  while (write(stop_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(stop_fd_);
}

// Sleeps for `duration` unless stopped first; true when stopped.
bool DueListener::wait_for_stop(std::chrono::milliseconds duration) const {
  pollfd fd{stop_fd_, POLLIN, 0};
  for (;;) {
    const int rc = poll(&fd, 1, static_cast<int>(duration.count()));
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

void DueListener::loop() {
  std::chrono::milliseconds backoff(50);
  for (;;) {
    PGconn* conn = PQconnectdb(conninfo_.c_str());
    bool ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
      PQsetNoticeProcessor(conn, ignore_notice, nullptr);
      PGresult* result = PQexec(conn, (std::string("LISTEN ") + due_channel).c_str());
      ok = PQresultStatus(result) == PGRES_COMMAND_OK;
      PQclear(result);
    }
    if (ok) {
      backoff = std::chrono::milliseconds(50);
      notifier_.notify_all();  // news may have been lost while not listening
      for (;;) {
        pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        const int rc = poll(fds, 2, -1);
        if (rc < 0) {
          if (errno == EINTR) continue;
          break;
        }
        if (fds[1].revents != 0) {
          PQfinish(conn);
          return;
        }
        if (PQconsumeInput(conn) == 0) break;  // the connection broke
        while (PGnotify* note = PQnotifies(conn)) {
          notifier_.notify(note->extra != nullptr ? note->extra : "");
          PQfreemem(note);
        }
        if (PQstatus(conn) != CONNECTION_OK) break;
      }
    }
    PQfinish(conn);
    if (wait_for_stop(backoff)) return;
    backoff = std::min(backoff * 2, max_backoff_);
  }
}

}  // namespace jobrepo::postgres_backend
