// jobctl: the operator's tool for jobrepo. See docs/cli.md, or jobctl --help.
#include "args.hpp"
#include "duration.hpp"
#include "serve.hpp"
#include "shown.hpp"
#include "status.hpp"
#include "supervisor.hpp"
#include "views.hpp"

#include <jobrepo/jobrepo.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace {

using nlohmann::json;
using std::chrono::microseconds;
using namespace jobctl;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

// --- output ------------------------------------------------------------------

// Text that a human output shows: by the one visible rule (jobrepo::printable),
// so that a name or message holding a line break, a terminal escape or bytes
// that are not UTF-8 stays on its line: one row is one job, one line one field.
std::string visible(std::string_view text) { return jobrepo::printable(text); }

void print_table(const std::vector<std::string>& header, std::vector<std::vector<std::string>> rows) {
  for (auto& row : rows) {
    for (auto& text : row) text = visible(text);
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out.append(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  if (rows.empty()) std::cout << "(none)\n";
}

std::string when(jobrepo::Timestamp t, jobrepo::Timestamp now) { return local_time(t) + " (" + relative(t, now) + ")"; }

// Progress as a person reads it: "-" when none was ever reported.
std::string progress_text(std::int64_t completed, std::int64_t total) {
  if (completed == 0 && total == 0) return "-";
  return std::to_string(completed) + "/" + std::to_string(total);
}

// A message cut to `width` code points for a table cell.
std::string cell(const std::string& text, std::size_t width) {
  std::size_t points = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0U) == 0x80U) continue;
    if (++points > width) return text.substr(0, i) + "...";
  }
  return text;
}

// A run's arguments on one line: a JSON text has raw line breaks and tabs
// only between its tokens (inside strings they are escaped), so they are
// shown as spaces without changing what it means.
std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  return text;
}

std::string state_text(const JobView& v) {
  std::string state;
  if (v.job.paused) state = "paused";
  if (v.running) {
    state += (state.empty() ? "" : ", ") + std::string("running on ") + v.running->server_id;
    if (const auto p = progress_text(v.running->completed_count, v.running->total_count); p != "-") {
      state += " (" + p + ")";
    }
    if (v.running->cancel_requested) state += ", cancelling";
  }
  if (v.job.run_requested) state += (state.empty() ? "" : ", ") + std::string("run requested");
  return state.empty() ? "idle" : state;
}

std::string last_text(const jobrepo::Job& j, jobrepo::Timestamp now) {
  if (!j.last_status) return "-";
  std::string text = std::string(jobrepo::to_string(*j.last_status));
  if (j.last_end_time) text += " " + relative(*j.last_end_time, now);
  if (j.last_message) text += ": " + cell(*j.last_message, 40);
  if (j.consecutive_failures > 1) text += " (" + std::to_string(j.consecutive_failures) + " failures in a row)";
  return text;
}

std::string servers_text(const JobView& v) {
  const auto live = v.live();
  if (live.empty()) return "NONE LIVE: no server runs it";
  std::string text;
  for (const auto* s : live) text += (text.empty() ? "" : ",") + s->server_id;
  if (v.drifted()) text += " DEFINITIONS DIFFER";
  return text;
}

// NEXT RUN of jobctl jobs: what makes the job due when no time does, "-"
// while paused, else when.
std::string next_run_cell(const jobrepo::Job& j, jobrepo::Timestamp now) {
  if (auto words = due_text(j); !words.empty()) return words;
  return j.paused ? "-" : when(j.next_scheduled_run, now);
}

void print_jobs(const std::vector<JobView>& views) {
  const auto now = jobrepo::Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : views) {
    const auto& j = v.job;
    rows.push_back({j.name, state_text(v), next_run_cell(j, now), last_text(j, now), servers_text(v),
                    j.schedule.empty() ? "-" : j.schedule});
  }
  print_table({"NAME", "STATE", "NEXT RUN", "LAST RUN", "SERVERS", "SCHEDULE"}, rows);
}

