// The SQLite store's one database layer: a connection of the sqlite3 C API
// and its prepared statements. Every value is bound by name (:p), never
// spliced into SQL text; rows are read into Row values.
#pragma once

#include "bound_value.hpp"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace jobrepo::sqlite_backend {

// A failure SQLite reported: its extended result code and its words.
class DatabaseError : public std::runtime_error {
 public:
  DatabaseError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// A bound value (bound_value.hpp): NULL, an integer or text.
using store_support::optional_value;
using store_support::Value;
// A named value of a call (the placeholder with its colon: ":p").
using Named = std::pair<const char*, Value>;

// One row of a result: an INTEGER cell answers number(), a TEXT cell
// text(), each as SQLite stored it.
class Row {
 public:
  struct Cell {
    bool null = true;
    long long number = 0;
    std::string text;
  };
  explicit Row(std::vector<Cell> cells) : cells_(std::move(cells)) {}
  bool null(std::size_t i) const { return cells_.at(i).null; }
  long long number(std::size_t i) const { return cells_.at(i).number; }
  const std::string& text(std::size_t i) const { return cells_.at(i).text; }
  std::optional<std::string> optional_text(std::size_t i) const {
    if (null(i)) return std::nullopt;
    return text(i);
  }

 private:
  std::vector<Cell> cells_;
};

// One connection: opened without SQLITE_OPEN_CREATE unless in memory (a
// file deleted since open_store() is never created again), extended result
// codes on, its statements prepared at first use and kept, keyed by the
// address of their SQL (queries.hpp's constants). Its busy handler's state
// lives here too (store.cpp installs the handler).
class Connection {
 public:
  // Opens `path` (":memory:" for a private in-memory database). Refuses with
  // SQLITE_CANTOPEN an empty database file beside a -wal or -shm: SQLite
  // would delete or reset those, and they may hold the last commits of a
  // database that was moved away. The leftovers are looked at before the
  // file: a database being created gets content before its -wal and -shm
  // exist, so it never looks like this.
  Connection(const std::string& path, std::chrono::milliseconds busy_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs a prepared statement with `values`; its rows.
  std::vector<Row> query(const char* sql, std::initializer_list<Named> values);
  // The same for a statement without rows; the rows it changed.
  std::int64_t execute(const char* sql, std::initializer_list<Named> values);
  // SQL without parameters, possibly several statements.
  void run_script(const char* sql);

  // A transaction (in_transaction(), transaction.hpp). The store writes in
  // one only, and begin() is BEGIN IMMEDIATE: it takes the write lock at
  // once, so that a writer never fails half-way because another took it
  // first.
  void begin();
  void commit();
  // Never throws: when SQLite has ended the transaction itself (SQLITE_FULL,
  // SQLITE_IOERR) there is nothing to roll back, and a rollback that fails
  // leaves SQLite to roll back on its own.
  void rollback() noexcept;

  sqlite3* native() const { return db_; }
  // SQLite's words for the last error on this connection.
  std::string last_message() const;

  std::chrono::milliseconds busy_timeout{0};
  std::chrono::steady_clock::time_point busy_since{};
  std::minstd_rand jitter{std::random_device{}()};
  // Where the busy handler records that another process held the lock.
  std::atomic<std::chrono::steady_clock::rep>* contention = nullptr;

 private:
  [[noreturn]] void fail(int code) const;
  sqlite3_stmt* prepared(const char* sql);
  void bind(sqlite3_stmt* stmt, std::initializer_list<Named> values);

  sqlite3* db_ = nullptr;
  std::map<const char*, sqlite3_stmt*> statements_;
};

// Whether `path`-wal or `path`-shm exists.
bool has_leftovers(const std::string& path);

}  // namespace jobrepo::sqlite_backend
