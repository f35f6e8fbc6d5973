// Wake-ups across processes for SQLite: a file store's subscribers learn of
// commits made through other connections (another process, another store of
// this one) without polling at claim_interval.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace jobrepo::sqlite_backend {

// Watches one database file. inotify on its directory reports writes to the
// file and to its WAL (no cost while nothing is written); then the store
// says whether another connection committed (its writing connection's
// PRAGMA data_version changed: a connection's own commits never change it).
// A WAL write is seen before the commit is visible (the WAL index is updated
// through shared memory, which inotify does not report), so after each write
// the watcher asks 0.5, 2, 10, 50, 250 and 1000 ms later until the answer
// is yes.
// `on_commit` runs on the watcher's thread, once per yes; neither callback
// may throw.
class CommitWatcher {
 public:
  // Starts watching `file` (an absolute path), or returns nullptr when the
  // system gives no inotify instance (then the store's subscribers poll).
  static std::unique_ptr<CommitWatcher> start(const std::string& file, std::function<bool()> others_committed,
                                              std::function<void()> on_commit);
  ~CommitWatcher();  // stops the thread and waits for it
  CommitWatcher(const CommitWatcher&) = delete;
  CommitWatcher& operator=(const CommitWatcher&) = delete;

  struct Impl;

 private:
  explicit CommitWatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobrepo::sqlite_backend
