// The MariaDB server the tests use: JOBREPO_TEST_MARIADB_URL (tools/test
// starts a throwaway server and sets it). Without it the MariaDB tests
// report themselves skipped, unless JOBREPO_TEST_MARIADB_REQUIRED=1, when
// they fail: in tools/test the server is never missing.
#pragma once

#include <mysql.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace jobrepo::test {

inline std::string mariadb_server_url() {
  const char* url = std::getenv("JOBREPO_TEST_MARIADB_URL");
  return url ? url : "";
}

inline bool mariadb_required() {
  const char* required = std::getenv("JOBREPO_TEST_MARIADB_REQUIRED");
  return required && std::string(required) == "1";
}

// The parts of a test URL mariadb://USER@HOST:PORT/DATABASE (no password,
// no parameters: what tools/mariadb prints).
struct MariadbTarget {
  std::string user, host, database;
  unsigned port = 3306;
};

inline MariadbTarget mariadb_target(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) throw std::runtime_error("JOBREPO_TEST_MARIADB_URL must be a mariadb:// URL");
  const std::string rest = url.substr(scheme + 3);
  const auto at = rest.find('@');
  const auto slash = rest.find('/');
  MariadbTarget target;
  target.user = at == std::string::npos ? "" : rest.substr(0, at);
  std::string host = rest.substr(at == std::string::npos ? 0 : at + 1,
                                 slash == std::string::npos ? std::string::npos : slash - (at + 1));
  if (const auto colon = host.find(':'); colon != std::string::npos) {
    target.port = static_cast<unsigned>(std::stoul(host.substr(colon + 1)));
    host = host.substr(0, colon);
  }
  target.host = host;
  target.database = slash == std::string::npos ? "" : rest.substr(slash + 1);
  return target;
}

// `url` with another database name.
inline std::string mariadb_with_database(const std::string& url, const std::string& database) {
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme + 3);
  return url.substr(0, slash) + "/" + database;
}

// Runs SQL (several statements allowed, no parameters) on a new connection
// to `url`; throws with the server's message on failure.
inline void mariadb_exec(const std::string& url, const std::string& sql) {
  const auto target = mariadb_target(url);
  MYSQL* mysql = mysql_init(nullptr);
  if (mysql_real_connect(mysql, target.host.c_str(), target.user.c_str(), nullptr,
                         target.database.empty() ? nullptr : target.database.c_str(), target.port, nullptr,
                         CLIENT_MULTI_STATEMENTS) == nullptr) {
    const std::string message = mysql_error(mysql);
    mysql_close(mysql);
    throw std::runtime_error("cannot connect to the test server: " + message);
  }
  std::string error;
  if (mysql_query(mysql, sql.c_str()) != 0) {
    error = mysql_error(mysql);
  } else {
    do {
      if (MYSQL_RES* result = mysql_store_result(mysql)) mysql_free_result(result);
    } while (mysql_next_result(mysql) == 0);
    if (mysql_errno(mysql) != 0) error = mysql_error(mysql);
  }
  mysql_close(mysql);
  if (!error.empty()) throw std::runtime_error(sql + ": " + error);
}

// The first column of the first row of a query, as text.
inline std::string mariadb_value(const std::string& url, const std::string& sql) {
  const auto target = mariadb_target(url);
  MYSQL* mysql = mysql_init(nullptr);
  std::string value, error;
  if (mysql_real_connect(mysql, target.host.c_str(), target.user.c_str(), nullptr,
                         target.database.empty() ? nullptr : target.database.c_str(), target.port, nullptr,
                         0) == nullptr ||
      mysql_query(mysql, sql.c_str()) != 0) {
    error = mysql_error(mysql);
  } else if (MYSQL_RES* result = mysql_store_result(mysql)) {
    if (MYSQL_ROW row = mysql_fetch_row(result); row != nullptr && row[0] != nullptr) value = row[0];
    mysql_free_result(result);
  }
  mysql_close(mysql);
  if (!error.empty()) throw std::runtime_error(sql + ": " + error);
  return value;
}

// Databases of one test executable (name prefix random), dropped at the end.
class MariadbDatabases {
 public:
  MariadbDatabases() : server_(mariadb_server_url()) {
    std::random_device random;
    prefix_ = "jobrepo_test_" + std::to_string(random() % 1000000000) + "_";
  }
  MariadbDatabases(const MariadbDatabases&) = delete;
  MariadbDatabases& operator=(const MariadbDatabases&) = delete;
  ~MariadbDatabases() {
    for (int i = 1; i <= count_; ++i) {
      try {
        mariadb_exec(server_, "DROP DATABASE IF EXISTS " + prefix_ + std::to_string(i));
      } catch (...) {
        // The server is gone: nothing left to drop.
      }
    }
  }
  // The URL of a new, empty database.
  std::string create() {
    const std::string name = prefix_ + std::to_string(++count_);
    mariadb_exec(server_, "CREATE DATABASE " + name + " CHARACTER SET utf8mb4");
    return mariadb_with_database(server_, name);
  }

 private:
  std::string server_, prefix_;
  int count_ = 0;
};

// Why the MariaDB tests cannot run here, or empty.
inline std::string mariadb_unavailable_reason() {
  const std::string url = mariadb_server_url();
  if (url.empty()) return "JOBREPO_TEST_MARIADB_URL is not set (tools/test sets it)";
  try {
    mariadb_exec(url, "SELECT 1");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace jobrepo::test
