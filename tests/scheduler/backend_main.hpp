// main() of a Catch2 test executable that runs on SQLite or PostgreSQL (see
// backend.hpp): on PostgreSQL without a test server it reports itself
// skipped (exit 77), or failed when the server is required (tools/test).
#pragma once

#include "backend.hpp"

#include <catch2/catch.hpp>

#include <iostream>
#include <string>

namespace jobrepo::test {

inline int run_on_backend(int argc, char* argv[], const std::string& suite) {
  if (scheduler_on_postgres()) {
    if (const auto why = postgres_unavailable_reason(); !why.empty()) {
      std::cout << suite << " on postgres: " << (postgres_required() ? "FAILED" : "SKIPPED") << ": " << why
                << std::endl;
      return postgres_required() ? 1 : 77;
    }
  }
  return Catch::Session().run(argc, argv);
}

}  // namespace jobrepo::test
