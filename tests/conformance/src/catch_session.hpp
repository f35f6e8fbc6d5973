// The Catch2 sessions of catch_impl.cpp (internal; not installed).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

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
  // A JUnit or XML report went to standard output.
  bool report_on_stdout = false;
};
// Runs the session. A JUnit report passes through `edit_junit` (called
// after the cases ran) before it reaches its destination.
SuiteSession run_suite(int argc, char* argv[], const std::string& tag,
                       const std::function<std::string(const std::string&)>& edit_junit);

// The names of the cases a run without filters runs (hidden ones left out).
std::vector<std::string> case_names();

}  // namespace jobrepo::conformance::detail
