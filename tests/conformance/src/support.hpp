// Shared helpers of the conformance cases. Not installed.
#pragma once

#include <jobrepo/conformance.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/repository.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace jobrepo::conformance {

using namespace std::chrono_literals;

// The harness run() was given.
Harness& harness();

// Records that a case could not test something on this backend; the runner
// lists these in its report so that "not applicable" is never silent.
void note_not_applicable(const std::string& what);

// A case's fresh, migrated store and a default Repository on it.
struct Fixture {
  Database db = harness().make_database();
  Store& store = *db.store;
  Repository repo = (store.migrate(), Repository(store));

  // A Repository of another plugin on the same store.
  Repository other_plugin(const std::string& plugin_id = "pi_other") { return Repository(store, {plugin_id}); }
};

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

namespace Catch {
template <>
struct StringMaker<jobrepo::ErrorCode> {
  static std::string convert(jobrepo::ErrorCode code) { return std::string(jobrepo::to_string(code)); }
};
template <>
struct StringMaker<jobrepo::Status> {
  static std::string convert(jobrepo::Status status) { return std::string(jobrepo::to_string(status)); }
};
}  // namespace Catch

namespace jobrepo::conformance {
// Each case file defines one of these; run() calls them so that a static
// link keeps every case file (Catch2 registers cases from static initialisers).
void link_job_cases();
void link_run_cases();
void link_race_cases();
void link_control_cases();
}  // namespace jobrepo::conformance