void print_runs(const std::vector<jobrepo::Run>& runs) {
  const auto now = jobrepo::Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    const auto took = between(r.create_time, r.end_time.value_or(now));
    rows.push_back(
        {r.private_id, r.job_name, std::string(jobrepo::to_string(r.status)), r.server_id,
         progress_text(r.completed_count, r.total_count), when(r.create_time, now),
         format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(took)) + (r.end_time ? "" : " so far"),
         r.payload ? cell(one_line(*r.payload), 30) : "-", r.message ? cell(*r.message, 50) : "-"});
  }
  print_table({"RUN", "JOB", "STATUS", "SERVER", "PROGRESS", "STARTED", "DURATION", "ARGUMENTS", "MESSAGE"}, rows);
}

// "next run:" of a job: when, or what makes it due when no time does, with
// the command that makes it due now.
std::string next_run_line(const jobrepo::Job& j, jobrepo::Timestamp now) {
  if (j.run_requested) return "as soon as its running run ends (run requested)";
  switch (jobrepo::due_state(j)) {
    case jobrepo::DueState::scheduled: break;
    case jobrepo::DueState::on_demand: return due_text(j) + " (jobctl job run-now " + j.name + ")";
    case jobrepo::DueState::gave_up: return due_text(j) + "; jobctl job run-now " + j.name + " retries it";
  }
  return when(j.next_scheduled_run, now);
}

// One field of a view: "label:" in 14 columns, then its value by the one
// visible rule.
void print_field(const std::string& label, std::string_view value) {
  std::string head = label + ":";
  head.resize(std::max<std::size_t>(head.size() + 1, 14), ' ');
  std::cout << head << visible(value) << "\n";
}

void print_job(const jobrepo::Job& j) {
  const auto now = jobrepo::Clock::now();
  print_field("name", j.name);
  print_field("plugin", j.plugin_id);
  print_field("description", j.description);
  print_field("schedule", j.schedule.empty() ? "-" : j.schedule);
  print_field("paused", j.paused ? "yes (jobctl job resume " + j.name + ")" : std::string("no"));
  print_field("next run", next_run_line(j, now));
  print_field("last run", last_text(j, now));
  if (j.last_success_time) print_field("last success", when(*j.last_success_time, now));
  if (j.requested_payload) print_field("arguments", one_line(*j.requested_payload) + " (for its next run)");
}

void print_job_view(const JobView& v) {
  print_job(v.job);
  const auto now = jobrepo::Clock::now();
  print_field("state", state_text(v));
  if (v.running) print_field("running run", v.running->private_id);
  print_field("servers", servers_text(v));
  for (const auto& s : v.servings) {
    std::cout << "  "
              << visible(s.server_id + (s.live ? "" : " (not live)") + ": definition " + s.fingerprint +
                         ", registered " + relative(s.registered_time, now) + ", seen " + relative(s.seen_time, now))
              << "\n";
  }
}

void print_run(const jobrepo::Run& r) {
  const auto now = jobrepo::Clock::now();
  print_field("run", r.private_id);
  print_field("job", r.job_name + " (plugin " + r.job_plugin_id + ")");
  print_field("status", std::string(jobrepo::to_string(r.status)) +
                            (r.cancel_requested && r.status == jobrepo::Status::running ? " (cancel requested)" : ""));
  print_field("message", r.message.value_or("-"));
  print_field("attempt", std::to_string(r.attempt));
  if (r.payload) print_field("arguments", one_line(*r.payload));
  print_field("server", r.server_id);
  print_field("progress", progress_text(r.completed_count, r.total_count));
  print_field("started", when(r.create_time, now));
  print_field("updated", when(r.update_time, now));
  print_field("ended", r.end_time ? when(*r.end_time, now) : "-");
  if (r.work_end_time) print_field("work ended", when(*r.work_end_time, now) + " (by its server's reckoning)");
}

// --- the commands --------------------------------------------------------------

struct Audit {
  std::size_t jobs = 0, runs = 0;
  std::vector<std::string> overlaps;  // "job: run A (server) overlaps run B (server)"
  // "job: run A (server) was recorded interrupted at T while its work went on until U (+1.2s)"
  std::vector<std::string> ended_while_working;
  bool clean() const { return overlaps.empty() && ended_while_working.empty(); }
};

