// jobrepo: the conformance suite every backend must pass (target jobrepo::conformance).
//
// A backend author implements Harness and calls run() from main():
//
//   struct MyHarness : jobrepo::conformance::Harness { ... };
//   int main(int argc, char* argv[]) {
//     MyHarness harness;
//     return jobrepo::conformance::run(harness, argc, argv);
//   }
//
// run() takes Catch2's command line (e.g. a test name to run one case). Your
// executable may add its own Catch2 TEST_CASEs; they run with the suite.
// The suite re-runs the same executable as child processes for its
// cross-process races, passing them arguments of its own.
#pragma once

#include <jobrepo/store.hpp>

#include <memory>
#include <string>

namespace jobrepo::conformance {

// A new, empty, unmigrated database made for one test case.
struct Database {
  std::unique_ptr<Store> store;
  // How Harness::open() reaches the same database, also from another
  // process; empty when it cannot (e.g. an in-memory database).
  std::string url;
};

class Harness {
 public:
  virtual ~Harness() = default;

  // A short name for the report, e.g. "sqlite-file".
  virtual std::string name() const = 0;

  // Empty when the backend can be tested now; otherwise why not (e.g. its
  // server is not reachable). The suite then reports itself skipped.
  virtual std::string unavailable_reason() { return {}; }

  // A store on a database that no other call returned. Called once per case.
  virtual Database make_database() = 0;

  // Another store on a database that make_database() returned (given its url),
  // in this process or in a child process of the suite.
  virtual std::unique_ptr<Store> open(const std::string& url) = 0;

  // Optional: record `version` as the schema version of the database at
  // `url`, as a newer jobrepo's migrate() would. Return false when the
  // harness cannot; the case that needs it then reports "not applicable".
  virtual bool force_schema_version(const std::string& url, int version) {
    (void)url;
    (void)version;
    return false;
  }
};

// The exit status run() returns when the backend is unavailable (ctest's
// SKIP_RETURN_CODE): a skipped suite never counts as passed.
inline constexpr int exit_skipped = 77;

// Runs the suite. Returns 0 when every case ran and passed, 1 when a case
// failed or fewer cases ran than the suite holds (unless the command line
// selected some), exit_skipped when the backend is unavailable.
int run(Harness& harness, int argc, char* argv[]);

}  // namespace jobrepo::conformance
