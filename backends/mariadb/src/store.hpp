// The MariaDB store (jobrepo::mariadb): MariaDB 10.6+ (tested on 10.11)
// and MySQL 8 through the MariaDB client library. See docs/mariadb.md.
#pragma once

#include <jobrepo/backend.hpp>

#include <span>

namespace jobrepo::mariadb_backend {

// The migrations of schema/mariadb, embedded at build time.
std::span<const Migration> migrations();

}  // namespace jobrepo::mariadb_backend
