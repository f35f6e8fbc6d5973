// SqliteStore: the Store on one SQLite database (file or in-memory).
#pragma once

#include <jobrepo/backend.hpp>
#include <jobrepo/sqlite.hpp>

#include <span>

namespace jobrepo::sqlite_backend {

// The migrations of schema/sqlite, embedded at build time (schema.cpp).
std::span<const Migration> migrations();

// The name of a registered SQLite VFS that works as the default one but
// never creates a main database file (it opens it without
// SQLITE_OPEN_CREATE) and refuses (SQLITE_CANTOPEN) an empty one beside a
// -wal or -shm: the VFS of every file store's connections.
const char* no_create_vfs();

}  // namespace jobrepo::sqlite_backend
