// The Catch2 sessions of catch_impl.cpp (internal; not installed).
#pragma once

#include <optional>
#include <string>

namespace jobrepo::conformance::detail {

// Catch2's own main(): runs the cases the command line selects.
int run_tests(int argc, char* argv[]);

// The conformance suite's session.
struct SuiteSession {
  // Set when the command line was bad or only asked for a listing or help:
  // the exit status, nothing ran.
  std::optional<int> finished{};
  int total = 0;          // cases tagged `tag`
  bool filtered = false;  // the command line selected cases
  int failures = 0;       // what Catch2's run returned
};
SuiteSession run_suite(int argc, char* argv[], const std::string& tag);

}  // namespace jobrepo::conformance::detail
