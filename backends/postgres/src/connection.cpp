#include "connection.hpp"

#include "queries.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace jobrepo::postgres_backend {

void ignore_notice(void*, const char*) {}

namespace {

// A failed result as an exception (its SQLSTATE and message).
[[noreturn]] void fail(PGconn* conn, const PGresult* result) {
  const char* sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = result ? PQresultErrorMessage(result) : "";
  if (message.empty()) message = PQerrorMessage(conn);
  if (message.empty()) message = "no result from the server";
  throw DatabaseError(sqlstate ? sqlstate : "", message);
}

Result checked(PGconn* conn, PGresult* raw) {
  Result result(raw);
  const auto status = PQresultStatus(raw);
  if (raw == nullptr || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)) fail(conn, raw);
  return result;
}

}  // namespace

std::string numbered_placeholders(std::string_view query, std::vector<std::string>& names) {
  std::string out;
  names.clear();
  for (std::size_t i = 0; i < query.size(); ++i) {
    const bool starts = query[i] == ':' && i + 1 < query.size() &&
                        (std::islower(static_cast<unsigned char>(query[i + 1])) != 0 || query[i + 1] == '_') &&
                        (i == 0 || query[i - 1] != ':');
    if (!starts) {
      out.push_back(query[i]);
      continue;
    }
    std::string name;
    while (i + 1 < query.size() &&
           (std::isalnum(static_cast<unsigned char>(query[i + 1])) != 0 || query[i + 1] == '_')) {
      name.push_back(query[++i]);
    }
    auto found = std::find(names.begin(), names.end(), name);
    if (found == names.end()) found = names.insert(names.end(), name);
    out += "$" + std::to_string(found - names.begin() + 1);
  }
  return out;
}

long long Result::number(int row, int column) const {
  return std::strtoll(PQgetvalue(result_, row, column), nullptr, 10);
}

std::uint64_t Result::changed() const { return std::strtoull(PQcmdTuples(result_), nullptr, 10); }

namespace {

// queries::hot_path_settings and the hot path's statement_timeout as SET
// statements, or all of them RESET (to the session's own values, those of
// the URL's options included); one round trip each.
std::string settings_script(bool hot_path, std::chrono::milliseconds timeout) {
  std::string script;
  for (const auto& [name, value] : queries::hot_path_settings) {
    if (!script.empty()) script += "; ";
    script += hot_path ? std::string("SET ") + name + " = " + value : std::string("RESET ") + name;
  }
  return script + (hot_path ? "; SET statement_timeout = " + std::to_string(timeout.count())
                            : std::string("; RESET statement_timeout"));
}

}  // namespace

Connection::Connection(const std::string& conninfo, std::chrono::milliseconds hot_path_timeout)
    : conn_(PQconnectdb(conninfo.c_str())),
      hot_path_script_(settings_script(true, hot_path_timeout)),
      default_script_(settings_script(false, hot_path_timeout)) {
  if (conn_ == nullptr) throw DatabaseError("", "out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn_);
    PQfinish(conn_);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw DatabaseError("", message);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
}

Connection::~Connection() { PQfinish(conn_); }

const Connection::Prepared& Connection::prepared(const char* sql) {
  const auto found = statements_.find(sql);
  if (found != statements_.end()) return found->second;
  Prepared statement{"jobrepo_" + std::to_string(statements_.size() + 1), {}, queries::generic_plan(sql)};
  const std::string text = numbered_placeholders(sql, statement.parameters);
  checked(conn_, PQprepare(conn_, statement.name.c_str(), text.c_str(), static_cast<int>(statement.parameters.size()),
                           nullptr));
  return statements_.emplace(sql, std::move(statement)).first->second;
}

void Connection::plan_mode_for(const Prepared& statement) {
  if (generic_mode_ == statement.generic) return;
  checked(conn_, PQexec(conn_, (statement.generic ? hot_path_script_ : default_script_).c_str()));
  generic_mode_ = statement.generic;
}

Result Connection::query(const char* sql, std::initializer_list<Named> values) {
  const auto& statement = prepared(sql);
  plan_mode_for(statement);
  if (values.size() != statement.parameters.size()) {
    throw DatabaseError("", "statement " + statement.name + " takes " + std::to_string(statement.parameters.size()) +
                                " values, not " + std::to_string(values.size()));
  }
  // Every value goes as text (format 0: the server reads it as the type
  // the statement gives the parameter), NUL-terminated: copied.
  std::vector<std::string> copies;
  copies.reserve(values.size());
  std::vector<const char*> texts(values.size(), nullptr);
  for (const auto& [name, value] : values) {
    const auto at = std::find(statement.parameters.begin(), statement.parameters.end(), name);
    if (at == statement.parameters.end()) {
      throw DatabaseError("", "statement " + statement.name + " has no parameter :" + std::string(name));
    }
    const auto i = static_cast<std::size_t>(at - statement.parameters.begin());
    if (const auto* number = std::get_if<long long>(&value)) {
      copies.push_back(std::to_string(*number));
      texts[i] = copies.back().c_str();
    } else if (const auto* text = std::get_if<std::string_view>(&value)) {
      copies.emplace_back(*text);
      texts[i] = copies.back().c_str();
    }
  }
  return checked(conn_, PQexecPrepared(conn_, statement.name.c_str(), static_cast<int>(values.size()), texts.data(),
                                       nullptr, nullptr, 0));
}

void Connection::run_script(const std::string& sql) { checked(conn_, PQexec(conn_, sql.c_str())); }

void Connection::rollback() noexcept {
  generic_mode_.reset();
  if (broken()) return;
  PQclear(PQexec(conn_, "ROLLBACK"));
}

}  // namespace jobrepo::postgres_backend
