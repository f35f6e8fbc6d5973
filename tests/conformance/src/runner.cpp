// The conformance runner: Catch2's session, the case count check, skipped
// cases, the per-case watchdog, one case by exact name (--jobrepo-case),
// the ctest listing (--jobrepo-ctest) and the child-process mode of the
// cross-process races. Listeners need Catch2's external interfaces (the
// implementation and the session are in catch_impl.cpp).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "catch_session.hpp"
#include "support.hpp"
#include "workers.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace jobrepo::conformance {

namespace {

Harness* current_harness = nullptr;
Capabilities current_capabilities{};

constexpr const char* suite_tag = "conformance";
constexpr const char* case_flag = "--jobrepo-case";
constexpr const char* ctest_flag = "--jobrepo-ctest";

// What the cases of this run did, as the listener and skip_case() saw it.
struct RunState {
  std::mutex mutex;
  std::string current_case;  // empty between cases
  std::chrono::steady_clock::time_point started{};
  std::map<std::string, std::string> skipped;  // case -> why, for the cases that ended skipped
  std::string pending_skip;                    // the running case's reason, when it skips
  std::vector<std::string> failed_cases;
  int passed = 0;
  int suite_cases_ended = 0;  // cases tagged [conformance]
};

RunState& state() {
  static RunState s;
  return s;
}

struct CaseListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    auto& s = state();
    const std::lock_guard lock(s.mutex);
    s.current_case = info.name;
    s.started = std::chrono::steady_clock::now();
    s.pending_skip.clear();
  }
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    auto& s = state();
    const std::lock_guard lock(s.mutex);
    const auto& name = stats.testInfo.name;
    if (!stats.totals.assertions.allOk()) {
      s.failed_cases.push_back(name);
    } else if (!s.pending_skip.empty()) {
      s.skipped[name] = s.pending_skip;
    } else {
      ++s.passed;
    }
    const auto& tags = stats.testInfo.tags;
    if (std::find(tags.begin(), tags.end(), suite_tag) != tags.end()) ++s.suite_cases_ended;
    s.current_case.clear();
    s.pending_skip.clear();
  }
};

