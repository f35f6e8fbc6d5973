// FakeJobContext (testing.hpp): a job's code run by a unit test sees what a
// scheduler would give it (cancellation, its reason, progress rules), and
// the test sees what the code did, without time passing.
#include "error_of.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/testing.hpp>
#include <jobrepo/text.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

using jobrepo::test::code_of;

namespace {

// A job as an application writes it: works a minute at a time for `steps`
// minutes, reporting progress, until asked to stop.
std::chrono::microseconds minute_steps(jobrepo::JobContext& ctx, int steps) {
  for (int done = 0; done < steps; ++done) {
    ctx.report_progress(done, steps);
    if (!ctx.sleep_for(1min)) return 5min;  // stopped: again in 5 minutes
  }
  ctx.report_progress(steps, steps);
  return 1h;
}

}  // namespace

TEST_CASE("testing: a FakeJobContext runs a job's code at once, and tells what it slept and reported") {
  jobrepo::FakeJobContext ctx("report", "r-1");
  CHECK(ctx.job_name() == "report");
  CHECK(ctx.run_id() == "r-1");
  CHECK(ctx.deadline() == std::chrono::steady_clock::time_point::max());
  CHECK(ctx.fence_deadline() == std::chrono::steady_clock::time_point::max());
  CHECK_FALSE(ctx.progress());

  const auto started = std::chrono::steady_clock::now();
  CHECK(minute_steps(ctx, 3) == 1h);
  CHECK(std::chrono::steady_clock::now() - started < 10s);  // three minutes of sleep_for took none
  CHECK(ctx.slept() == 3min);
  CHECK(ctx.progress() == jobrepo::FakeJobContext::Progress{3, 3});
  using P = jobrepo::FakeJobContext::Progress;
  CHECK(ctx.progress_reports() == std::vector<P>{{0, 3}, {1, 3}, {2, 3}, {3, 3}});
  CHECK_FALSE(ctx.cancelled());
  CHECK(ctx.cancel_reason() == jobrepo::CancelReason::none);
}

TEST_CASE("testing: cancel_after stops a job's code in the middle of a sleep, with the reason given") {
  jobrepo::FakeJobContext ctx("report");
  ctx.cancel_after(150s, jobrepo::CancelReason::deadline);
  CHECK(minute_steps(ctx, 10) == 5min);
  CHECK(ctx.slept() == 150s);  // the third sleep was cut short at 2m30s
  CHECK(ctx.cancelled());
  CHECK(ctx.cancel_reason() == jobrepo::CancelReason::deadline);
  CHECK(ctx.progress() == jobrepo::FakeJobContext::Progress{2, 10});
  CHECK_FALSE(ctx.sleep_for(1s));  // once cancelled, a sleep returns at once
  CHECK(ctx.slept() == 150s);

  try {
    ctx.throw_if_cancelled();
    FAIL("throw_if_cancelled did not throw");
  } catch (const jobrepo::Cancelled& e) {
    CHECK(e.reason() == jobrepo::CancelReason::deadline);
  }

  jobrepo::FakeJobContext at_start("report");
  at_start.cancel_after(0s, jobrepo::CancelReason::stopping);
  CHECK(at_start.cancelled());
  CHECK(minute_steps(at_start, 10) == 5min);
  CHECK(at_start.slept() == 0s);
}

TEST_CASE(
    "testing: cancel() from another thread reaches code that waits on the stop token, and the first reason stays") {
  jobrepo::FakeJobContext ctx("poll");
  std::atomic<bool> returned{false};
  std::thread handler([&] {
    while (!ctx.cancelled()) std::this_thread::yield();
    returned = true;
  });
  ctx.cancel(jobrepo::CancelReason::operator_request);
  handler.join();
  CHECK(returned);
  ctx.cancel(jobrepo::CancelReason::stopping);
  CHECK(ctx.cancel_reason() == jobrepo::CancelReason::operator_request);
  CHECK(ctx.stop_token().stop_requested());
}

TEST_CASE("testing: a FakeJobContext refuses what the scheduler refuses, in one line") {
  jobrepo::FakeJobContext ctx("report", "r-9");
  try {
    ctx.report_progress(5, 3);
    FAIL("report_progress(5, 3) did not throw");
  } catch (const jobrepo::Error& e) {
    CHECK(e.code() == jobrepo::ErrorCode::invalid_parameter);
    CHECK(std::string(e.what()) ==
          "report_progress: run \"r-9\": counts 5/3 must be non-negative with completed <= total");
  }
  CHECK(code_of([&] { ctx.report_progress(-1, 3); }) == jobrepo::ErrorCode::invalid_parameter);
  CHECK_FALSE(ctx.progress());  // nothing kept from a refused report
  CHECK(code_of([&] { ctx.sleep_for(-1us); }) == jobrepo::ErrorCode::invalid_parameter);
  CHECK(code_of([&] { ctx.cancel(jobrepo::CancelReason::none); }) == jobrepo::ErrorCode::invalid_parameter);
  CHECK(code_of([&] { ctx.cancel_after(-1s); }) == jobrepo::ErrorCode::invalid_parameter);
  CHECK_FALSE(ctx.cancelled());

  const auto soon = std::chrono::steady_clock::time_point(1h);
  ctx.set_deadline(soon);
  ctx.set_fence_deadline(soon + 1s);
  CHECK(ctx.deadline() == soon);
  CHECK(ctx.fence_deadline() == soon + 1s);
}

TEST_CASE("testing: a FakeJobContext carries a run's arguments, checked as run_now checks them") {
  // A job that reads its arguments: a full rebuild when asked for one.
  const auto rebuild = [](jobrepo::JobContext& ctx) {
    return ctx.payload() && ctx.payload()->find("\"full\": true") != std::string::npos ? 24h : 1h;
  };
  jobrepo::FakeJobContext scheduled("index", "r-1");
  CHECK_FALSE(scheduled.payload());  // a run by schedule has none
  CHECK(rebuild(scheduled) == 1h);
  jobrepo::FakeJobContext asked("index", "r-2");
  asked.set_payload(R"({"full": true})");
  CHECK(asked.payload() == std::optional<std::string>(R"({"full": true})"));
  CHECK(rebuild(asked) == 24h);
  try {
    asked.set_payload("{full: true}");
    FAIL("set_payload of text that is not JSON did not throw");
  } catch (const jobrepo::Error& e) {
    CHECK(e.code() == jobrepo::ErrorCode::invalid_parameter);
    CHECK(std::string(e.what()) ==
          "set_payload: run \"r-2\": payload is not valid JSON: at byte 2 (\"full: true}\"): expected a string (a "
          "key of the object)");
  }
  CHECK(asked.payload() == std::optional<std::string>(R"({"full": true})"));  // kept
  CHECK(code_of([&] { asked.set_payload(std::string(jobrepo::max_payload_bytes + 1, ' ')); }) ==
        jobrepo::ErrorCode::invalid_parameter);
  asked.set_payload(std::nullopt);
  CHECK_FALSE(asked.payload());
}
