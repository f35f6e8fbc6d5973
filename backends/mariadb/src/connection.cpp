#include "connection.hpp"

#include <errmsg.h>
#include <mysqld_error.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace jobrepo::mariadb_backend {

namespace {

// mysql_library_init is not thread-safe; everything after it is (one
// connection per thread at a time).
void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { mysql_library_init(0, nullptr, nullptr); });
}

// Results bind every column as text into a buffer of this size; a longer
// value is read again with mysql_stmt_fetch_column.
constexpr unsigned long column_buffer = 256;

}  // namespace

bool is_connection_error(unsigned number) {
  switch (number) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case 4031:  // ER_CLIENT_INTERACTION_TIMEOUT: the server closed an idle link
      return true;
    default: return false;
  }
}

const std::string& Row::text(std::size_t column) const {
  static const std::string empty;
  const auto& value = columns_.at(column);
  return value ? *value : empty;
}

long long Row::number(std::size_t column) const {
  const std::string& value = text(column);
  return std::strtoll(value.c_str(), nullptr, 10);
}

// A server-side prepared statement.
class Statement {
 public:
  Statement(Connection& connection, MYSQL* mysql, const char* sql) : connection_(connection) {
    stmt_ = mysql_stmt_init(mysql);
    if (stmt_ == nullptr) connection_.fail();
    if (mysql_stmt_prepare(stmt_, sql, std::strlen(sql)) != 0) fail();
    parameters_ = mysql_stmt_param_count(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { mysql_stmt_close(stmt_); }

  std::uint64_t execute(std::initializer_list<Value> values, std::vector<Row>* rows) {
    if (values.size() != parameters_) {
      throw DatabaseError(
          0, "",
          "the statement takes " + std::to_string(parameters_) + " values, not " + std::to_string(values.size()));
    }
    std::vector<MYSQL_BIND> binds(values.size());
    std::vector<unsigned long> lengths(values.size());
    std::size_t i = 0;
    for (const auto& value : values) {
      auto& bind = binds[i];
      std::memset(&bind, 0, sizeof bind);
      if (std::holds_alternative<long long>(value)) {
        bind.buffer_type = MYSQL_TYPE_LONGLONG;
        bind.buffer = const_cast<long long*>(&std::get<long long>(value));  // NOLINT: read only
      } else if (std::holds_alternative<std::string_view>(value)) {
        const auto text = std::get<std::string_view>(value);
        lengths[i] = text.size();
        bind.buffer_type = MYSQL_TYPE_STRING;
        bind.buffer = const_cast<char*>(text.data());  // NOLINT: read only
        bind.buffer_length = text.size();
        bind.length = &lengths[i];
      } else {
        bind.buffer_type = MYSQL_TYPE_NULL;
      }
      ++i;
    }
    if (!binds.empty() && mysql_stmt_bind_param(stmt_, binds.data()) != 0) fail();
    if (mysql_stmt_execute(stmt_) != 0) fail();
    const std::uint64_t affected = mysql_stmt_affected_rows(stmt_);
    MYSQL_RES* metadata = mysql_stmt_result_metadata(stmt_);
    if (metadata == nullptr) return affected;
    const unsigned columns = mysql_num_fields(metadata);
    mysql_free_result(metadata);
    std::vector<MYSQL_BIND> out(columns);
    std::vector<std::string> buffers(columns, std::string(column_buffer, '\0'));
    std::vector<unsigned long> out_lengths(columns);
    std::vector<my_bool> nulls(columns), errors(columns);
    for (unsigned c = 0; c < columns; ++c) {
      std::memset(&out[c], 0, sizeof out[c]);
      out[c].buffer_type = MYSQL_TYPE_STRING;
      out[c].buffer = buffers[c].data();
      out[c].buffer_length = column_buffer;
      out[c].length = &out_lengths[c];
      out[c].is_null = &nulls[c];
      out[c].error = &errors[c];
    }
    if (mysql_stmt_bind_result(stmt_, out.data()) != 0) fail();
    std::uint64_t count = 0;
    for (;;) {
      const int status = mysql_stmt_fetch(stmt_);
      if (status == MYSQL_NO_DATA) break;
      if (status == 1) {
        fail();
      }
      std::vector<std::optional<std::string>> row(columns);
      for (unsigned c = 0; c < columns; ++c) {
        if (nulls[c] != 0) continue;
        if (out_lengths[c] <= column_buffer) {
          row[c].emplace(buffers[c].data(), out_lengths[c]);
          continue;
        }
        std::string whole(out_lengths[c], '\0');
        MYSQL_BIND again;
        std::memset(&again, 0, sizeof again);
        unsigned long length = 0;
        again.buffer_type = MYSQL_TYPE_STRING;
        again.buffer = whole.data();
        again.buffer_length = whole.size();
        again.length = &length;
        if (mysql_stmt_fetch_column(stmt_, &again, c, 0) != 0) fail();
        row[c] = std::move(whole);
      }
      ++count;
      if (rows != nullptr) rows->emplace_back(std::move(row));
    }
    mysql_stmt_free_result(stmt_);
    return count;
  }

 private:
  [[noreturn]] void fail() {
    const unsigned number = mysql_stmt_errno(stmt_);
    if (number == 0) connection_.fail();
    const std::string sqlstate = mysql_stmt_sqlstate(stmt_);
    const std::string message = mysql_stmt_error(stmt_);
    mysql_stmt_free_result(stmt_);
    mysql_stmt_reset(stmt_);
    throw DatabaseError(number, sqlstate, message);
  }

  Connection& connection_;
  MYSQL_STMT* stmt_ = nullptr;
  unsigned long parameters_ = 0;
};

Connection::Connection(const ConnectOptions& options) {
  init_library();
  mysql_ = mysql_init(nullptr);
  if (mysql_ == nullptr) throw DatabaseError(CR_OUT_OF_MEMORY, "HY000", "out of memory");
  try {
    mysql_options(mysql_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &options.connect_timeout);
    mysql_options(mysql_, MYSQL_OPT_READ_TIMEOUT, &options.read_timeout);
    mysql_options(mysql_, MYSQL_OPT_WRITE_TIMEOUT, &options.write_timeout);
    mysql_options(mysql_, MYSQL_READ_DEFAULT_GROUP, nullptr);  // no option files: the URL is the whole truth
    const my_bool yes = 1;
    if (options.ssl_mode == "required" || options.ssl_mode == "verify") {
      mysql_options(mysql_, MYSQL_OPT_SSL_ENFORCE, &yes);
    }
    if (options.ssl_mode == "verify") mysql_options(mysql_, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    if (!options.ssl_ca.empty()) mysql_options(mysql_, MYSQL_OPT_SSL_CA, options.ssl_ca.c_str());
    mysql_options(mysql_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const unsigned long flags = CLIENT_FOUND_ROWS | CLIENT_MULTI_STATEMENTS;
    if (mysql_real_connect(mysql_, options.socket.empty() ? options.host.c_str() : nullptr, options.user.c_str(),
                           options.password ? options.password->c_str() : nullptr,
                           options.database.empty() ? nullptr : options.database.c_str(), options.port,
                           options.socket.empty() ? nullptr : options.socket.c_str(), flags) == nullptr) {
      fail();
    }
    const std::string session =
        "SET SESSION time_zone = '+00:00', SESSION sql_mode = "
        "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', "
        "SESSION innodb_lock_wait_timeout = " +
        std::to_string(options.lock_wait_timeout < 1 ? 1 : options.lock_wait_timeout);
    run_script(session);
    run_script("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    if (mysql_autocommit(mysql_, 0) != 0) fail();
  } catch (...) {
    mysql_close(mysql_);
    throw;
  }
}

Connection::~Connection() {
  statements_.clear();
  mysql_close(mysql_);
}

void Connection::fail() {
  const unsigned number = mysql_errno(mysql_);
  if (number == 0 || is_connection_error(number)) broken_ = true;
  throw DatabaseError(number == 0 ? CR_UNKNOWN_ERROR : number, mysql_sqlstate(mysql_),
                      number == 0 ? "unknown client error" : mysql_error(mysql_));
}

Statement& Connection::prepared(const char* sql) {
  auto& slot = statements_[sql];
  if (!slot) slot = std::make_unique<Statement>(*this, mysql_, sql);
  return *slot;
}

namespace {

// Runs `call`; a failure whose number is the link's marks the connection
// broken, and an unusable statement is dropped so that the next use
// prepares it again.
template <class Call>
auto guarded(std::map<const char*, std::unique_ptr<Statement>>& statements, const char* sql, bool& broken,
             Call&& call) {
  try {
    return call();
  } catch (const DatabaseError& e) {
    if (e.number() == 0 || is_connection_error(e.number())) broken = true;
    // ER_NEED_REPREPARE and the like: prepare it again next time.
    if (e.number() == ER_NEED_REPREPARE || e.number() == ER_UNKNOWN_STMT_HANDLER) statements.erase(sql);
    throw;
  }
}

}  // namespace

std::vector<Row> Connection::query(const char* sql, std::initializer_list<Value> values) {
  return guarded(statements_, sql, broken_, [&] {
    std::vector<Row> rows;
    prepared(sql).execute(values, &rows);
    return rows;
  });
}

std::uint64_t Connection::execute(const char* sql, std::initializer_list<Value> values) {
  return guarded(statements_, sql, broken_, [&] { return prepared(sql).execute(values, nullptr); });
}

void Connection::run_script(std::string_view sql) {
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) fail();
  for (;;) {
    MYSQL_RES* result = mysql_store_result(mysql_);
    if (result != nullptr) mysql_free_result(result);
    const int next = mysql_next_result(mysql_);
    if (next == -1) break;
    if (next > 0) fail();
  }
}

void Connection::commit() {
  if (mysql_commit(mysql_) != 0) fail();
}

void Connection::rollback() noexcept {
  if (broken_) return;
  if (mysql_rollback(mysql_) != 0) broken_ = true;
}

}  // namespace jobrepo::mariadb_backend
