// Catch2's implementation, compiled once per build (it is the most
// expensive file to compile): the conformance library carries it, as an
// installed library must, and jobrepo's own test executables take it from
// here too (tests/support/catch_main.cpp). Catch2 v2 declares its Session
// only where its implementation is, so the sessions are run here.
#define CATCH_CONFIG_RUNNER
#include "catch_session.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

namespace jobrepo::conformance::detail {

int run_tests(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }

SuiteSession run_suite(int argc, char* argv[], const std::string& tag,
                       const std::function<std::string(const std::string&)>& edit_junit) {
  SuiteSession out;
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) {
    out.finished = rc;
    return out;
  }
  auto& data = session.configData();
  if (data.listTests || data.listTestNamesOnly || data.listTags || data.listReporters || data.showHelp) {
    out.finished = session.run();
    return out;
  }
  const auto& config = session.config();
  for (const auto& test : Catch::getAllTestCasesSorted(config)) {
    const auto& tags = test.getTestCaseInfo().tags;
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) ++out.total;
  }
  out.filtered = config.testSpec().hasFilters();
  const bool junit = data.reporterName == "junit";
  const bool to_stdout = data.outputFilename.empty() || data.outputFilename == "-";
  out.report_on_stdout = (junit || data.reporterName == "xml") && to_stdout;
  if (!junit) {
    out.failures = session.run();
    return out;
  }
  // The JUnit report goes to a file of its own first, to be edited.
  const std::string destination = to_stdout ? std::string() : data.outputFilename;
  std::string temp = "/tmp/jobrepo-conformance-junit-XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    std::cerr << "jobrepo conformance: cannot make a temporary file for the JUnit report" << std::endl;
    out.finished = 1;
    return out;
  }
  close(fd);
  data.outputFilename = temp;
  session.useConfigData(data);
  out.failures = session.run();
  std::string xml;
  {
    std::ifstream in(temp, std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    xml = buffer.str();
  }
  std::remove(temp.c_str());
  xml = edit_junit(xml);
  if (destination.empty()) {
    std::cout << xml << std::flush;
  } else {
    std::ofstream file(destination, std::ios::binary | std::ios::trunc);
    file << xml;
    if (!file) {
      std::cerr << "jobrepo conformance: cannot write the JUnit report to " << destination << std::endl;
      out.failures = std::max(out.failures, 1);
    }
  }
  return out;
}

std::vector<std::string> case_names() {
  // Not through a Session: a process may make only one.
  std::vector<std::string> names;
  for (const auto& test : Catch::getRegistryHub().getTestCaseRegistry().getAllTests()) {
    if (test.getTestCaseInfo().isHidden()) continue;
    names.push_back(test.getTestCaseInfo().name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace jobrepo::conformance::detail
