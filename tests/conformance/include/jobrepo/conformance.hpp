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
// run() takes Catch2's command line (e.g. a test name to run one case, `-r
// junit` for a JUnit report). Your executable may add its own Catch2
// TEST_CASEs; they run with the suite. The suite re-runs the same executable
// as child processes for its cross-process races, passing them arguments of
// its own (they start with "--jobrepo-").
//
// Never hangs: every loop of the suite has a deadline and a cap, and a case
// that runs longer than its limit (120 s, JOBREPO_CONFORMANCE_CASE_TIMEOUT to
// change) ends the run as failed, naming the case.
//
// Never flatters: a case that cannot run against this harness (Capabilities
// below) is reported as skipped, by name and with the reason, never as
// passed: in the summary line ("N passed, M failed, K skipped"), in the exit
// status, and as <skipped/> in a JUnit report. cmake's
// jobrepo_add_conformance_tests() (find_package(jobrepo COMPONENTS
// conformance)) registers each case as a ctest test of its own, so that
// ctest shows the skipped ones as skipped. docs/backends.md lists every rule
// the suite checks.
#pragma once

#include <jobrepo/store.hpp>

#include <memory>
#include <string>

namespace jobrepo::conformance {

// A new, empty, unmigrated database made for one test case.
struct Database {
  std::unique_ptr<Store> store;
  // How Harness::open() reaches the same database from a child process of
  // the suite; empty when it cannot (e.g. an in-memory database).
  std::string url;
  // How Harness::open_in_process() reaches the same database in this
  // process; empty: `url` serves (the default, for a database any process
  // reaches by the same url).
  std::string local_url{};
};

// What the harness's databases can do. A case that needs what is missing is
// skipped (named, with the reason), never passed. The defaults fit a
// harness written before these existed: sharing follows the urls it gives.
struct Capabilities {
  // Database::url (when not empty) opens the database in another process.
  bool shares_across_processes = true;
  // Database::local_url, or else Database::url (when not empty), opens the
  // database again in this process.
  bool shares_in_process = true;
  // force_schema_version() can record a newer version. When true, a
  // force_schema_version() that returns false fails the case; when false,
  // the case is skipped without calling it.
  bool forces_schema_version = true;
  // subscribe_due() pushes wake-ups. When true, a store whose subscribe_due()
  // returns nullptr fails; when false, the wake-up case is skipped unless
  // the store returns a subscription (then it is tested all the same).
  bool pushes_wakeups = false;
};

class Harness {
 public:
  virtual ~Harness() = default;

  // A short name for the report, e.g. "sqlite-file".
  virtual std::string name() const = 0;

  // Empty when the backend can be tested now; otherwise why not (e.g. its
  // server is not reachable). The suite then reports itself skipped.
  virtual std::string unavailable_reason() { return {}; }

  // What the databases of make_database() can do (see Capabilities).
  virtual Capabilities capabilities() const { return {}; }

  // A store on a database that no other call returned. Called once per case
  // that needs one (and in no child process).
  virtual Database make_database() = 0;

  // Another store on a database that make_database() returned, given its
  // Database::url, in a child process of the suite (and, unless
  // open_in_process() is overridden, in this process too).
  virtual std::unique_ptr<Store> open(const std::string& url) = 0;

  // Another store on a database that make_database() returned, in this
  // process, given its Database::local_url (or its url when local_url is
  // empty). Default: open(url).
  virtual std::unique_ptr<Store> open_in_process(const std::string& url) { return open(url); }

  // Optional: record `version` as the schema version of the database at
  // `url` (its local_url, or url), as a newer jobrepo's migrate() would.
  // Return false when the harness cannot (see Capabilities).
  virtual bool force_schema_version(const std::string& url, int version) {
    (void)url;
    (void)version;
    return false;
  }

  // Per-case teardown: called when the case that made `db` ends (passed,
  // failed or skipped), after every other store the case opened on it is
  // destroyed; db.store is still open. Free what the database holds (drop
  // it, delete its file). Must not throw. Default: nothing.
  virtual void drop_database(Database& db) noexcept { (void)db; }
};

// The exit status run() returns when the backend is unavailable, or when
// every case ran but some were skipped (ctest's SKIP_RETURN_CODE): a skipped
// case never counts as passed.
inline constexpr int exit_skipped = 77;

// Runs the suite. Returns 0 when every case ran and passed, 1 when a case
// failed or fewer cases ran than the suite holds (unless the command line
// selected some), exit_skipped when the backend is unavailable or when no
// case failed but some were skipped. The summary line goes to standard
// output, or to standard error when a JUnit or XML report does.
int run(Harness& harness, int argc, char* argv[]);

}  // namespace jobrepo::conformance