Audit audit(jobrepo::Repository& repo) {
  Audit a;
  auto runs = repo.list_runs({.limit = -1});
  std::set<std::string> jobs;
  for (const auto& run : runs) jobs.insert(run.job_name);
  a.jobs = jobs.size();
  a.runs = runs.size();
  for (const auto& run : jobrepo::find_ended_while_working(runs)) {
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(*run.work_end_time - *run.end_time);
    a.ended_while_working.push_back(run.job_name + ": run " + run.private_id + " (" + run.server_id +
                                    ") was recorded " + std::string(jobrepo::to_string(run.status)) + " at " +
                                    iso_utc(*run.end_time) + " while its work went on until " +
                                    iso_utc(*run.work_end_time) + " (+" + std::to_string(late.count() / 1000) + "." +
                                    std::to_string(late.count() % 1000 / 100) + "s)");
  }
  for (const auto& o : jobrepo::find_overlaps(std::move(runs))) {
    a.overlaps.push_back(o.first.job_name + ": run " + o.first.private_id + " (" + o.first.server_id +
                         ") overlaps run " + o.second.private_id + " (" + o.second.server_id + ")");
  }
  return a;
}

// The store for a command. Only migrate (and serve, which migrates) may
// create a database: any other command on a missing SQLite file, a mistyped
// path most likely, fails instead of leaving an empty database there.
std::unique_ptr<jobrepo::Store> open_database(const Invocation& in, const std::string& url) {
  jobrepo::StoreOptions options;
  options.create_if_missing = in.command->words == "migrate";
  try {
    return jobrepo::open_store(url, options);
  } catch (const jobrepo::Error& e) {
    if (e.code() != jobrepo::ErrorCode::unavailable || e.native_code() != "ENOENT") throw;
    throw jobrepo::Error(e.code(), std::string(e.what()) + "; jobctl migrate creates it", e.native_code());
  }
}

// JSON with --json, else the human form.
void output_of(const Invocation& in, const json& j, const std::function<void()>& human) {
  if (in.json_output) {
    std::cout << json_text(j) << "\n";
  } else {
    human();
  }
}

std::string no_such(const Invocation& in, const std::string& what, const std::string& value) {
  return "no " + what + " " + jobrepo::quote_text(value) + " in plugin " + jobrepo::quote_text(in.plugin);
}

// jobctl cron next: the fire times of an expression, from the library's
// CronSchedule; no database is opened (nor its URL read).
int cron_next(const Invocation& in) {
  const auto value = [&](const std::string& option, const std::string& fallback) {
    const auto it = in.values.find(option);
    return it == in.values.end() ? fallback : it->second;
  };
  std::optional<jobrepo::CronSchedule> schedule;
  try {
    schedule.emplace(in.args[0], value("--time-zone", "UTC"));
  } catch (const jobrepo::Error& e) {
    throw UsageError(e.what());  // a bad expression or zone is a bad argument
  }
  auto from = jobrepo::Clock::now();
  if (in.values.count("--from")) {
    std::string problem;
    const auto parsed = parse_iso_time(in.values.at("--from"), &problem);
    if (!parsed) throw UsageError("--from: " + problem);
    from = *parsed;
  }
  const std::string count_text = value("--count", "5");
  const auto count = count_arg("--count", count_text);
  if (count < 1 || count > 1000) throw UsageError("--count: " + shown(count_text) + " is not between 1 and 1000");
  std::vector<jobrepo::Timestamp> fires;
  for (auto next = schedule->next_after(from); next && static_cast<std::int64_t>(fires.size()) < count;
       next = schedule->next_after(*next)) {
    fires.push_back(*next);
  }
  if (in.json_output) {
    json out = json::array();
    for (const auto t : fires) out.push_back(iso_utc_seconds(t));
    std::cout << json_text(out) << "\n";
  } else {
    for (const auto t : fires) std::cout << iso_utc_seconds(t) << "  " << schedule->format_local(t) << "\n";
    if (static_cast<std::int64_t>(fires.size()) < count) {
      std::cout << "(no later fire time: jobrepo's times end at " << iso_utc_seconds(jobrepo::Timestamp::max())
                << ")\n";
    }
  }
  return exit_ok;
}

