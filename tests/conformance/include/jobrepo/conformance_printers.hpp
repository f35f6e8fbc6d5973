// jobrepo: Catch2 printers for jobrepo's public types, so that a failed
// assertion shows the values ("2026-12-02T04:26:49.123456Z", "completed",
// a Run's fields) instead of "{?}". The conformance suite uses them; include
// this header (it needs Catch2) in your own test cases too.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/types.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>

namespace jobrepo::conformance {

// "2026-12-02T04:26:49.123456Z"; a time with a part below the microsecond
// (never valid from a store) shows its nanoseconds: ".123456789Z".
std::string timestamp_text(Timestamp t);
std::string run_text(const Run& run);
std::string job_text(const Job& job);

}  // namespace jobrepo::conformance

namespace Catch {
template <>
struct StringMaker<jobrepo::Timestamp> {
  static std::string convert(jobrepo::Timestamp t) { return jobrepo::conformance::timestamp_text(t); }
};
template <>
struct StringMaker<jobrepo::ErrorCode> {
  static std::string convert(jobrepo::ErrorCode code) { return std::string(jobrepo::to_string(code)); }
};
template <>
struct StringMaker<jobrepo::Status> {
  static std::string convert(jobrepo::Status status) { return std::string(jobrepo::to_string(status)); }
};
template <>
struct StringMaker<jobrepo::Run> {
  static std::string convert(const jobrepo::Run& run) { return jobrepo::conformance::run_text(run); }
};
template <>
struct StringMaker<jobrepo::Job> {
  static std::string convert(const jobrepo::Job& job) { return jobrepo::conformance::job_text(job); }
};
template <class T>
struct StringMaker<std::optional<T>> {
  static std::string convert(const std::optional<T>& value) {
    return value ? ::Catch::Detail::stringify(*value) : std::string("(empty)");
  }
};
}  // namespace Catch
