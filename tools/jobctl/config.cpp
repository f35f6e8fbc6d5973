#include "config.hpp"

#include "duration.hpp"
#include "http_server.hpp"
#include "shown.hpp"

#include <jobrepo/text.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace jobctl {

namespace {

using nlohmann::json;
using std::chrono::microseconds;

// The most commands a server runs at once (worker_threads); far beyond what
// one machine serves, small enough that a typo does not start a million threads.
constexpr std::int64_t max_worker_threads = 1024;

struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw ConfigError(file + ": " + field + ": " + problem);
  }

  void only(const json& object, const std::string& where, const std::set<std::string>& known) const {
    for (const auto& [key, value] : object.items()) {
      if (known.count(key) == 0) fail(where.empty() ? shown(key) : where + "." + shown(key), "unknown field");
    }
  }

  // A string the library stores: the library's own rule (text.hpp). An
  // empty one is there, so it is empty (the library says "missing").
  std::string text(const json& value, const std::string& field, jobrepo::TextKind kind) const {
    if (!value.is_string()) fail(field, "must be a string");
    auto s = value.get<std::string>();
    if (s.empty()) fail(field, "is empty");
    if (const auto problem = jobrepo::text_problem(kind, s)) fail(field, problem->message);
    return s;
  }

  // Any other string (an argument, a path, an environment value): no NUL
  // byte, which would cut it short where it is used ("\u0000" in JSON).
  std::string plain(const json& value, const std::string& field) const {
    if (!value.is_string()) fail(field, "must be a string");
    auto s = value.get<std::string>();
    if (const auto problem = jobrepo::encoding_problem(s)) fail(field, problem->message);
    return s;
  }

  bool flag(const json& value, const std::string& field) const {
    if (!value.is_boolean()) fail(field, "must be true or false");
    return value.get<bool>();
  }

  microseconds duration(const json& value, const std::string& field, bool positive) const {
    if (!value.is_string()) fail(field, std::string("must be a duration string, ") + duration_hint);
    std::string problem;
    const auto parsed = parse_duration(value.get<std::string>(), &problem);
    if (!parsed) fail(field, problem);
    if (positive && parsed->count() <= 0) fail(field, "must be positive");
    if (!positive && parsed->count() < 0) fail(field, "must not be negative");
    return *parsed;
  }
};