// jobctl run cancel: asks the run's server to stop it, then waits (up to
// --wait, default 1m) until the run has ended.
int cancel_run(const Invocation& in, jobrepo::Repository& repo) {
  if (in.flags.count("--no-wait") && in.values.count("--wait")) throw UsageError("give --wait or --no-wait, not both");
  const auto wait = in.values.count("--wait") ? duration_arg("--wait", in.values.at("--wait"))
                                              : std::chrono::duration_cast<microseconds>(std::chrono::minutes(1));
  if (wait.count() < 0) throw UsageError("--wait: must not be negative");
  auto run = repo.cancel_run(in.args[0]);
  if (!in.flags.count("--no-wait")) {
    const auto until = std::chrono::steady_clock::now() + wait;
    while (run.status == jobrepo::Status::running && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (auto now = repo.lookup_run(run.private_id)) run = std::move(*now);
    }
  }
  const bool ended = run.status != jobrepo::Status::running;
  output_of(in, to_json(run), [&] {
    if (ended) {
      std::cout << visible("run " + run.private_id + " of " + run.job_name + " " +
                           std::string(jobrepo::to_string(run.status)) + (run.message ? ": " + *run.message : ""))
                << "\n";
    } else {
      std::cout << visible("asked server " + run.server_id + " to stop run " + run.private_id + " of " + run.job_name +
                           (in.flags.count("--no-wait") ? "" : "; it is still running after " + format_duration(wait)))
                << "\n(its server stops it at its next heartbeat; a server that is gone leaves it until the "
                   "interrupt threshold)\n";
    }
  });
  return ended || in.flags.count("--no-wait") ? exit_ok : exit_failed;
}

// jobctl prune: the plugin's final runs older than --older-than, or, with
// --job, that job's beyond the --keep newest and/or older than --older-than,
// in calls of at most max_pruned_runs runs each (short transactions) until
// a call finds fewer.
int prune(const Invocation& in, jobrepo::Repository& repo) {
  const auto older_than = in.values.count("--older-than")
                              ? std::optional(duration_arg("--older-than", in.values.at("--older-than")))
                              : std::nullopt;
  if (!in.values.count("--job")) {
    if (in.values.count("--keep")) throw UsageError("--keep needs --job NAME (the job whose runs to keep)");
    if (!older_than) throw UsageError("missing --older-than");
    const auto deleted = repo.prune_runs(*older_than);
    output_of(in, json{{"deleted", deleted}}, [&] { std::cout << "deleted " << deleted << " final runs\n"; });
    return exit_ok;
  }
  const std::string& job = in.values.at("--job");
  jobrepo::PruneJobRunsOptions options{.older_than = older_than};
  if (in.values.count("--keep")) {
    const std::string& text = in.values.at("--keep");
    options.keep_last = count_arg("--keep", text);
    if (*options.keep_last < 1) {
      throw UsageError("--keep: " + jobrepo::quote_text(text) + " is not a count of at least 1");
    }
  }
  if (!options.keep_last && !options.older_than) throw UsageError("--job needs --keep N, --older-than D, or both");
  std::int64_t deleted = 0;
  for (;;) {
    const auto batch = repo.prune_job_runs(job, options);
    deleted += batch;
    if (batch < jobrepo::max_pruned_runs) break;
  }
  output_of(in, json{{"job", job}, {"deleted", deleted}},
            [&] { std::cout << visible("deleted " + std::to_string(deleted) + " final runs of job " + job) << "\n"; });
  return exit_ok;
}

