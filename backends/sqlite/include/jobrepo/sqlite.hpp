// jobrepo: the embedded SQLite backend (target jobrepo::sqlite).
//
// URLs: "sqlite:PATH" (a file; created readable and writable by its owner only)
// and "sqlite::memory:" (a private in-memory database that lives as long as
// the store). Optional query: "sqlite:PATH?synchronous=normal" (default full).
//
// The store keeps a small pool of connections, each in WAL mode with foreign
// keys on and a busy timeout; every writing transaction is BEGIN IMMEDIATE,
// and SQLITE_BUSY is retried inside the store until StoreOptions::busy_timeout
// has passed, then thrown as ErrorCode::busy. Several processes may share one
// file. Timestamps are SQLite's own clock ('now', millisecond resolution),
// stored as microseconds since the Unix epoch (UTC). Once the file is deleted
// or replaced under an open store, every call throws unavailable until the
// store is reopened. A file that cannot be written (read-only file, directory
// or file system) is read, and every write throws unavailable.
#pragma once

#include <jobrepo/store.hpp>

#include <memory>
#include <string>

namespace jobrepo {

enum class SqliteSynchronous { full, normal };

struct SqliteOptions {
  std::string path{};  // a file path, or ":memory:"
  SqliteSynchronous synchronous = SqliteSynchronous::full;
  int pool_size = 0;  // 0: 8 for a file, always 1 for ":memory:"
  std::chrono::milliseconds busy_timeout{5000};
  // When false, a missing file is not created (SQLite opens it without
  // SQLITE_OPEN_CREATE): opening it throws unavailable, native code ENOENT.
  bool create_if_missing = true;
};

// Opens (creating when missing, unless create_if_missing is false) a SQLite
// store. Throws invalid_parameter for an empty path and for a negative
// pool_size or busy_timeout, unavailable when the file cannot be opened or
// created, or does not exist and must not be created, and when the path's
// -wal or -shm exists while the file is missing or empty (a database moved or
// deleted left them, maybe with its last commits): then it creates and
// truncates nothing.
std::unique_ptr<Store> open_sqlite_store(const SqliteOptions& options);

// Registers the "sqlite" URL scheme with open_store(). Idempotent, thread-safe.
void register_sqlite_backend();

}  // namespace jobrepo
