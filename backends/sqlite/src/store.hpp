// SqliteStore: the Store on one SQLite database (file or in-memory).
#pragma once

#include <jobrepo/backend.hpp>
#include <jobrepo/sqlite.hpp>

#include <span>

namespace jobrepo::sqlite_backend {

// The migrations of schema/sqlite, embedded at build time (schema.cpp).
std::span<const Migration> migrations();

}  // namespace jobrepo::sqlite_backend
