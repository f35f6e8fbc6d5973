// Shared helpers of the conformance cases. Not installed.
#pragma once

#include <jobrepo/conformance.hpp>
#include <jobrepo/conformance_printers.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/repository.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace jobrepo::conformance {

using namespace std::chrono_literals;

// The harness run() was given.
Harness& harness();

// The harness's capabilities, read once per run.
const Capabilities& capabilities();

// Records that the running case cannot run against this harness, and why;
// the runner reports the case as skipped (never passed). The case must end
// at once: use JR_SKIP.
void skip_case(const std::string& reason);
#define JR_SKIP(reason)                        \
  do {                                         \
    ::jobrepo::conformance::skip_case(reason); \
    return;                                    \
  } while (false)

// A database of the harness, dropped (Harness::drop_database) when the case
// ends, after the stores the case opened on it with reopen().
class CaseDatabase {
 public:
  CaseDatabase() : db_(harness().make_database()) {}
  CaseDatabase(const CaseDatabase&) = delete;
  CaseDatabase& operator=(const CaseDatabase&) = delete;
  ~CaseDatabase() {
    others_.clear();
    harness().drop_database(db_);
  }
  Database& db() { return db_; }
  Store& store() { return *db_.store; }
  // How this process reopens it (local_url, else url), or empty when the
  // harness cannot (then the case must skip: see in_process_url()).
  std::string in_process_url() const;
  // Another store on it in this process, kept until the case ends.
  // REQUIRES: in_process_url() is not empty.
  Store& reopen();

 private:
  Database db_;
  std::vector<std::unique_ptr<Store>> others_;
};

// A case's fresh, migrated store and a default Repository on it.
struct Fixture {
  CaseDatabase database{};
  Database& db = database.db();
  Store& store = *db.store;
  Repository repo = (store.migrate(), Repository(store));

  // A Repository of another plugin on the same store.
  Repository other_plugin(const std::string& plugin_id = "pi_other") { return Repository(store, {plugin_id}); }
};

// The job names of `runs`, in their order.
inline std::vector<std::string> job_names(const std::vector<Run>& runs) {
  std::vector<std::string> names;
  for (const auto& run : runs) names.push_back(run.job_name);
  return names;
}

// The running run of job `name` (created when missing), claimed now by `server`.
Run claimed(Repository& repo, const std::string& name, const std::string& server = "s1");

// The jobrepo::Error `call` throws, or empty when it throws none.
std::optional<Error> error_of(const std::function<void()>& call);

// The case fails unless `call` throws a jobrepo::Error with `code` whose message
// contains `text`.
#define JR_REQUIRE_ERROR_WITH(call, expected_code, text)                            \
  do {                                                                              \
    const auto jr_error_ = ::jobrepo::conformance::error_of([&] { (void)(call); }); \
    INFO("call: " #call);                                                           \
    REQUIRE(jr_error_.has_value());                                                 \
    INFO("message: " << jr_error_->what());                                         \
    REQUIRE(jr_error_->code() == (expected_code));                                  \
    REQUIRE_THAT(std::string(jr_error_->what()), Catch::Contains(text));            \
  } while (false)

// The case fails unless `call` throws a jobrepo::Error with `code`.
#define JR_REQUIRE_ERROR(call, expected_code) JR_REQUIRE_ERROR_WITH(call, expected_code, "")

// True when `t` is within `tolerance` of this machine's clock (the store's
// clock is the database's; on one machine they agree to well within this).
bool near_system_now(Timestamp t, std::chrono::seconds tolerance = 30s);

bool url_safe(const std::string& id);

}  // namespace jobrepo::conformance

namespace jobrepo::conformance {
// Each case file defines one of these; run() calls them so that a static
// link keeps every case file (Catch2 registers cases from static initialisers).
void link_job_cases();
void link_run_cases();
void link_race_cases();
void link_control_cases();
void link_scheduler_cases();
void link_scheduler_process_cases();
}  // namespace jobrepo::conformance