// A parser callback that refuses a key twice in one object (JSON allows it
// and nlohmann keeps the last one, so a second "every" would silently win),
// naming it as the config's fields are named: "jobs[0].every".
json::parser_callback_t refuse_duplicate_keys(const std::string& file) {
  struct Level {
    bool array = false;
    std::size_t index = 0;  // of the array's current element
    std::string key;        // the object's current key
    std::set<std::string> keys;
  };
  auto levels = std::make_shared<std::vector<Level>>();
  return [levels, file](int /*depth*/, json::parse_event_t event, json& parsed) {
    const auto element_done = [&] {
      if (!levels->empty() && levels->back().array) ++levels->back().index;
    };
    switch (event) {
      case json::parse_event_t::object_start: levels->push_back({}); break;
      case json::parse_event_t::array_start: levels->push_back({true, 0, {}, {}}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        levels->pop_back();
        element_done();
        break;
      case json::parse_event_t::value: element_done(); break;
      case json::parse_event_t::key: {
        auto& level = levels->back();
        level.key = parsed.get<std::string>();
        if (!level.keys.insert(level.key).second) {
          std::string where;
          for (const auto& l : *levels) {
            where += l.array ? "[" + std::to_string(l.index) + "]" : (where.empty() ? "" : ".") + shown(l.key);
          }
          throw ConfigError(file + ": " + where + ": appears twice");
        }
        break;
      }
    }
    return true;
  };
}

// A cron expression in a zone, checked by core (its message shows the
// offending text) and reported at `field`.
void check_cron(const Reader& r, const std::string& field, const std::string& expression, const std::string& zone) {
  try {
    jobrepo::CronSchedule(expression, zone);
  } catch (const jobrepo::Error& e) {
    r.fail(field, e.what());
  }
}

// A time zone of the tz database (checked with an expression that is fine).
void check_zone(const Reader& r, const std::string& field, const std::string& zone) {
  check_cron(r, field, "0 0 1 1 *", zone);
}

// "backoff": {"initial": "1s", "max": "5m", "multiplier": 2, "max_attempts": 5,
// "give_up": true}, each field optional (the defaults of `base`), checked by
// the library's rule.
jobrepo::BackoffOptions read_backoff(const Reader& r, const json& value, const std::string& where,
                                     jobrepo::BackoffOptions base) {
  if (!value.is_object()) r.fail(where, "must be an object with initial, max, multiplier, max_attempts, give_up");
  r.only(value, where, {"initial", "max", "multiplier", "max_attempts", "give_up"});
  if (value.contains("initial")) base.initial = r.duration(value["initial"], where + ".initial", false);
  if (value.contains("max")) base.max = r.duration(value["max"], where + ".max", false);
  if (value.contains("multiplier")) {
    if (!value["multiplier"].is_number()) r.fail(where + ".multiplier", "must be a number from 1 to 1000");
    base.multiplier = value["multiplier"].get<double>();
  }
  if (value.contains("max_attempts")) {
    const auto& attempts = value["max_attempts"];
    if (!attempts.is_number_integer() ||
        (attempts.is_number_unsigned() ? attempts.get<std::uint64_t>() > 1000000 : attempts.get<std::int64_t>() < 0)) {
      r.fail(where + ".max_attempts", "must be an integer from 0 (no limit) to 1000000");
    }
    base.max_attempts = static_cast<int>(attempts.get<std::int64_t>());
  }
  if (value.contains("give_up")) base.give_up = r.flag(value["give_up"], where + ".give_up");
  if (const auto problem = jobrepo::backoff_problem(base, ""); !problem.empty()) r.fail(where, problem);
  return base;
}

// "on_failure": ["program", "arg", ...].
std::vector<std::string> read_argv(const Reader& r, const json& value, const std::string& where) {
  if (!value.is_array() || value.empty()) {
    r.fail(where, "must be a non-empty array of strings (argv; use [\"sh\", \"-c\", \"...\"] for a shell)");
  }
  std::vector<std::string> argv;
  for (std::size_t i = 0; i < value.size(); ++i) {
    argv.push_back(r.plain(value[i], where + "[" + std::to_string(i) + "]"));
  }
  if (argv.front().empty()) r.fail(where + "[0]", "the program is empty");
  return argv;
}

// "on_failure_when": ["every_attempt" | "exhausted" | "recovery", ...].
CommandJob::OnFailureWhen read_when(const Reader& r, const json& value, const std::string& where) {
  if (!value.is_array() || value.empty()) {
    r.fail(where, "must be a non-empty array of \"every_attempt\", \"exhausted\" and \"recovery\"");
  }
  CommandJob::OnFailureWhen when{false, false, false};
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string field = where + "[" + std::to_string(i) + "]";
    const std::string text = r.plain(value[i], field);
    if (text == "every_attempt") {
      when.every_attempt = true;
    } else if (text == "exhausted") {
      when.exhausted = true;
    } else if (text == "recovery") {
      when.recovery = true;
    } else {
      r.fail(field, shown(text) + " is not every_attempt, exhausted or recovery");
    }
  }
  return when;
}

// The most runs "keep_runs" keeps: far beyond what a history is for, small
// enough that no count overflows.
constexpr std::int64_t max_keep_runs = 1000000000;

// "keep_runs": an integer from 1 to max_keep_runs.
std::int64_t read_keep_runs(const Reader& r, const json& value, const std::string& where) {
  // Read as 64 bits, then checked (as worker_threads).
  std::int64_t keep = 0;  // anything out of range
  if (value.is_number_unsigned()) {
    if (value.get<std::uint64_t>() <= static_cast<std::uint64_t>(max_keep_runs)) keep = value.get<std::int64_t>();
  } else if (value.is_number_integer()) {
    keep = value.get<std::int64_t>();
  }
  if (keep < 1 || keep > max_keep_runs) r.fail(where, "must be an integer from 1 to " + std::to_string(max_keep_runs));
  return keep;
}

// "on_failure_cancels": true or false.
bool read_bool(const Reader& r, const json& value, const std::string& where) {
  if (!value.is_boolean()) r.fail(where, "must be true or false");
  return value.get<bool>();
}

