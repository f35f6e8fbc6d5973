#include "connection.hpp"

#include "queries.hpp"

#include <cstring>

#include <sys/stat.h>

namespace jobrepo::sqlite_backend {

bool has_leftovers(const std::string& path) {
  struct stat st {};
  return ::stat((path + "-wal").c_str(), &st) == 0 || ::stat((path + "-shm").c_str(), &st) == 0;
}

Connection::Connection(const std::string& path, std::chrono::milliseconds timeout) : busy_timeout(timeout) {
  const bool in_memory = path == ":memory:";
  const bool leftovers = !in_memory && has_leftovers(path);
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (in_memory ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    const int code = db_ ? sqlite3_extended_errcode(db_) : rc;
    sqlite3_close(db_);
    throw DatabaseError(code, message);
  }
  sqlite3_extended_result_codes(db_, 1);
  if (leftovers) {
    sqlite3_file* file = nullptr;
    sqlite3_int64 size = -1;
    if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_FILE_POINTER, &file) == SQLITE_OK && file != nullptr &&
        file->pMethods != nullptr && file->pMethods->xFileSize(file, &size) == SQLITE_OK && size == 0) {
      sqlite3_close(db_);
      throw DatabaseError(SQLITE_CANTOPEN, "unable to open database file");
    }
  }
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

std::string Connection::last_message() const {
  const char* message = sqlite3_errmsg(db_);
  return message ? message : "";
}

void Connection::fail(int code) const {
  const int extended = sqlite3_extended_errcode(db_);
  const char* message = sqlite3_errmsg(db_);
  // The connection's last error is this one unless it was cleared; else
  // SQLite's words for the code.
  if ((extended & 0xFF) == (code & 0xFF) && message && std::strcmp(message, "not an error") != 0) {
    throw DatabaseError(extended, message);
  }
  throw DatabaseError(code, sqlite3_errstr(code));
}

sqlite3_stmt* Connection::prepared(const char* sql) {
  const auto found = statements_.find(sql);
  if (found != statements_.end()) return found->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(rc);
  statements_.emplace(sql, stmt);
  return stmt;
}

void Connection::bind(sqlite3_stmt* stmt, std::initializer_list<Named> values) {
  for (const auto& [name, value] : values) {
    const int i = sqlite3_bind_parameter_index(stmt, name);
    if (i == 0) throw DatabaseError(SQLITE_RANGE, std::string("no parameter ") + name + " in the statement");
    int rc = SQLITE_OK;
    if (const auto* number = std::get_if<long long>(&value)) {
      rc = sqlite3_bind_int64(stmt, i, *number);
    } else if (const auto* text = std::get_if<std::string_view>(&value)) {
      rc = sqlite3_bind_text(stmt, i, text->data(), static_cast<int>(text->size()), SQLITE_TRANSIENT);
    } else {
      rc = sqlite3_bind_null(stmt, i);
    }
    if (rc != SQLITE_OK) fail(rc);
  }
}

std::vector<Row> Connection::query(const char* sql, std::initializer_list<Named> values) {
  sqlite3_stmt* stmt = prepared(sql);
  // Reset however this ends: a statement not stepped to its end would keep
  // its read open and make COMMIT fail with "SQL statements in progress".
  struct Reset {
    sqlite3_stmt* stmt;
    explicit Reset(sqlite3_stmt* s) : stmt(s) {}
    Reset(const Reset&) = delete;
    Reset& operator=(const Reset&) = delete;
    Reset(Reset&&) = delete;
    Reset& operator=(Reset&&) = delete;
    ~Reset() {
      sqlite3_reset(stmt);
      sqlite3_clear_bindings(stmt);
    }
  } reset(stmt);
  bind(stmt, values);
  std::vector<Row> rows;
  for (;;) {
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) fail(rc);
    const int columns = sqlite3_column_count(stmt);
    std::vector<Row::Cell> cells(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      auto& cell = cells[static_cast<std::size_t>(c)];
      switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_NULL: break;
        // Each cell as its column's type holds it (the tables are STRICT):
        // a number read as text or text as a number would cost a conversion.
        case SQLITE_INTEGER:
        case SQLITE_FLOAT:
          cell.null = false;
          cell.number = sqlite3_column_int64(stmt, c);
          break;
        default: {
          cell.null = false;
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          cell.text.assign(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, c)));
        }
      }
    }
    rows.emplace_back(std::move(cells));
  }
  return rows;
}

std::int64_t Connection::execute(const char* sql, std::initializer_list<Named> values) {
  query(sql, values);
  return sqlite3_changes64(db_);
}

void Connection::run_script(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string detail = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw DatabaseError(sqlite3_extended_errcode(db_), detail);
  }
}

void Connection::begin() { execute(queries::begin_immediate, {}); }

void Connection::commit() { execute(queries::commit, {}); }

void Connection::rollback() noexcept {
  if (sqlite3_get_autocommit(db_) != 0) return;
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace jobrepo::sqlite_backend
