// jobrepo: the umbrella header. Include this one header to use the library.
//
// open_store() accepts the URLs of every backend your program links:
// linking jobrepo::sqlite (jobrepo::postgres, jobrepo::mariadb) defines
// JOBREPO_WITH_SQLITE (JOBREPO_WITH_POSTGRES, JOBREPO_WITH_MARIADB) for your code, and open_store() then registers that
// backend explicitly before opening; nothing depends on static initialisers.
// Third-party backends call register_backend() (backend.hpp) first.
#pragma once

#include <jobrepo/audit.hpp>
#include <jobrepo/backend.hpp>
#include <jobrepo/cron.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/repository.hpp>
#include <jobrepo/scheduler.hpp>
#include <jobrepo/store.hpp>
#include <jobrepo/store_wrapper.hpp>
#include <jobrepo/testing.hpp>
#include <jobrepo/types.hpp>

#if defined(JOBREPO_WITH_SQLITE)
#include <jobrepo/sqlite.hpp>
#endif
#if defined(JOBREPO_WITH_POSTGRES)
#include <jobrepo/postgres.hpp>
#endif
#if defined(JOBREPO_WITH_MARIADB)
#include <jobrepo/mariadb.hpp>
#endif

#include <memory>
#include <string>

namespace jobrepo {

// Registers the backends this program links (idempotent, cheap).
inline void register_linked_backends() {
#if defined(JOBREPO_WITH_SQLITE)
  register_sqlite_backend();
#endif
#if defined(JOBREPO_WITH_POSTGRES)
  register_postgres_backend();
#endif
#if defined(JOBREPO_WITH_MARIADB)
  register_mariadb_backend();
#endif
}

// Opens a store from a URL:
//   sqlite:PATH            a database file (created, owner-only, when missing)
//   sqlite::memory:        a private in-memory database
//   postgresql://... or postgres://...   passed to libpq as is
//   mariadb://... or mysql://...         MariaDB 10.6+, MySQL 8 (mariadb.hpp)
// Throws invalid_parameter for a URL whose backend is not linked, unavailable
// when the database cannot be reached. The store is not migrated: call migrate().
inline std::unique_ptr<Store> open_store(const std::string& url, const StoreOptions& options = {}) {
  register_linked_backends();
  return open_registered_store(url, options);
}

// `url` as messages and logs may show it: SQLite URLs as they are (paths are
// not secret), PostgreSQL and MariaDB URLs without their passwords (only the scheme when
// the URL is unclear), other URLs as "scheme:***".
inline std::string redact_url(const std::string& url) {
  register_linked_backends();
  return redact_registered_url(url);
}

}  // namespace jobrepo