CommandJob read_job(const Reader& r, const json& item, const std::string& where, const ServeConfig& config) {
  const std::string& time_zone = config.time_zone;
  if (!item.is_object()) r.fail(where, "must be an object");
  r.only(item, where,
         {"name", "description", "command", "every", "cron", "on_demand", "time_zone", "misfire", "timeout", "jitter",
          "working_directory", "environment", "backoff", "on_failure", "on_failure_when", "on_failure_cancels",
          "keep_runs", "keep_for"});
  CommandJob job;
  job.backoff = config.backoff;
  job.on_failure = config.on_failure;
  job.on_failure_when = config.on_failure_when;
  job.on_failure_cancels = config.on_failure_cancels;
  if (item.contains("on_failure_when")) {
    job.on_failure_when = read_when(r, item["on_failure_when"], where + ".on_failure_when");
  }
  if (item.contains("on_failure_cancels")) {
    job.on_failure_cancels = read_bool(r, item["on_failure_cancels"], where + ".on_failure_cancels");
  }
  if (item.contains("backoff")) job.backoff = read_backoff(r, item["backoff"], where + ".backoff", config.backoff);
  if (item.contains("on_failure")) job.on_failure = read_argv(r, item["on_failure"], where + ".on_failure");
  if (!item.contains("name")) r.fail(where + ".name", "is missing");
  job.name = r.text(item["name"], where + ".name", jobrepo::TextKind::job_name);
  if (!item.contains("command")) r.fail(where + ".command", "is missing");
  const auto& command = item["command"];
  if (!command.is_array() || command.empty()) {
    r.fail(where + ".command",
           "must be a non-empty array of strings (argv; use [\"sh\", \"-c\", \"...\"] for a shell)");
  }
  for (std::size_t i = 0; i < command.size(); ++i) {
    job.command.push_back(r.plain(command[i], where + ".command[" + std::to_string(i) + "]"));
  }
  // Every run would fail to start it.
  if (job.command.front().empty()) r.fail(where + ".command[0]", "the program is empty");
  job.description = item.contains("description")
                        ? r.text(item["description"], where + ".description", jobrepo::TextKind::description)
                        : "runs " + job.command.front();
  if (item.contains("on_demand")) job.on_demand = r.flag(item["on_demand"], where + ".on_demand");
  if (job.on_demand && (item.contains("every") || item.contains("cron"))) {
    r.fail(where + ".on_demand", "an on-demand job has no \"every\" or \"cron\" (only run-now makes it due)");
  }
  if (!job.on_demand && item.contains("every") == item.contains("cron")) {
    r.fail(where, item.contains("every") ? "give \"every\" or \"cron\", not both"
                                         : "needs \"every\" (a duration) or \"cron\" (a cron expression), or "
                                           "\"on_demand\": true");
  }
  if (!item.contains("cron")) {
    for (const char* field : {"time_zone", "misfire"}) {
      if (item.contains(field)) r.fail(where + "." + field, "applies to \"cron\" jobs only");
    }
  }
  if (item.contains("every")) {
    job.every = r.duration(item["every"], where + ".every", true);
  } else if (item.contains("cron")) {
    job.cron = r.plain(item["cron"], where + ".cron");
    job.time_zone = time_zone;
    if (item.contains("time_zone")) {
      job.time_zone = r.plain(item["time_zone"], where + ".time_zone");
      check_zone(r, where + ".time_zone", job.time_zone);
    }
    check_cron(r, where + ".cron", job.cron, job.time_zone);
    if (item.contains("misfire")) {
      const auto text = r.plain(item["misfire"], where + ".misfire");
      const auto misfire = jobrepo::parse_misfire(text);
      if (!misfire) r.fail(where + ".misfire", jobrepo::quote_text(text) + " is not run_once or skip");
      job.misfire = *misfire;
    }
  }
  job.timeout = config.timeout;
  job.jitter = config.jitter;
  job.keep_runs = config.keep_runs;
  job.keep_for = config.keep_for;
  if (item.contains("keep_runs")) job.keep_runs = read_keep_runs(r, item["keep_runs"], where + ".keep_runs");
  if (item.contains("keep_for")) job.keep_for = r.duration(item["keep_for"], where + ".keep_for", true);
  if (item.contains("timeout")) job.timeout = r.duration(item["timeout"], where + ".timeout", true);
  if (item.contains("jitter")) job.jitter = r.duration(item["jitter"], where + ".jitter", false);
  // The wait is part of the run: it must leave the command time to run.
  if (job.timeout.count() > 0 && job.jitter >= job.timeout) {
    r.fail(where + ".jitter",
           "jitter " + format_duration(job.jitter) + " must be less than the timeout " + format_duration(job.timeout));
  }
  if (item.contains("working_directory")) {
    const std::string field = where + ".working_directory";
    job.working_directory = r.plain(item["working_directory"], field);
    if (job.working_directory.empty()) r.fail(field, "must not be empty");
    // The error_code overload: a path too long, a loop of links or a parent
    // that cannot be searched is the config's error, not a crash.
    std::error_code error;
    const bool directory = std::filesystem::is_directory(job.working_directory, error);
    if (error) r.fail(field, jobrepo::quote_text(job.working_directory) + ": " + error.message());
    if (!directory) r.fail(field, jobrepo::quote_text(job.working_directory) + " is not a directory");
  }
  if (item.contains("environment")) {
    const auto& env = item["environment"];
    if (!env.is_object()) r.fail(where + ".environment", "must be an object of strings");
    for (const auto& [key, value] : env.items()) {
      const std::string field = where + ".environment." + shown(key);
      if (key.empty() || key.find('=') != std::string::npos) {
        r.fail(where + ".environment", "the name " + jobrepo::quote_text(key) + " is empty or has a '='");
      }
      if (const auto problem = jobrepo::encoding_problem(key))
        r.fail(where + ".environment", "the name " + problem->message);
      job.environment[key] = r.plain(value, field);
    }
  }
  return job;
}

}  // namespace

