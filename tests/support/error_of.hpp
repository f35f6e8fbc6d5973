// Test helper: the ErrorCode a call throws (the test fails when it throws none).
#pragma once

#include <jobrepo/error.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>

namespace jobrepo::test {

inline ErrorCode code_of(const std::function<void()>& call, std::string* message = nullptr) {
  try {
    call();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  FAIL("no jobrepo::Error was thrown");
  return ErrorCode::internal;
}

}  // namespace jobrepo::test
