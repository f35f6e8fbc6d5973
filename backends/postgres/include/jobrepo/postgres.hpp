// jobrepo: the PostgreSQL backend for clusters (target jobrepo::postgres).
//
// URLs: "postgresql://..." or "postgres://..." and libpq's keyword/value
// strings, passed to libpq as they are: host, port, user, dbname, password,
// sslmode, sslrootcert and every other libpq keyword work.
//
// The store keeps a pool of connections (StoreOptions::pool_size, default 4)
// opened on demand. A connection that breaks is closed; the call that hit it
// throws ErrorCode::unavailable and the next call opens a new one. Statements
// are prepared once per connection. Every operation is one transaction (most
// are one statement, one round trip). Serialization failures and deadlocks
// (SQLSTATE 40001, 40P01) are retried until StoreOptions::busy_timeout has
// passed, then thrown as ErrorCode::busy. Time is the server's
// current_timestamp. migrate() holds an advisory lock, so servers starting at
// once do not migrate twice. See docs/postgres.md.
#pragma once

#include <jobrepo/store.hpp>

#include <memory>
#include <string>

namespace jobrepo {

// Connects to PostgreSQL. Throws invalid_parameter for an empty URL, for an
// unclear one (see redact_postgres_url: libpq would quote parts of it, or
// could read its password otherwise than meant), and for a negative pool_size
// or busy_timeout; unavailable when the server cannot be reached. No message
// contains the password. create_if_missing is ignored: the database must
// exist (migrate() creates the tables).
std::unique_ptr<Store> open_postgres_store(const std::string& url, const StoreOptions& options = {});

// Registers the "postgresql" and "postgres" URL schemes with open_store().
// Idempotent, thread-safe.
void register_postgres_backend();

// `url` for messages and logs: the user info's password and the value of
// every key naming a password (password, sslpassword; any case, also
// percent-encoded) replaced by "***". A URL that is unclear (a bad
// percent-encoding, an '@' or '/' in a password left unencoded, a malformed
// key=value string...) shows only its scheme: "postgresql://***", or "***".
std::string redact_postgres_url(const std::string& url);

}  // namespace jobrepo