std::string_view to_string(CgroupsSetting setting) noexcept {
  switch (setting) {
    case CgroupsSetting::automatic: return "auto";
    case CgroupsSetting::on: return "on";
    case CgroupsSetting::off: return "off";
  }
  return "auto";
}

std::string definition(const CommandJob& job) {
  json env = json::object();
  for (const auto& [key, value] : job.environment) env[key] = value;
  json d = {{"name", job.name},
            {"description", job.description},
            {"command", job.command},
            {"every", job.every.count()},
            {"cron", job.cron},
            {"time_zone", job.cron.empty() ? std::string() : job.time_zone},
            {"misfire", std::string(jobrepo::to_string(job.misfire))},
            {"timeout", job.timeout.count()},
            {"working_directory", job.working_directory},
            {"environment", env},
            {"backoff",
             {job.backoff.initial.count(), job.backoff.max.count(), job.backoff.multiplier, job.backoff.max_attempts}},
            {"on_failure", job.on_failure}};
  // Fields that came later are written only when set, so that the
  // definitions (and fingerprints) of jobs that do not use them stay as
  // servers of the version before wrote them: no drift in a rolling upgrade.
  if (job.backoff.give_up) d["backoff"].push_back("give_up");
  if (job.on_demand) d["on_demand"] = true;
  if (job.on_failure_when != CommandJob::OnFailureWhen{}) {
    json when = json::array();
    if (job.on_failure_when.every_attempt) when.push_back("every_attempt");
    if (job.on_failure_when.exhausted) when.push_back("exhausted");
    if (job.on_failure_when.recovery) when.push_back("recovery");
    d["on_failure_when"] = when;
  }
  if (job.on_failure_cancels) d["on_failure_cancels"] = true;
  if (job.jitter.count() > 0) d["jitter"] = job.jitter.count();
  // Servers that keep a job's history differently prune it differently.
  if (job.keep_runs) d["keep_runs"] = *job.keep_runs;
  if (job.keep_for) d["keep_for"] = job.keep_for->count();
  return d.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string retention_text(const CommandJob& job) {
  std::string text;
  if (job.keep_runs) text = "keep_runs " + std::to_string(*job.keep_runs);
  if (job.keep_for) text += (text.empty() ? "" : ", ") + std::string("keep_for ") + format_duration(*job.keep_for);
  return text;
}

jobrepo::RegisterJobOptions register_options(const CommandJob& job) {
  jobrepo::RegisterJobOptions options{.next_run_in = microseconds(0), .timeout = job.timeout};
  options.backoff = job.backoff;
  options.definition = definition(job);
  if (job.on_demand) {
    options.on_demand = true;
    options.schedule_text = "on demand";
  } else if (job.cron.empty()) {
    options.schedule_text = "every " + format_duration(job.every);
    options.every = job.every;
  } else {
    options.schedule = jobrepo::CronSchedule(job.cron, job.time_zone);
    options.misfire = job.misfire;
  }
  return options;
}

jobrepo::SchedulerOptions scheduler_options(const ServeConfig& config) {
  jobrepo::SchedulerOptions options;
  options.plugin_id = config.plugin_id;
  options.worker_threads = config.worker_threads;
  options.claim_interval = config.claim_interval;
  options.monitor_interval = config.monitor_interval;
  options.interrupt_threshold = config.interrupt_threshold;
  options.grace = config.grace;
  // stop(): SIGTERM, grace, SIGKILL, and a moment for the outcome.
  options.stop_timeout = config.grace + std::chrono::seconds(1);
  // Each command's supervisor ends it at its run's lease on its own, even
  // when serve hangs: the handler (a thread that waits for the supervisor)
  // is fenced otherwise, and a late return of it ends no process early.
  options.fence_overrun = jobrepo::FenceOverrun::report;
  return options;
}

std::optional<HttpAddress> parse_http_address(const std::string& text, std::string* problem) {
  const auto refuse = [&](const std::string& why) -> std::optional<HttpAddress> {
    if (problem) *problem = jobrepo::quote_text(text) + " " + why;
    return std::nullopt;
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return refuse("is not ADDR:PORT (e.g. 127.0.0.1:9100, or :9100 for 127.0.0.1)");
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.empty()) host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  // A host name has at most 253 characters (RFC 1035), an address fewer.
  if (host.size() > 253 || host.find_first_of(" \t/\\\"") != std::string::npos || jobrepo::encoding_problem(host)) {
    return refuse("has an address that is not a host name or IP address");
  }
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return refuse("has no port number from 1 to 65535");
  }
  const int port = std::stoi(port_text);
  if (port < 1 || port > 65535) return refuse("has no port number from 1 to 65535");
  return HttpAddress{host, port};
}

