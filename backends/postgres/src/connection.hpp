// The PostgreSQL store's one database layer: a libpq connection and its
// prepared statements. Every value is bound (sent apart from the SQL, as
// text; NULL as a null pointer), never spliced into SQL text.
//
// Placeholders in queries.hpp are named (":plugin"); a statement numbers
// them $1, $2... in order of first appearance, so a name used twice is one
// parameter, and a call binds its values by name.
#pragma once

#include "bound_value.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace jobrepo::postgres_backend {

// A failure the server or libpq reported: its SQLSTATE (empty when there is
// none, e.g. a lost connection) and message.
class DatabaseError : public std::runtime_error {
 public:
  DatabaseError(std::string sqlstate, const std::string& message)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// A bound value (bound_value.hpp): NULL, an integer or text.
using store_support::optional_value;
using store_support::Value;

// A named value of a call.
using Named = std::pair<std::string_view, Value>;

// A result, cleared when it goes.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}
  Result(Result&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&&) = delete;
  ~Result() { PQclear(result_); }

  int rows() const { return PQntuples(result_); }
  bool null(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }
  std::string text(int row, int column) const {
    return {PQgetvalue(result_, row, column), static_cast<std::size_t>(PQgetlength(result_, row, column))};
  }
  long long number(int row, int column) const;
  std::optional<std::string> optional_text(int row, int column) const {
    if (null(row, column)) return std::nullopt;
    return text(row, column);
  }
  // Rows the command changed (UPDATE, DELETE, INSERT).
  std::uint64_t changed() const;

 private:
  PGresult* result_;
};

// One connection, its notices discarded, and the statements prepared on it
// (at first use, keyed by the address of their SQL: queries.hpp's constants).
class Connection {
 public:
  // hot_path_timeout: the statement_timeout of the hot path's statements
  // (queries::generic_plan); they fail with SQLSTATE 57014 after it.
  Connection(const std::string& conninfo, std::chrono::milliseconds hot_path_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  Result query(const char* sql, std::initializer_list<Named> values);

  // SQL without parameters, possibly several statements (migrations, BEGIN).
  void run_script(const std::string& sql);

  void begin() { run_script("BEGIN"); }
  void commit() { run_script("COMMIT"); }
  // Never throws.
  void rollback() noexcept;

  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  PGconn* native() { return conn_; }

 private:
  struct Prepared {
    std::string name;
    std::vector<std::string> parameters;  // names, in order of their numbers
    bool generic = false;                 // queries::generic_plan
  };
  // Sets the session's planner settings for `statement` (plan_cache_mode and
  // the hot path's, queries::generic_plan) when they differ.
  void plan_mode_for(const Prepared& statement);
  const Prepared& prepared(const char* sql);

  PGconn* conn_ = nullptr;
  std::string hot_path_script_, default_script_;  // the planner settings' SET and RESET
  std::map<const char*, Prepared> statements_;
  // The session's planner settings: the hot path's (force_generic_plan),
  // or the defaults (RESET) when false; unknown after a rollback, which undoes a SET made in
  // its transaction.
  std::optional<bool> generic_mode_ = false;
};

// `query` with its :name placeholders numbered $1, $2... by first
// appearance; `names` gets the names in that order.
std::string numbered_placeholders(std::string_view query, std::vector<std::string>& names);

// A libpq notice processor (PQsetNoticeProcessor) that discards the server's
// NOTICE messages, which libpq would print to stderr.
void ignore_notice(void*, const char*);

}  // namespace jobrepo::postgres_backend
