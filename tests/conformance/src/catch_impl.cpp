// Catch2's implementation, compiled once per build (it is the most
// expensive file to compile): the conformance library carries it, as an
// installed library must, and jobrepo's own test executables take it from
// here too (tests/support/catch_main.cpp). Catch2 v2 declares its Session
// only where its implementation is, so the sessions are run here.
#define CATCH_CONFIG_RUNNER
#include "catch_session.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

namespace jobrepo::conformance::detail {

int run_tests(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }

SuiteSession run_suite(int argc, char* argv[], const std::string& tag) {
  SuiteSession out;
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) {
    out.finished = rc;
    return out;
  }
  const auto& config = session.config();
  if (config.listTests() || config.listTestNamesOnly() || config.listTags() || config.listReporters() ||
      session.configData().showHelp) {
    out.finished = session.run();
    return out;
  }
  for (const auto& test : Catch::getAllTestCasesSorted(config)) {
    const auto& tags = test.getTestCaseInfo().tags;
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) ++out.total;
  }
  out.filtered = config.testSpec().hasFilters();
  out.failures = session.run();
  return out;
}

}  // namespace jobrepo::conformance::detail