// jobctl serve --check: the config checked as serve would check it, and what
// it would serve; no database is opened.
int check_config(const Invocation& in, const std::string& path) {
  ServeConfig config = load_config(path);
  if (in.plugin != "pi_system") config.plugin_id = in.plugin;
  json jobs = json::array();
  // A fixed-hour cron job whose time a clock change of its zone skips or
  // repeats within a year: said, so that nobody is surprised on the day.
  const auto now = std::chrono::system_clock::now();
  const auto clock_note = [&](const jobrepo::RegisterJobOptions& options) -> std::optional<std::string> {
    if (!options.schedule) return std::nullopt;
    return options.schedule->clock_change_note(now, now + std::chrono::hours(24 * 366));
  };
  for (const auto& job : config.jobs) {
    const auto options = register_options(job);
    json item = json::parse(definition(job));
    item["schedule"] = options.schedule ? options.schedule->to_string() : options.schedule_text;
    item["fingerprint"] = jobrepo::definition_fingerprint(options.definition);
    item["warnings"] = json::array();
    if (const auto note = clock_note(options)) item["warnings"].push_back(*note);
    jobs.push_back(item);
  }
  const bool pruned = std::any_of(config.jobs.begin(), config.jobs.end(),
                                  [](const CommandJob& job) { return job.keep_runs || job.keep_for; });
  const json checked{{"config", path},
                     {"plugin_id", config.plugin_id},
                     {"prune_interval", config.prune_interval.count()},
                     {"jobs", jobs}};
  output_of(in, checked, [&] {
    std::cout << shown(path) << ": ok, " << counted(config.jobs.size(), "job", "jobs") << " in plugin "
              << visible(config.plugin_id)
              << (pruned ? "; history pruned every " + format_duration(config.prune_interval) : std::string()) << "\n";
    for (const auto& job : config.jobs) {
      const auto options = register_options(job);
      std::string command;
      for (const auto& arg : job.command) command += (command.empty() ? "" : " ") + jobrepo::quote_text(arg);
      std::cout << "  " << visible(job.name) << ": "
                << visible(options.schedule ? options.schedule->to_string() : options.schedule_text)
                << (job.timeout.count() > 0 ? ", timeout " + format_duration(job.timeout) : std::string())
                << (job.jitter.count() > 0 ? ", jitter " + format_duration(job.jitter) : std::string())
                << (job.keep_runs || job.keep_for ? ", " + retention_text(job) : std::string())
                << (job.on_failure.empty() ? "" : ", on_failure set") << "\n    " << command << "\n";
      if (const auto note = clock_note(options)) std::cout << "    warning: " << *note << "\n";
    }
  });
  return exit_ok;
}

