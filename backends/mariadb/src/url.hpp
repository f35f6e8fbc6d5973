// MariaDB/MySQL URLs:
//   mariadb://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE][?KEY=VALUE&...]
// (also mysql://). USER, PASSWORD, DATABASE and values are percent-decoded;
// HOST may be a bracketed IPv6 address. Keys: socket (a Unix socket path,
// instead of HOST:PORT), connect_timeout, read_timeout, write_timeout
// (seconds), ssl_mode (required, verify), ssl_ca (a file).
#pragma once

#include "connection.hpp"

#include <string>
#include <string_view>

namespace jobrepo::mariadb_backend {

struct ReadUrl {
  ConnectOptions options;
  // The URL for messages: its password replaced by "***". When the URL is
  // unclear (problem not empty), only its scheme: "mariadb://***".
  std::string shown;
  // Why the URL is unclear or cannot be used, in words that quote no
  // password; empty when it is fine.
  std::string problem;
};

ReadUrl read_url(std::string_view url);

}  // namespace jobrepo::mariadb_backend