// Ends the process when a case outlives its limit: a hung store call or a
// loop without end must fail the suite, never stall it.
class Watchdog {
 public:
  Watchdog(std::string harness_name, std::chrono::seconds limit)
      : name_(std::move(harness_name)), limit_(limit), thread_([this] { watch(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    stop_ = true;
    thread_.join();
  }

 private:
  void watch() {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::string overdue;
      {
        auto& s = state();
        const std::lock_guard lock(s.mutex);
        if (!s.current_case.empty() && std::chrono::steady_clock::now() - s.started > limit_) overdue = s.current_case;
      }
      if (!overdue.empty()) {
        std::fprintf(stderr,
                     "jobrepo conformance [%s]: FAILED: the case \"%s\" did not end within %lld s (a store call or a "
                     "claim that never ends?); stopping\n",
                     name_.c_str(), overdue.c_str(), static_cast<long long>(limit_.count()));
        std::fflush(nullptr);
        std::_Exit(1);
      }
    }
  }

  std::string name_;
  std::chrono::seconds limit_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::chrono::seconds case_limit() {
  if (const char* text = std::getenv("JOBREPO_CONFORMANCE_CASE_TIMEOUT")) {
    const long long seconds = std::atoll(text);
    if (seconds > 0) return std::chrono::seconds(seconds);
  }
  return std::chrono::seconds(120);
}

// A Catch2 test spec that matches exactly `name`.
std::string exact_spec(const std::string& name) {
  std::string out;
  for (const char c : name) {
    if (c == '\\' || c == ',' || c == '[' || c == ']' || c == '"' || c == '~' || c == '*') out += '\\';
    out += c;
  }
  return out;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Catch2 v2's JUnit report knows no skipped case: each skipped case's
// <testcase> gets a <skipped message="why"/> and its <testsuite> a
// skipped="K" count.
std::string add_skipped_to_junit(std::string xml, const std::map<std::string, std::string>& skipped) {
  // A case without assertions has no <testcase> of its own: one is added.
  std::string classname = "jobrepo.conformance";
  if (const auto at = xml.find("<testsuite name=\""); at != std::string::npos) {
    const auto begin = at + 18;
    classname = xml.substr(begin, xml.find('"', begin) - begin) + ".global";
  }
  for (const auto& [name, why] : skipped) {
    const std::string skipped_element = "<skipped message=\"" + xml_escape(why) + "\"/>";
    const std::string key = "name=\"" + xml_escape(name) + "\"";
    bool found = false;
    for (std::size_t at = xml.find(key); at != std::string::npos; at = xml.find(key, at + 1)) {
      const auto open = xml.rfind('<', at);
      if (open == std::string::npos || xml.compare(open, 9, "<testcase") != 0) continue;
      const auto end = xml.find('>', at);
      if (end == std::string::npos) break;
      found = true;
      if (xml[end - 1] == '/') {
        xml.replace(end - 1, 2, ">" + skipped_element + "</testcase>");
      } else {
        xml.insert(end + 1, skipped_element);
      }
    }
    const auto suite_end = xml.rfind("</testsuite>");
    if (!found && suite_end != std::string::npos) {
      xml.insert(suite_end, "  <testcase classname=\"" + xml_escape(classname) + "\" " + key + " time=\"0\">" +
                                skipped_element + "</testcase>\n  ");
    }
  }
  const auto suite = xml.find("<testsuite ");
  if (suite != std::string::npos) {
    xml.insert(suite + 11, "skipped=\"" + std::to_string(skipped.size()) + "\" ");
  }
  return xml;
}

std::string self_path() {
  std::string path(4096, '\0');
  const auto got = readlink("/proc/self/exe", path.data(), path.size());
  if (got <= 0) return "/proc/self/exe";
  path.resize(static_cast<std::size_t>(got));
  return path;
}

// A CMake bracket argument holding `text` as is.
std::string bracket(const std::string& text) {
  std::string equals = "=";
  while (text.find("]" + equals + "]") != std::string::npos) equals += "=";
  return "[" + equals + "[" + text + "]" + equals + "]";
}

// The ctest script of --jobrepo-ctest: one test per case, each running
// this executable with --jobrepo-case; a skipped case exits 77.
int print_ctest_script(int argc, char* argv[]) {
  const std::string prefix = argc > 0 ? argv[0] : "";
  const std::string timeout = argc > 1 ? argv[1] : "300";
  std::string extra;  // more properties: name value...
  for (int i = 2; i < argc; ++i) extra += " " + bracket(argv[i]);
  const std::string exe = self_path();
  std::ostringstream out;
  for (const auto& name : detail::case_names()) {
    // ctest keeps lists of test names: a ';' would split one.
    std::string test = prefix + name;
    std::replace(test.begin(), test.end(), ';', ',');
    out << "add_test(" << bracket(test) << " " << bracket(exe) << " " << case_flag << " " << bracket(name) << ")\n"
        << "set_tests_properties(" << bracket(test) << " PROPERTIES SKIP_RETURN_CODE " << exit_skipped << " TIMEOUT "
        << timeout << extra << ")\n";
  }
  std::cout << out.str() << std::flush;
  return std::cout.good() ? 0 : 1;
}

}  // namespace

CATCH_REGISTER_LISTENER(CaseListener)

Harness& harness() {
  if (current_harness == nullptr) throw std::logic_error("jobrepo conformance: no harness (call run())");
  return *current_harness;
}

const Capabilities& capabilities() { return current_capabilities; }

void skip_case(const std::string& reason) {
  auto& s = state();
  const std::lock_guard lock(s.mutex);
  if (s.pending_skip.empty()) s.pending_skip = reason.empty() ? "not applicable" : reason;
}

std::string CaseDatabase::in_process_url() const {
  if (!capabilities().shares_in_process) return {};
  return db_.local_url.empty() ? db_.url : db_.local_url;
}

Store& CaseDatabase::reopen() {
  const auto url = in_process_url();
  if (url.empty()) throw std::logic_error("jobrepo conformance: reopen() of a database without a url");
  others_.push_back(harness().open_in_process(url));
  if (!others_.back()) throw std::logic_error("jobrepo conformance: Harness::open_in_process() returned nullptr");
  return *others_.back();
}

Run claimed(Repository& repo, const std::string& name, const std::string& server) {
  if (!repo.lookup_job(name)) repo.create_job(name, "d");
  auto runs = repo.run_jobs(server, {.only_jobs = std::vector<std::string>{name}});
  REQUIRE(runs.size() == 1);
  return runs.at(0);
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

std::string timestamp_text(Timestamp t) {
  using namespace std::chrono;
  const auto since = t.time_since_epoch();
  auto secs = duration_cast<seconds>(since);
  auto rest = duration_cast<nanoseconds>(since - secs);
  if (rest < nanoseconds(0)) {
    secs -= seconds(1);
    rest += seconds(1);
  }
  const std::time_t time = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&time, &tm);
  char whole[32];
  std::strftime(whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &tm);
  char fraction[16];
  if (rest.count() % 1000 == 0) {
    std::snprintf(fraction, sizeof fraction, ".%06lldZ", static_cast<long long>(rest.count() / 1000));
  } else {
    std::snprintf(fraction, sizeof fraction, ".%09lldZ", static_cast<long long>(rest.count()));
  }
  return std::string(whole) + fraction;
}

namespace {

// ", payload "{\"a\":1}" (7 bytes)", cut after 60 code points; "" for none.
std::string payload_text(const std::optional<std::string>& payload) {
  if (!payload) return "";
  return ", payload " + quote_text(*payload) + " (" + std::to_string(payload->size()) + " bytes)";
}

}  // namespace

std::string run_text(const Run& run) {
  std::ostringstream out;
  out << "Run{" << run.private_id << ", job " << run.job_plugin_id << "/" << run.job_name << ", server "
      << run.server_id << ", " << to_string(run.status) << ", created " << timestamp_text(run.create_time)
      << ", updated " << timestamp_text(run.update_time) << ", ended "
      << (run.end_time ? timestamp_text(*run.end_time) : "-") << ", counts " << run.completed_count << "/"
      << run.total_count << ", attempt " << run.attempt << (run.cancel_requested ? ", cancel requested" : "")
      << (run.message ? ", message \"" + *run.message + "\"" : "") << payload_text(run.payload) << "}";
  return out.str();
}

std::string job_text(const Job& job) {
  std::ostringstream out;
  out << "Job{" << job.plugin_id << "/" << job.name << ", due " << timestamp_text(job.next_scheduled_run)
      << (job.paused ? ", paused" : "") << (job.run_requested ? ", run requested" : "") << ", failures "
      << job.consecutive_failures;
  if (job.last_status) out << ", last " << to_string(*job.last_status);
  if (job.last_end_time) out << " at " << timestamp_text(*job.last_end_time);
  if (job.last_message) out << " \"" << *job.last_message << "\"";
  if (job.last_success_time) out << ", last success " << timestamp_text(*job.last_success_time);
  out << payload_text(job.requested_payload) << ", description \"" << job.description << "\", schedule \""
      << job.schedule << "\"}";
  return out.str();
}

int run(Harness& harness, int argc, char* argv[]) {
  current_harness = &harness;
  link_job_cases();
  link_run_cases();
  link_race_cases();
  link_control_cases();
  link_scheduler_cases();
  link_scheduler_process_cases();
  if (argc >= 2 && std::strcmp(argv[1], worker_flag) == 0) return worker_main(harness, argc - 2, argv + 2);
  if (argc >= 2 && std::strcmp(argv[1], scheduler_flag) == 0) return scheduler_main(harness, argc - 2, argv + 2);
  if (argc >= 2 && std::strcmp(argv[1], ctest_flag) == 0) return print_ctest_script(argc - 2, argv + 2);

  // --jobrepo-case NAME: that case alone, by its exact name.
  std::vector<std::string> args(argv, argv + argc);
  std::optional<std::string> only_case;
  if (args.size() >= 3 && args[1] == case_flag) {
    only_case = args[2];
    args.erase(args.begin() + 1, args.begin() + 3);
    args.insert(args.begin() + 1, exact_spec(*only_case));
  } else if (args.size() == 2 && args[1] == case_flag) {
    std::cerr << "jobrepo conformance: " << case_flag << " needs a case name" << std::endl;
    return 2;
  }

  const std::string name = harness.name();
  if (const auto why = harness.unavailable_reason(); !why.empty()) {
    std::cout << "jobrepo conformance [" << name << "]: SKIPPED: " << why << std::endl;
    return exit_skipped;
  }
  current_capabilities = harness.capabilities();

  std::vector<char*> arg_pointers;
  for (auto& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);
  detail::SuiteSession session;
  {
    const Watchdog watchdog(name, case_limit());
    session = detail::run_suite(static_cast<int>(args.size()), arg_pointers.data(), suite_tag,
                                [](const std::string& junit) { return add_skipped_to_junit(junit, state().skipped); });
  }
  if (session.finished) return *session.finished;

  auto& s = state();
  const std::lock_guard lock(s.mutex);
  // The summary goes where a report on standard output cannot be spoiled by it.
  std::ostream& out = session.report_on_stdout ? std::cerr : std::cout;
  const std::string head = "jobrepo conformance [" + name + "]: ";
  const auto failed = s.failed_cases.size();
  const auto skipped = s.skipped.size();
  if (only_case && s.passed + failed + skipped == 0) {
    out << head << "FAILED: no case is named \"" << *only_case << "\" (--list-test-names-only lists them)" << std::endl;
    return 2;
  }
  out << head << s.passed << " passed, " << failed << " failed, " << skipped << " skipped";
  if (session.filtered) {
    out << " (selected cases)" << std::endl;
  } else {
    out << " (" << s.suite_cases_ended << " of the suite's " << session.total << " cases ran)" << std::endl;
  }
  for (const auto& failed_case : s.failed_cases) out << head << "failed: " << failed_case << std::endl;
  for (const auto& [skipped_case, why] : s.skipped)
    out << head << "skipped: " << skipped_case << ": " << why << std::endl;
  if (session.failures != 0 || failed != 0) return 1;
  if (!session.filtered && s.suite_cases_ended < session.total) {
    out << head << "FAILED: only " << s.suite_cases_ended << " of " << session.total << " cases ran" << std::endl;
    return 1;
  }
  if (s.passed + skipped == 0) {
    out << head << "FAILED: no case ran" << std::endl;
    return 1;
  }
  return skipped > 0 ? exit_skipped : 0;
}

}  // namespace jobrepo::conformance