int execute(const Invocation& in) {
  const std::string& name = in.command->words;
  if (name == "cron next") return cron_next(in);
  if (name == "serve" && in.flags.count("--check")) return check_config(in, required(in, "--config"));
  const std::string url = database_url(in);
  if (name == "serve") {
    const std::string path = required(in, "--config");
    const std::string server = in.values.count("--server-id") ? in.values.at("--server-id") : default_server_id();
    ServeFlags flags;
    if (in.values.count("--http")) {
      flags.http = in.values.at("--http");
      std::string problem;
      if (!parse_http_address(flags.http, &problem)) throw UsageError("--http: " + problem);
    }
    if (in.values.count("--http-host")) {
      std::vector<std::string> names;
      std::stringstream list(in.values.at("--http-host"));
      for (std::string name; std::getline(list, name, ',');) names.push_back(name);
      if (names.empty()) names.emplace_back();
      std::string problem;
      flags.http_hosts = parse_http_hosts(names, &problem);
      if (!flags.http_hosts) throw UsageError("--http-host: " + problem);
    }
    if (in.values.count("--log-format")) {
      const auto format = parse_log_format(in.values.at("--log-format"));
      if (!format)
        throw UsageError("--log-format: " + jobrepo::quote_text(in.values.at("--log-format")) + " is not text or json");
      flags.log_format = *format;
    }
    if (in.values.count("--log-level")) {
      const auto level = parse_log_level(in.values.at("--log-level"));
      if (!level) {
        throw UsageError("--log-level: " + jobrepo::quote_text(in.values.at("--log-level")) +
                         " is not debug, info, warning or error");
      }
      flags.log_level = *level;
    }
    return serve(
        url, server,
        [&] {
          ServeConfig config = load_config(path);
          if (in.plugin != "pi_system") config.plugin_id = in.plugin;
          return config;
        },
        flags);
  }
  // A run's arguments (job run-now --arg), by the library's own rule, before
  // the database is opened: a bad --arg is a usage error whatever the database.
  std::optional<std::string> run_arg;
  if (const auto arg = in.values.find("--arg"); arg != in.values.end()) {
    if (const auto problem = jobrepo::payload_problem(arg->second)) throw UsageError("--arg " + problem->message);
    run_arg = arg->second;
  }
  auto store = open_database(in, url);
  if (name == "migrate") {
    store->migrate();
    if (in.json_output)
      std::cout << json_text(json{{"migrated", true}}) << "\n";
    else
      std::cout << "migrated " << visible(jobrepo::redact_url(url)) << "\n";
    return exit_ok;
  }
  jobrepo::Repository repo(*store, {in.plugin, 0});
  const auto output = [&](const json& j, const std::function<void()>& human) { output_of(in, j, human); };
  if (name == "jobs") {
    const auto views = job_views(repo);
    output(to_json(views), [&] { print_jobs(views); });
  } else if (name == "job show") {
    const auto views = repo.lookup_job(in.args[0]) ? job_views(repo, in.args[0]) : std::vector<JobView>{};
    if (views.empty()) throw jobrepo::Error(jobrepo::ErrorCode::record_not_found, no_such(in, "job", in.args[0]));
    output(to_json(views.front()), [&] { print_job_view(views.front()); });
  } else if (name == "job create") {
    const auto next = in.values.count("--next-run-in") ? duration_arg("--next-run-in", in.values.at("--next-run-in"))
                                                       : microseconds(0);
    const auto job = repo.create_job(in.args[0], in.args[1], {.next_run_in = next});
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job next-run") {
    const auto job = repo.update_job_next_run(in.args[0], duration_arg("", in.args[1]));
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job run-now") {
    const auto job = repo.run_now(in.args[0], run_arg);
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job pause" || name == "job resume") {
    const auto job = name == "job pause" ? repo.pause_job(in.args[0]) : repo.resume_job(in.args[0]);
    output(to_json(job), [&] { print_job(job); });
  } else if (name == "job delete") {
    if (!in.flags.count("--force")) {
      // A job that live servers serve comes back when they restart or
      // reload, and is not run until then: almost never what is meant.
      std::string servers;
      for (const auto& s : repo.list_servings(in.args[0])) {
        if (s.live) servers += (servers.empty() ? "" : ", ") + jobrepo::quote_text(s.server_id);
      }
      if (!servers.empty()) {
        throw jobrepo::Error(jobrepo::ErrorCode::invalid_job_run_state,
                             "job " + jobrepo::quote_text(in.args[0]) + " is served by " + servers +
                                 ": remove it from their configs first (it would come back when they restart), "
                                 "or give --force");
      }
    }
    repo.delete_job(in.args[0]);
    output(json{{"deleted", in.args[0]}}, [&] { std::cout << "deleted job " << visible(in.args[0]) << "\n"; });
  } else if (name == "runs") {
    jobrepo::ListRunsOptions options;
    if (in.values.count("--job")) options.job_name = in.values.at("--job");
    if (in.values.count("--status")) {
      options.status = jobrepo::parse_status(in.values.at("--status"));
      if (!options.status) {
        throw UsageError("--status: " + jobrepo::quote_text(in.values.at("--status")) +
                         " is not one of running, completed, failed, interrupted");
      }
    }
    options.limit = limit_arg(in, 50);
    const auto runs = repo.list_runs(options);
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "run show") {
    const auto run = repo.lookup_run(in.args[0]);
    if (!run) throw jobrepo::Error(jobrepo::ErrorCode::record_not_found, no_such(in, "run", in.args[0]));
    output(to_json(*run), [&] { print_run(*run); });
  } else if (name == "claim") {
    const int limit = limit_arg(in, 1);
    const auto runs = repo.run_jobs(required(in, "--server"), {.limit = limit});
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "run progress") {
    const auto run =
        repo.update_progress(in.args[0], count_arg("COMPLETED", in.args[1]), count_arg("TOTAL", in.args[2]));
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "run complete") {
    const auto run = repo.complete_run(in.args[0], duration_arg("--next-run-in", required(in, "--next-run-in")));
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "run fail") {
    const auto run =
        repo.fail_run(in.args[0], {.message = in.values.count("--message") ? in.values.at("--message") : ""});
    output(to_json(run), [&] { print_run(run); });
  } else if (name == "run cancel") {
    return cancel_run(in, repo);
  } else if (name == "interrupt") {
    const auto threshold = duration_arg("--threshold", required(in, "--threshold"));
    const auto runs = repo.interrupt_runs(
        threshold, {.server_id = in.values.count("--server") ? in.values.at("--server") : "",
                    .message = "interrupted with jobctl interrupt --threshold " + in.values.at("--threshold")});
    output(to_json(runs), [&] { print_runs(runs); });
  } else if (name == "prune") {
    return prune(in, repo);
  } else if (name == "audit") {
    const auto a = audit(repo);
    output(json{{"jobs", a.jobs},
                {"runs", a.runs},
                {"overlaps", a.overlaps},
                {"ended_while_working", a.ended_while_working}},
           [&] {
             std::cout << "audited " << counted(a.runs, "run", "runs") << " of " << counted(a.jobs, "job", "jobs")
                       << ": " << counted(a.overlaps.size(), "overlapping pair", "overlapping pairs") << ", "
                       << counted(a.ended_while_working.size(), "run", "runs")
                       << " recorded ended while their work went on"
                       << (a.clean() ? " (each job ran on one server at a time)" : "") << "\n";
             for (const auto& o : a.overlaps) std::cout << "  " << visible(o) << "\n";
             for (const auto& e : a.ended_while_working) std::cout << "  " << visible(e) << "\n";
           });
    return a.clean() ? exit_ok : exit_failed;
  }
  return exit_ok;
}