std::optional<std::vector<std::string>> parse_http_hosts(const std::vector<std::string>& names, std::string* problem) {
  std::vector<std::string> hosts;
  for (const auto& name : names) {
    const std::string host = http::host_of(name);
    const bool has_port =
        !name.empty() && (name.front() == '[' ? name.back() != ']' : name.find(':') != std::string::npos);
    if (host.empty() || has_port) {
      if (problem) *problem = jobrepo::quote_text(name) + " is not a host name or IP address (without a port)";
      return std::nullopt;
    }
    hosts.push_back(host);
  }
  return hosts;
}

ServeConfig load_config(const std::string& path) {
  const std::string name = shown(path);  // as messages show it
  // A directory opens, and reads as an empty file: "not valid JSON" would
  // hide what is wrong.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) throw ConfigError(name + ": cannot read: " + std::strerror(EISDIR));
  std::ifstream in(path);
  if (!in) throw ConfigError(name + ": cannot read: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(name + ": cannot read: " + std::strerror(errno));
  return parse_config(text.str(), name);
}

ServeConfig parse_config(std::string_view text, const std::string& path) {
  json root;
  try {
    root = json::parse(text, refuse_duplicate_keys(path));
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number no double holds (1e999).
    // The parser's "last read" quotes the file's bytes as they are (a line
    // break, bytes that are not UTF-8): the message ends before it, the line
    // and column it gives are enough.
    std::string what = e.what();
    what.resize(std::min(what.size(), what.find("; last read:")));
    throw ConfigError(path + ": not valid JSON: " + what);
  }
  const Reader r{path};
  if (!root.is_object()) r.fail("(top level)", "must be an object");
  r.only(root, "", {"plugin_id",           "time_zone", "worker_threads", "claim_interval", "monitor_interval",
                    "interrupt_threshold", "grace",     "backoff",        "on_failure",     "on_failure_when",
                    "on_failure_cancels",  "timeout",   "jitter",         "keep_runs",      "keep_for",
                    "prune_interval",      "http",      "http_hosts",     "cgroups",        "jobs"});
  ServeConfig config;
  if (root.contains("plugin_id"))
    config.plugin_id = r.text(root["plugin_id"], "plugin_id", jobrepo::TextKind::plugin_id);
  if (root.contains("time_zone")) {
    config.time_zone = r.plain(root["time_zone"], "time_zone");
    check_zone(r, "time_zone", config.time_zone);
  }
  if (root.contains("worker_threads")) {
    // Read as 64 bits (read as an int, 4294967297 wrapped to 1), then checked.
    const auto& value = root["worker_threads"];
    std::int64_t threads = 0;  // anything out of range
    if (value.is_number_unsigned()) {
      if (value.get<std::uint64_t>() <= static_cast<std::uint64_t>(max_worker_threads)) {
        threads = value.get<std::int64_t>();
      }
    } else if (value.is_number_integer()) {
      threads = value.get<std::int64_t>();
    }
    if (threads < 1 || threads > max_worker_threads) {
      r.fail("worker_threads", "must be an integer from 1 to " + std::to_string(max_worker_threads));
    }
    config.worker_threads = static_cast<int>(threads);
  }
  if (root.contains("claim_interval"))
    config.claim_interval = r.duration(root["claim_interval"], "claim_interval", true);
  if (root.contains("monitor_interval")) {
    config.monitor_interval = r.duration(root["monitor_interval"], "monitor_interval", true);
  }
  if (root.contains("interrupt_threshold")) {
    config.interrupt_threshold = r.duration(root["interrupt_threshold"], "interrupt_threshold", true);
  }
  if (root.contains("grace")) config.grace = r.duration(root["grace"], "grace", false);
  if (root.contains("backoff")) config.backoff = read_backoff(r, root["backoff"], "backoff", config.backoff);
  if (root.contains("on_failure")) config.on_failure = read_argv(r, root["on_failure"], "on_failure");
  if (root.contains("on_failure_when")) {
    config.on_failure_when = read_when(r, root["on_failure_when"], "on_failure_when");
  }
  if (root.contains("on_failure_cancels")) {
    config.on_failure_cancels = read_bool(r, root["on_failure_cancels"], "on_failure_cancels");
  }
  if (root.contains("timeout")) config.timeout = r.duration(root["timeout"], "timeout", true);
  if (root.contains("jitter")) config.jitter = r.duration(root["jitter"], "jitter", false);
  if (root.contains("keep_runs")) config.keep_runs = read_keep_runs(r, root["keep_runs"], "keep_runs");
  if (root.contains("keep_for")) config.keep_for = r.duration(root["keep_for"], "keep_for", true);
  if (root.contains("prune_interval")) {
    config.prune_interval = r.duration(root["prune_interval"], "prune_interval", true);
  }
  if (root.contains("http")) {
    config.http = r.plain(root["http"], "http");
    std::string problem;
    if (!parse_http_address(config.http, &problem)) r.fail("http", problem);
  }
  if (root.contains("http_hosts")) {
    const auto& value = root["http_hosts"];
    if (!value.is_array()) r.fail("http_hosts", "must be an array of host names");
    std::vector<std::string> names;
    for (std::size_t i = 0; i < value.size(); ++i) {
      names.push_back(r.plain(value[i], "http_hosts[" + std::to_string(i) + "]"));
    }
    std::string problem;
    const auto hosts = parse_http_hosts(names, &problem);
    if (!hosts) r.fail("http_hosts", problem);
    config.http_hosts = *hosts;
  }
  if (root.contains("cgroups")) {
    const auto& value = root["cgroups"];
    const auto text = value.is_string() ? value.get<std::string>() : std::string();
    const auto known = {CgroupsSetting::automatic, CgroupsSetting::on, CgroupsSetting::off};
    const auto found = std::find_if(known.begin(), known.end(), [&](CgroupsSetting s) { return to_string(s) == text; });
    if (!value.is_string()) r.fail("cgroups", "must be \"auto\", \"on\" or \"off\"");
    if (found == known.end()) r.fail("cgroups", jobrepo::quote_text(text) + " is not auto, on or off");
    config.cgroups = *found;
  }
  // The Scheduler's own rules (monitor_interval, and the fence: a fenced
  // command must be gone before a peer may take its job).
  if (const auto problem = jobrepo::scheduler_options_problem(scheduler_options(config)); !problem.empty()) {
    throw ConfigError(path + ": " + problem);
  }
  if (!root.contains("jobs")) r.fail("jobs", "is missing");
  if (!root["jobs"].is_array() || root["jobs"].empty()) r.fail("jobs", "must be a non-empty array");
  std::set<std::string> names;
  for (std::size_t i = 0; i < root["jobs"].size(); ++i) {
    const std::string where = "jobs[" + std::to_string(i) + "]";
    auto job = read_job(r, root["jobs"][i], where, config);
    if (!names.insert(job.name).second) r.fail(where + ".name", jobrepo::quote_text(job.name) + " is defined twice");
    config.jobs.push_back(std::move(job));
  }
  return config;
}

}  // namespace jobctl
