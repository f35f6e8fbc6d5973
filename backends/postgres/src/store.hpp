// PostgresStore: the Store on one PostgreSQL database.
#pragma once

#include <jobrepo/backend.hpp>
#include <jobrepo/postgres.hpp>

#include <span>

namespace jobrepo::postgres_backend {

// The migrations of schema/postgres, embedded at build time (schema.cpp).
std::span<const Migration> migrations();

}  // namespace jobrepo::postgres_backend
