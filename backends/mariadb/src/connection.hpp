// The MariaDB store's one database layer: a connection of the MariaDB
// client library (Connector/C, which also speaks to MySQL 8) and its
// server-side prepared statements. Every value is bound (binary protocol),
// never spliced into SQL text; results come back as text, NULL as nullopt.
#pragma once

#include "bound_value.hpp"

#include <mysql.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace jobrepo::mariadb_backend {

// A failure the server or the client library reported: its error number
// (ER_* or CR_*), SQLSTATE and message.
class DatabaseError : public std::runtime_error {
 public:
  DatabaseError(unsigned number, std::string sqlstate, const std::string& message)
      : std::runtime_error(message), number_(number), sqlstate_(std::move(sqlstate)) {}
  unsigned number() const { return number_; }
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  unsigned number_;
  std::string sqlstate_;
};

// A bound value (bound_value.hpp): NULL, an integer or text.
using store_support::optional_value;
using store_support::Value;

// One row of a result: each column as text, or nullopt for NULL.
class Row {
 public:
  explicit Row(std::vector<std::optional<std::string>> columns) : columns_(std::move(columns)) {}
  std::size_t size() const { return columns_.size(); }
  bool null(std::size_t column) const { return !columns_.at(column).has_value(); }
  const std::string& text(std::size_t column) const;
  long long number(std::size_t column) const;
  std::optional<std::string> optional_text(std::size_t column) const { return columns_.at(column); }
  std::optional<long long> optional_number(std::size_t column) const {
    if (null(column)) return std::nullopt;
    return number(column);
  }

 private:
  std::vector<std::optional<std::string>> columns_;
};

// How to connect (url.hpp reads it from a URL).
struct ConnectOptions {
  std::string host = "localhost";
  unsigned port = 0;  // 0: the library's default (3306)
  std::string user;
  std::optional<std::string> password;
  std::string database;
  std::string socket;             // a Unix socket path instead of host and port
  unsigned connect_timeout = 10;  // seconds
  unsigned read_timeout = 60;     // seconds; the client tries a read up to 3 times
  unsigned write_timeout = 60;
  // TLS: "" (the library's default), "required" (refuse a server without
  // TLS), "verify" (also check the server's certificate and name).
  std::string ssl_mode;
  std::string ssl_ca;
  // The session's innodb_lock_wait_timeout, in seconds (at least 1).
  unsigned lock_wait_timeout = 5;
  // Not the connection's but the store's: how often subscribe_due polls
  // (wakeups.hpp), in milliseconds.
  unsigned wakeup_poll_ms = 250;
};

class Statement;

// One connection: UTC session time zone, READ COMMITTED, strict SQL mode,
// autocommit off (every operation of the store is one transaction, ended by
// commit() or rollback()). Statements are prepared on first use and kept,
// keyed by their SQL text's address (queries.hpp's constants).
class Connection {
 public:
  explicit Connection(const ConnectOptions& options);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // A prepared statement: its rows, or (execute) the number of rows it
  // matched (the connection reports found rows, not changed ones).
  std::vector<Row> query(const char* sql, std::initializer_list<Value> values);
  std::uint64_t execute(const char* sql, std::initializer_list<Value> values);

  // SQL text without parameters, possibly several statements (migrations).
  void run_script(std::string_view sql);

  // Autocommit is off: the first statement after a commit or a rollback
  // begins the next transaction, so begin() sends nothing.
  void begin() {}
  void commit();
  // Never throws: a rollback that fails leaves the connection broken.
  void rollback() noexcept;

  // Whether the connection was lost (the last failure was the link's).
  bool broken() const { return broken_; }

  // The error of the connection's last call, as an exception.
  [[noreturn]] void fail();

 private:
  Statement& prepared(const char* sql);

  MYSQL* mysql_ = nullptr;
  std::map<const char*, std::unique_ptr<Statement>> statements_;
  bool broken_ = false;
};

// Whether a MariaDB/MySQL error number means the link to the server is gone.
bool is_connection_error(unsigned number);

}  // namespace jobrepo::mariadb_backend
