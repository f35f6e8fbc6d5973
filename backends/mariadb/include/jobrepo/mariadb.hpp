// jobrepo: the MariaDB backend (target jobrepo::mariadb), for MariaDB 10.6
// and later (tested on 10.11) and MySQL 8, through the MariaDB client
// library.
//
// URLs: mariadb://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE][?KEY=VALUE&...]
// or mysql://...; USER, PASSWORD, DATABASE and values percent-encoded. Keys:
// socket (a Unix socket path instead of HOST:PORT), connect_timeout,
// read_timeout, write_timeout (seconds), ssl_mode (required, verify),
// ssl_ca (a file), wakeup_poll_ms (how often subscribe_due polls; 250).
//
// The store keeps a pool of connections (StoreOptions::pool_size, default 4)
// opened on demand. A connection that breaks is closed; the call that hit it
// throws ErrorCode::unavailable and the next call opens a new one. Every
// operation is one transaction at READ COMMITTED; a run's job is always
// locked before the run. Deadlocks are retried until
// StoreOptions::busy_timeout has passed, then thrown as ErrorCode::busy; a
// lock waited for longer than busy_timeout (innodb_lock_wait_timeout, whole
// seconds) is busy too. Time is the server's clock (SYSDATE(6), UTC).
// migrate() holds a named lock (GET_LOCK), so servers starting at once do
// not migrate twice. Wake-ups are polled (no LISTEN). See docs/mariadb.md.
#pragma once

#include <jobrepo/store.hpp>

#include <memory>
#include <string>

namespace jobrepo {

// Connects to MariaDB or MySQL. Throws invalid_parameter for an empty URL,
// an unclear one (see redact_mariadb_url), an unknown key or a bad value,
// and for a negative pool_size or busy_timeout; unavailable when the server
// cannot be reached or refuses the user. No message contains the password.
// create_if_missing is ignored: the database must exist (migrate() creates
// the tables).
std::unique_ptr<Store> open_mariadb_store(const std::string& url, const StoreOptions& options = {});

// Registers the "mariadb" and "mysql" URL schemes with open_store().
// Idempotent, thread-safe.
void register_mariadb_backend();

// `url` for messages and logs: its password replaced by "***". A URL that
// is unclear (a bad percent-encoding, an '@' or '/' left unencoded in the
// password, a bad port or parameter) shows only its scheme: "mariadb://***".
std::string redact_mariadb_url(const std::string& url);

}  // namespace jobrepo