// A library error's message without the library's operation that leads it
// ("update_job_next_run: no job ..." -> "no job ...", "Repository:
// plugin_id ..." -> "plugin_id ..."): jobctl names the command the user typed
// instead.
std::string without_operation(std::string_view message) {
  std::size_t word = 0;
  while (word < message.size() &&
         (std::isalpha(static_cast<unsigned char>(message[word])) != 0 || message[word] == '_'))
    ++word;
  if (word > 0 && message.substr(word, 2) == ": ") message.remove_prefix(word + 2);
  return std::string(message);
}

}  // namespace

int main(int argc, char* argv[]) {
  // jobctl serve starts itself again as the supervisor of each run.
  if (argc > 0 && std::string_view(argv[0]) == supervisor_name) return supervisor_main(argc, argv);
  bool json_output = false;
  for (int i = 1; i < argc; ++i) json_output = json_output || std::string(argv[i]) == "--json";
  Invocation in;
  // "jobctl job next-run: ", once the command is known: every message names
  // the command as the user typed it.
  const auto prefix = [&] { return in.command ? "jobctl " + in.command->words + ": " : std::string("jobctl: "); };
  // Every failed operation (exit 1): `jobctl COMMAND: MESSAGE (CODE)` on
  // stderr and, with --json, {"error": {"code", "message"}} on stdout.
  const auto failed = [&](const std::string& message, jobrepo::ErrorCode code) {
    const std::string code_name(jobrepo::to_string(code));
    if (json_output) std::cout << json_text(json{{"error", {{"code", code_name}, {"message", message}}}}) << "\n";
    std::cerr << prefix() << message << " (" << code_name << ")\n";
    return exit_failed;
  };
  try {
    parse(argc, argv, in);
    if (in.version && !in.help) {
      std::cout << "jobctl " << JOBCTL_VERSION << "\n";
      return exit_ok;
    }
    if (in.help) {
      if (!in.group.empty()) {
        std::cout << "jobctl " << in.group << ": its subcommands\n";
        for (const auto* c : subcommands(in.group)) {
          std::cout << "\n  jobctl " << c->words << (c->arguments.empty() ? "" : " " + c->arguments) << "\n      "
                    << c->summary << "\n";
        }
      } else if (!in.command) {
        std::cout << usage_text();
      } else {
        std::cout << command_usage(*in.command);
      }
      return exit_ok;
    }
    return execute(in);
  } catch (const UsageError& e) {
    std::cerr << prefix() << e.what() << "\n(jobctl --help lists the commands)\n";
    return exit_usage;
  } catch (const ConfigError& e) {
    std::cerr << "jobctl serve: " << e.what() << "\n";
    return exit_usage;
  } catch (const ServeError& e) {
    return failed(e.what(), e.code);
  } catch (const jobrepo::Error& e) {
    return failed(without_operation(e.what()), e.code());
  } catch (const std::exception& e) {
    // Anything else (bad_alloc, a library's own exception) is a bug to
    // report, never a crash.
    return failed(e.what(), jobrepo::ErrorCode::internal);
  }
}
