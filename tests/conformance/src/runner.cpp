// The conformance runner: Catch2's session, the case count check, the
// skipped status, and the child-process mode of the cross-process races.
// Listeners need Catch2's external interfaces (the implementation and the
// session are in catch_impl.cpp).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "catch_session.hpp"
#include "support.hpp"
#include "workers.hpp"

#include <jobrepo/error.hpp>

#include <cstring>
#include <iostream>
#include <mutex>
#include <set>

namespace jobrepo::conformance {

namespace {

Harness* current_harness = nullptr;
std::mutex not_applicable_mutex;
std::set<std::string> not_applicable;

constexpr const char* suite_tag = "conformance";

// Counts the suite's cases as Catch2 finishes them.
struct CaseCounter : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  static inline int ran = 0;      // cases of the suite
  static inline int failed = 0;   // cases of the suite
  static inline int ran_any = 0;  // any case, the suite's, hidden ones or the executable's own
  static inline int failed_any = 0;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    ++ran_any;
    if (!stats.totals.assertions.allOk()) ++failed_any;
    const auto& tags = stats.testInfo.tags;
    if (std::find(tags.begin(), tags.end(), suite_tag) == tags.end()) return;
    ++ran;
    if (!stats.totals.assertions.allOk()) ++failed;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(CaseCounter)

Harness& harness() {
  if (current_harness == nullptr) throw std::logic_error("jobrepo conformance: no harness (call run())");
  return *current_harness;
}

void note_not_applicable(const std::string& what) {
  const std::lock_guard lock(not_applicable_mutex);
  not_applicable.insert(what);
}

std::optional<Error> error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}

bool near_system_now(Timestamp t, std::chrono::seconds tolerance) {
  const auto now = Clock::now();
  return t > now - tolerance && t < now + tolerance;
}

bool url_safe(const std::string& id) {
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

int run(Harness& harness, int argc, char* argv[]) {
  current_harness = &harness;
  link_job_cases();
  link_run_cases();
  link_race_cases();
  link_control_cases();
  if (argc >= 2 && std::strcmp(argv[1], worker_flag) == 0) return worker_main(harness, argc - 2, argv + 2);

  const std::string name = harness.name();
  if (const auto why = harness.unavailable_reason(); !why.empty()) {
    std::cout << "jobrepo conformance [" << name << "]: SKIPPED: " << why << std::endl;
    return exit_skipped;
  }

  const auto session = detail::run_suite(argc, argv, suite_tag);
  if (session.finished) return *session.finished;
  const int total = session.total;
  const bool filtered = session.filtered;
  const int failures = session.failures;

  const int ran = CaseCounter::ran;
  const int failed = CaseCounter::failed;
  if (filtered) {
    std::cout << "jobrepo conformance [" << name << "]: " << CaseCounter::ran_any << " selected cases ran, "
              << (CaseCounter::ran_any - CaseCounter::failed_any) << " passed, " << CaseCounter::failed_any << " failed"
              << std::endl;
  } else {
    std::cout << "jobrepo conformance [" << name << "]: " << ran << " of " << total << " cases ran, " << (ran - failed)
              << " passed, " << failed << " failed" << std::endl;
  }
  for (const auto& what : not_applicable) {
    std::cout << "jobrepo conformance [" << name << "]: not applicable here: " << what << std::endl;
  }
  if (failures != 0 || failed != 0) return 1;
  if (!filtered && ran < total) {
    std::cout << "jobrepo conformance [" << name << "]: FAILED: only " << ran << " of " << total << " cases ran"
              << std::endl;
    return 1;
  }
  if (CaseCounter::ran_any == 0) {
    std::cout << "jobrepo conformance [" << name << "]: FAILED: no case ran" << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace jobrepo::conformance
