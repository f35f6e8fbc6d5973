// main() of the test executables; Catch2's implementation comes from the
// conformance library (tests/conformance/src/catch_impl.cpp), compiled once
// for all of them. An executable that needs the PostgreSQL test
// server (run with JOBREPO_TEST_BACKEND=postgres, or one that defines
// jobrepo_test_needs_postgres() to return true), or the MariaDB one
// (JOBREPO_TEST_BACKEND=mariadb), reports itself skipped
// (exit 77) without one, or failed when the server is required (tools/test
// sets that).
#include "../mariadb/test_server.hpp"
#include "test_server.hpp"

#include <cstdlib>
#include <iostream>
#include <string>

namespace jobrepo::conformance::detail {
int run_tests(int argc, char* argv[]);  // tests/conformance/src/catch_session.hpp
}

// Overridden (a strong definition) by the executables of PostgreSQL only.
__attribute__((weak)) bool jobrepo_test_needs_postgres() { return false; }

int main(int argc, char* argv[]) {
  const char* backend = std::getenv("JOBREPO_TEST_BACKEND");
  if ((backend && std::string(backend) == "postgres") || jobrepo_test_needs_postgres()) {
    if (const auto why = jobrepo::test::postgres_unavailable_reason(); !why.empty()) {
      const bool required = jobrepo::test::postgres_required();
      std::cout << argv[0] << " on postgres: " << (required ? "FAILED" : "SKIPPED") << ": " << why << std::endl;
      return required ? 1 : 77;
    }
  }
  if (backend && std::string(backend) == "mariadb") {
    if (const auto why = jobrepo::test::mariadb_unavailable_reason(); !why.empty()) {
      const bool required = jobrepo::test::mariadb_required();
      std::cout << argv[0] << " on mariadb: " << (required ? "FAILED" : "SKIPPED") << ": " << why << std::endl;
      return required ? 1 : 77;
    }
  }
  return jobrepo::conformance::detail::run_tests(argc, argv);
}
