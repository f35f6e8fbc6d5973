#include "status.hpp"

#include "duration.hpp"
#include "http_server.hpp"
#include "log.hpp"
#include "serve.hpp"
#include "shown.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <initializer_list>
#include <set>

namespace jobctl {

namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::microseconds;

// Text for HTML: shown by the one visible rule (jobrepo::printable: control
// characters, line breaks and invalid UTF-8 escaped), then & < > " '
// escaped.
std::string html(std::string_view raw) {
  const std::string text = jobrepo::printable(raw);
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '"': out.append("&quot;"); break;
      case '\'': out.append("&#39;"); break;
      default: out.push_back(c);
    }
  }
  return out;
}

// completed of total in whole percent, 0 to 100, for any counts (the
// product completed * 100 would overflow past 9.2e16).
int percent_done(std::int64_t completed, std::int64_t total) {
  if (total <= 0 || completed <= 0) return 0;
  if (completed >= total) return 100;
  // long double holds every int64 exactly; below total stays below 100.
  return std::min(99, static_cast<int>(static_cast<long double>(completed) * 100 / static_cast<long double>(total)));
}

std::string seconds_text(Steady::duration d) { return format_duration(std::chrono::duration_cast<microseconds>(d)); }

// `t` as the page shows a time: in the zone of `calendar` (its job's
// calendar schedule) with the zone's abbreviation, then in UTC,
// "2026-12-08 03:00:00 CET (02:00:00 UTC)" (with the UTC date when it is
// another day); in UTC alone without a calendar, or when the zone's time is
// UTC's; then how long ago or ahead. Never the machine's zone.
std::string time_html(jobrepo::Timestamp t, jobrepo::Timestamp now, const jobrepo::CronSchedule* calendar = nullptr) {
  const std::string iso = iso_utc_seconds(t);  // 2026-12-08T02:00:00Z
  const bool whole = iso.size() == 20;
  const std::string utc_date = whole ? iso.substr(0, 10) : iso;
  const std::string utc_time = whole ? iso.substr(11, 8) : std::string();
  std::string text = whole ? utc_date + " " + utc_time + " UTC" : iso;
  if (calendar != nullptr && whole) {
    std::string local = calendar->format_local(t);  // 2026-12-08 03:00:00 CET (+01:00)
    if (const auto offset = local.rfind(" ("); offset != std::string::npos) local.resize(offset);
    if (local != text) {
      text = local + " (" + (local.compare(0, 10, utc_date) == 0 ? "" : utc_date + " ") + utc_time + " UTC)";
    }
  }
  return "<time datetime=\"" + iso_utc(t) + "\">" + html(text) + "</time><span class=dim>, " + html(relative(t, now)) +
         "</span>";
}

// Whether a run ended because an operator cancelled it (jobctl run cancel):
// interrupted, with the Scheduler's words for it.
bool cancelled_by_operator(jobrepo::Status status, const std::optional<std::string>& message) {
  return status == jobrepo::Status::interrupted && message &&
         message->starts_with(jobrepo::to_string(jobrepo::CancelReason::operator_request));
}

// A run's status as a coloured label: completed green, failed red; an
// operator's cancel grey and any other interruption (its server stopped,
// died or lost the database) amber, labelled, never red: nothing failed.
std::string status_html(jobrepo::Status status, const std::optional<std::string>& message) {
  std::string_view css = "st-running", label = "running";
  switch (status) {
    case jobrepo::Status::running: break;
    case jobrepo::Status::completed: css = "st-completed", label = "completed"; break;
    case jobrepo::Status::failed: css = "st-failed", label = "failed"; break;
    case jobrepo::Status::interrupted:
      if (cancelled_by_operator(status, message)) {
        css = "st-cancelled", label = "cancelled";
      } else {
        css = "st-interrupted", label = "interrupted";
      }
      break;
  }
  return "<span class=\"st " + std::string(css) + "\">" + std::string(label) + "</span>";
}

// A table cell; `label` names its column, which the phone layout (a card
// per row) shows before the cell's content.
std::string cell(std::string_view label, const std::string& content, std::string_view css = {}) {
  std::string out = "<td";
  if (!css.empty()) out += " class=\"" + std::string(css) + "\"";
  return out + " data-label=\"" + std::string(label) + "\">" + content + "</td>";
}

// A table's first row: its column names (hidden on a phone, where each cell
// carries its own).
std::string head_row(std::initializer_list<std::string_view> names) {
  std::string out = "<tr class=head>";
  for (const auto name : names) out += "<th>" + std::string(name) + "</th>";
  return out + "</tr>";
}

// The first few of `items` (HTML already), "a, b, c, d, e and 3 more".
std::string some_of(const std::vector<std::string>& items) {
  constexpr std::size_t shown_at_most = 5;
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < shown_at_most; ++i) out += (i == 0 ? "" : ", ") + items[i];
  if (items.size() > shown_at_most) out += " and " + std::to_string(items.size() - shown_at_most) + " more";
  return out;
}

// What a job's row and running run say of its runs: it changes when a run
// starts, reports progress, is asked to stop or ends.
std::string runs_key(const JobView& view) {
  std::string key = "runs";
  if (const auto& r = view.running) {
    key += " running " + r->private_id + " " + iso_utc(r->update_time) + (r->cancel_requested ? " cancelling" : "");
  }
  if (view.job.last_end_time) key += " ended " + iso_utc(*view.job.last_end_time);
  return key;
}

// The calendar schedule of Job::schedule's "cron EXPR in ZONE" (as
// CronSchedule::to_string() writes it), or none: another kind of schedule,
// or a zone this machine's tz database lacks.
std::optional<jobrepo::CronSchedule> calendar_of(const std::string& schedule) {
  constexpr std::string_view prefix = "cron ", in = " in ";
  const auto at = schedule.rfind(in);
  if (!schedule.starts_with(prefix) || at == std::string::npos || at < prefix.size()) return std::nullopt;
  try {
    return jobrepo::CronSchedule(std::string_view(schedule).substr(prefix.size(), at - prefix.size()),
                                 std::string_view(schedule).substr(at + in.size()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A name or value of a URL's query, percent-decoded ('+' is a space, as
// forms send it); empty when a '%' is not followed by two hexadecimal digits.
std::optional<std::string> form_decoded(std::string_view text) {
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] != '%') {
      out.push_back(text[i]);
    } else {
      if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) return std::nullopt;
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    }
  }
  return out;
}

const char* const page_style = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f7f9;overflow-wrap:anywhere}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}
.dim{color:#656d76}.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
.headline{background:#fff;border:1px solid #d0d7de;border-left:6px solid #1a7f37;border-radius:6px;padding:8px 12px;color:#1b1f24}
.headline.warn{border-left-color:#bf8700;color:#1b1f24}.headline.bad{border-left-color:#cf222e;color:#1b1f24}
#verdict{margin:2px 0 6px;font-size:15px;font-weight:600}
.facts{margin:0 0 6px;padding-left:18px}
.wrap{overflow-x:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;width:100%;min-width:560px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;background:#f6f8fa;white-space:nowrap}tr:last-child td{border-bottom:0}
.badge,.st{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;border:1px solid currentColor;white-space:nowrap}
.st{font-weight:600}
.st-completed{color:#1a7f37;background:#dafbe1}.st-failed{color:#cf222e;background:#ffebe9}
.st-interrupted{color:#9a6700;background:#fff8c5}.st-cancelled{color:#57606a;background:#eaeef2}
.st-running{color:#0969da;background:#ddf4ff}
.bar{width:120px;max-width:60%;height:10px;background:#eaeef2;border-radius:5px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar>span{display:block;height:100%;background:#2da44e}
code{font:12px ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:640px){
body{padding:8px}
.wrap{background:none;border:0;overflow:visible}
table{min-width:0}
table,tbody,tr,td{display:block;width:auto}
tr.head{display:none}
tr{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:0 0 8px;padding:4px 0}
td{border:0;padding:2px 10px}
td[data-label]::before{content:attr(data-label) ": ";font-weight:600;color:#656d76}
}
)";

}  // namespace

StatusBoard::StatusBoard(std::string server_id, Metrics& metrics, jobrepo::SchedulerOptions options)
    : server_id_(std::move(server_id)), metrics_(metrics), options_(std::move(options)) {
  waiting_ = "starting";
}

void StatusBoard::set_waiting(const std::string& reason) {
  const std::lock_guard lock(mutex_);
  waiting_ = reason;
}

void StatusBoard::set_scheduler(const jobrepo::Scheduler* scheduler, std::vector<std::string> registered) {
  const std::lock_guard lock(mutex_);
  scheduler_ = scheduler;
  registered_ = std::move(registered);
  if (scheduler) waiting_.clear();
}

void StatusBoard::refresh(jobrepo::Repository& repo) {
  ClusterSnapshot next;
  next.taken = Steady::now();
  next.taken_at = jobrepo::Clock::now();
  std::optional<std::string> error;
  try {
    next.jobs = job_views(repo);
    next.runs = repo.list_runs({.limit = runs_kept});
    next.failures = repo.list_runs({.status = jobrepo::Status::failed, .limit = 10});
    next.job_runs = read_job_runs(repo, next.jobs, next.taken);
    next.calendars = read_calendars(next.jobs);
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "refresh: unknown exception";
  }
  const std::lock_guard lock(mutex_);
  if (error) {
    // Keep what was read last; say why it is not newer.
    snapshot_.error = *error;
    return;
  }
  snapshot_ = std::move(next);
}

std::map<std::string, JobRuns> StatusBoard::read_job_runs(jobrepo::Repository& repo, const std::vector<JobView>& jobs,
                                                          Steady::time_point now) {
  // Runs that did not change but were read over a minute ago (pruned since,
  // maybe) are read again, at most this many a refresh: after the first
  // reading, those reads spread over the minute.
  const std::size_t stale_reads = std::max<std::size_t>(10, jobs.size() / 12);
  std::size_t stale_done = 0;
  std::map<std::string, RunsRead> kept;
  for (const auto& view : jobs) {
    const auto& name = view.job.name;
    std::string key = runs_key(view);
    if (const auto found = runs_read_.find(name); found != runs_read_.end() && found->second.key == key) {
      const bool stale = now - found->second.read >= std::chrono::minutes(1);
      if (!stale || stale_done >= stale_reads) {
        kept.emplace(name, found->second);
        continue;
      }
      ++stale_done;
    }
    std::vector<jobrepo::Run> runs;
    try {
      runs = repo.list_runs({.job_name = name, .limit = runs_per_job});
    } catch (const jobrepo::Error& e) {
      // A name that a writer stored around the library's rules cannot be
      // asked for: the job shows no runs rather than the page none.
      if (e.code() != jobrepo::ErrorCode::invalid_parameter) throw;
    }
    kept.emplace(name,
                 RunsRead{std::move(key), now, std::make_shared<const std::vector<jobrepo::Run>>(std::move(runs))});
  }
  runs_read_ = std::move(kept);  // the jobs gone are forgotten
  std::map<std::string, JobRuns> out;
  for (const auto& [name, read] : runs_read_) out.emplace(name, read.runs);
  return out;
}

std::map<std::string, jobrepo::CronSchedule> StatusBoard::read_calendars(const std::vector<JobView>& jobs) {
  std::map<std::string, std::optional<jobrepo::CronSchedule>> used;  // by schedule text
  std::map<std::string, jobrepo::CronSchedule> out;
  for (const auto& view : jobs) {
    const auto& text = view.job.schedule;
    if (!text.starts_with("cron ")) continue;
    auto found = used.find(text);
    if (found == used.end()) {
      const auto known = calendar_of_schedule_.find(text);
      found = used.emplace(text, known != calendar_of_schedule_.end() ? known->second : calendar_of(text)).first;
    }
    if (found->second) out.emplace(view.job.name, *found->second);
  }
  calendar_of_schedule_ = std::move(used);  // schedules no job has any more are forgotten
  return out;
}

void StatusBoard::set_periods(std::map<std::string, double> periods) {
  const std::lock_guard lock(mutex_);
  periods_ = std::move(periods);
}
std::string StatusBoard::metrics_text() const {
  std::vector<std::string> registered, running;
  std::vector<ClusterJob> cluster;
  std::map<std::string, double> periods;
  WriterState writer;
  {
    const std::lock_guard lock(mutex_);
    registered = registered_;
    periods = periods_;
    if (scheduler_) {
      for (const auto& run : scheduler_->executing()) running.push_back(run.job_name);
      const auto h = scheduler_->health();
      if (h.write_call) writer.call_seconds = std::chrono::duration<double>(Steady::now() - *h.write_call).count();
      writer.outcomes_waiting = h.outcomes_waiting;
      writer.stalls = h.write_stalls;
    }
    for (const auto& view : snapshot_.jobs) {
      const auto due = jobrepo::due_state(view.job);
      ClusterJob job{view.job.name, view.job.paused, view.job.last_success_time,
                     due == jobrepo::DueState::scheduled ? std::optional(view.job.next_scheduled_run) : std::nullopt,
                     due == jobrepo::DueState::gave_up};
      job.consecutive_failures = view.job.consecutive_failures;
      job.last_status = view.job.last_status;
      for (const auto& serving : view.servings) {
        if (serving.live) job.live_server_ids.push_back(serving.server_id);
      }
      cluster.push_back(std::move(job));
    }
  }
  return prometheus_text(metrics_.values(), registered, running, cluster, periods, writer);
}

std::pair<int, std::string> StatusBoard::health() const {
  const std::lock_guard lock(mutex_);
  if (!scheduler_) return {503, "not serving yet: " + (waiting_.empty() ? std::string("starting") : waiting_) + "\n"};
  const auto h = scheduler_->health();
  if (h.stopping) return {503, "stopping\n"};
  const auto now = Steady::now();
  const auto monitor = std::chrono::duration_cast<Steady::duration>(options_.monitor_interval);
  const auto store_limit = 3 * monitor + std::chrono::seconds(1);
  if (!h.store_answered) return {503, "the store has not answered yet\n"};
  if (now - *h.store_answered > store_limit) {
    return {503, "the store has not answered for " + seconds_text(now - *h.store_answered) + " (more than " +
                     seconds_text(store_limit) + ")\n"};
  }
  if (const auto problem = stuck_locked(h, now); !problem.empty()) return {503, problem + "\n"};
  return {200, "ok\n"};
}

std::string StatusBoard::stuck() const {
  const std::lock_guard lock(mutex_);
  if (!scheduler_) return {};  // waiting for the database, with its own back-off
  const auto h = scheduler_->health();
  if (h.stopping) return {};
  return stuck_locked(h, Steady::now());
}

// A loop that has not gone round for far longer than it should (a store
// call may hold the claim and monitor loops for its busy timeout), or the
// status refresher. Under mutex_.
std::string StatusBoard::stuck_locked(const jobrepo::SchedulerHealth& h, Steady::time_point now) const {
  const auto monitor = std::chrono::duration_cast<Steady::duration>(options_.monitor_interval);
  const Steady::duration claim_limit =
      std::chrono::duration_cast<Steady::duration>(options_.claim_interval) + 3 * monitor + std::chrono::seconds(10);
  const Steady::duration monitor_limit = 3 * monitor + std::chrono::seconds(10);
  const Steady::duration fence_limit = std::chrono::seconds(2);
  for (const auto& [name, last, limit] :
       {std::tuple{"claim", h.claim_loop, claim_limit}, std::tuple{"monitor", h.monitor_loop, monitor_limit},
        std::tuple{"fence", h.fence_loop, fence_limit}}) {
    if (now - last > limit)
      return std::string("the ") + name + " loop has not gone round for " + seconds_text(now - last);
  }
  if (snapshot_.taken != Steady::time_point{} && now - snapshot_.taken > std::chrono::seconds(60)) {
    return "the status refresher has not gone round for " + seconds_text(now - snapshot_.taken);
  }
  return {};
}

std::string StatusBoard::api_jobs() const {
  const std::lock_guard lock(mutex_);
  return json_text(to_json(snapshot_.jobs)) + "\n";
}

std::pair<int, std::string> StatusBoard::api_runs(std::string_view query) const {
  const auto refuse = [](const std::string& why) { return std::pair{400, "/api/runs: " + why + "\n"}; };
  std::optional<std::string> job, limit_text;
  for (std::string_view rest = query; !rest.empty();) {
    const auto amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    const auto name = form_decoded(part.substr(0, eq));
    const auto value = form_decoded(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    if (!name || !value) {
      return refuse(shown(part) + " is not percent-encoded text (a % takes two hexadecimal digits)");
    }
    auto* const slot = *name == "job" ? &job : *name == "limit" ? &limit_text : nullptr;
    if (slot == nullptr) return refuse("unknown parameter " + shown(*name) + " (it takes job and limit)");
    if (*slot) return refuse("the parameter " + *name + " is given twice");
    *slot = *value;
  }
  const int most = job ? runs_per_job : runs_kept;
  std::size_t limit = most;
  if (limit_text) {
    const auto& text = *limit_text;
    const bool digits = !text.empty() && text.size() <= 9 &&
                        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int asked = digits ? std::stoi(text) : 0;
    if (asked < 1 || asked > most) {
      return refuse("limit " + shown(text) + " is not a whole number from 1 to " + std::to_string(most) +
                    (job ? " (the runs of a job this server keeps)" : " (the runs this server keeps)"));
    }
    limit = static_cast<std::size_t>(asked);
  }
  const std::lock_guard lock(mutex_);
  const std::vector<jobrepo::Run>* runs = &snapshot_.runs;
  if (job) {
    const auto found = snapshot_.job_runs.find(*job);
    if (found == snapshot_.job_runs.end() || !found->second) return {200, "[]\n"};
    runs = found->second.get();
  }
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = 0; i < runs->size() && i < limit; ++i) out.push_back(to_json((*runs)[i]));
  return {200, json_text(out) + "\n"};
}

std::string StatusBoard::page_html() const {
  auto [status, health_text] = health();
  if (!health_text.empty() && health_text.back() == '\n') health_text.pop_back();
  const std::lock_guard lock(mutex_);
  const auto now = jobrepo::Clock::now();
  const auto& snap = snapshot_;
  const bool read = snap.taken != Steady::time_point{};
  const auto calendar = [&](const std::string& job) -> const jobrepo::CronSchedule* {
    const auto found = snap.calendars.find(job);
    return found == snap.calendars.end() ? nullptr : &found->second;
  };

  // The servers that the servings name, live or not, with what they serve:
  // a server that died stays until its servings go (a clean stop removes
  // them; docs/operations.md).
  struct Server {
    bool live = false;
    jobrepo::Timestamp seen{};
    std::vector<std::string> jobs;
  };
  std::map<std::string, Server> servers;
  for (const auto& view : snap.jobs) {
    for (const auto& s : view.servings) {
      auto& server = servers[s.server_id];
      server.live = server.live || s.live;
      server.seen = std::max(server.seen, s.seen_time);
      server.jobs.push_back(view.job.name);
    }
  }

  // The headline: what is wrong in the cluster, the store, this server.
  std::vector<std::string> failing, unserved, drifted, not_live;
  std::size_t running_count = 0, paused_count = 0;
  for (const auto& view : snap.jobs) {
    const auto& j = view.job;
    if (j.consecutive_failures > 0 || j.last_status == jobrepo::Status::failed) {
      std::string item = html(j.name);
      if (jobrepo::due_state(j) == jobrepo::DueState::gave_up) {
        item += " (gave up)";
      } else if (j.consecutive_failures > 1) {
        item += " (" + std::to_string(j.consecutive_failures) + " in a row)";
      }
      failing.push_back(std::move(item));
    }
    if (view.unserved()) unserved.push_back(html(j.name));
    if (view.drifted()) drifted.push_back(html(j.name));
    if (view.running) ++running_count;
    if (j.paused) ++paused_count;
  }
  std::size_t live_count = 0;
  for (const auto& [id, server] : servers) {
    if (server.live) {
      ++live_count;
    } else {
      not_live.push_back(html(id));
    }
  }
  const auto age = Steady::now() - snap.taken;
  const bool store_stale = read && age > 3 * refresh_interval;
  std::string store_fact;
  if (!snap.error.empty()) {
    store_fact = "<span class=bad>cannot be read: " + html(snap.error) + "</span>" +
                 (read ? "; what this page shows was read " + html(relative(snap.taken_at, now)) : std::string());
  } else if (!read) {
    store_fact = "<span class=warn>not read yet</span>";
  } else if (store_stale) {
    store_fact = "<span class=bad>last read " + html(relative(snap.taken_at, now)) + "</span> (it is read every " +
                 std::to_string(refresh_interval.count()) + " s)";
  } else {
    store_fact = "<span class=ok>ok</span>, read " + html(relative(snap.taken_at, now));
  }
  const bool store_ok = read && snap.error.empty() && !store_stale;
  const std::string self = "this server (" + html(server_id_) +
                           "): " + (status == 200 ? std::string("healthy") : "unhealthy: " + html(health_text));
  std::vector<std::string> problems;
  if (!failing.empty()) problems.push_back(counted(failing.size(), "job", "jobs") + " failing: " + some_of(failing));
  if (!unserved.empty()) {
    problems.push_back(counted(unserved.size(), "job", "jobs") + " with no live server: " + some_of(unserved));
  }
  if (!drifted.empty()) {
    problems.push_back(counted(drifted.size(), "job", "jobs") + " defined differently: " + some_of(drifted));
  }
  if (!not_live.empty()) {
    problems.push_back(counted(not_live.size(), "server", "servers") + " not live: " + some_of(not_live));
  }
  if (!read) {
    problems.push_back("no reading of the store yet" + (snap.error.empty() ? std::string() : ": " + html(snap.error)));
  } else if (!snap.error.empty()) {
    problems.push_back("store cannot be read: " + html(snap.error));
  } else {
    problems.push_back(store_stale ? "store last read " + html(relative(snap.taken_at, now)) : std::string("store ok"));
  }
  if (status != 200) problems.push_back(self);
  std::string verdict = failing.empty() && unserved.empty() && drifted.empty() && not_live.empty() && read
                            ? "all " + counted(snap.jobs.size(), "job", "jobs") + " ok; "
                            : std::string();
  for (std::size_t i = 0; i < problems.size(); ++i) verdict += (i == 0 ? "" : "; ") + problems[i];
  const bool bad = !failing.empty() || !unserved.empty() || (read && !store_ok) || !snap.error.empty() || status != 200;
  const bool warn = !drifted.empty() || !not_live.empty() || !read;
  const char* const tone = bad ? "bad" : warn ? "warn" : "ok";

  std::string out;
  out.reserve(32768);
  out +=
      "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
      "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
      "<meta http-equiv=refresh content=5><title>jobrepo: " +
      html(server_id_) + "</title><style>" + page_style + "</style></head><body>";
  out += std::string("<header id=headline class=\"headline ") + tone +
         "\"><h1>jobrepo cluster</h1><p id=verdict class=" + tone + ">" + verdict + "</p><ul class=facts>";
  out += "<li id=fact-jobs>" + counted(snap.jobs.size(), "job", "jobs") + ": " + std::to_string(failing.size()) +
         " failing, " + std::to_string(unserved.size()) + " with no live server, " + std::to_string(drifted.size()) +
         " defined differently, " + std::to_string(running_count) + " running, " + std::to_string(paused_count) +
         " paused</li>";
  out += "<li id=fact-servers>servers: " + std::to_string(live_count) + " of " + std::to_string(servers.size()) +
         " live" +
         (not_live.empty() ? std::string() : "; <span class=warn>not live: " + some_of(not_live) + "</span>") + "</li>";
  out += "<li id=fact-store>store: " + store_fact + "</li>";
  out += std::string("<li id=fact-self class=") + (status == 200 ? "ok" : "bad") + ">" + self + "</li></ul>";
  out += "<div class=dim>seen from server <b>" + html(server_id_) + "</b> at " + html(iso_utc_seconds(now)) +
         "; refreshes every " + std::to_string(refresh_interval.count()) + " s</div></header>";
  if (!read) {
    out += "<p class=dim>no reading of the store yet</p></body></html>";
    return out;
  }

  out += "<h2>Jobs (" + std::to_string(snap.jobs.size()) + ")</h2><div class=wrap><table id=jobs>" +
         head_row({"Job", "State", "Schedule", "Next run", "Last run", "Servers"});
  for (const auto& view : snap.jobs) {
    const auto& j = view.job;
    const auto* zone = calendar(j.name);
    std::string state;
    if (j.paused) state += "<span class=\"badge warn\">paused</span> ";
    if (view.running) {
      state += "<span class=\"st st-running\">running</span> ";
      if (view.running->cancel_requested) state += "<span class=warn>cancelling</span> ";
    }
    if (state.empty()) state = "<span class=dim>idle</span>";
    std::string last = "<span class=dim>-</span>";
    if (j.last_status) {
      last = status_html(*j.last_status, j.last_message);
      if (j.last_end_time) last += " " + time_html(*j.last_end_time, now, zone);
      if (j.last_message) last += "<br><code class=message>" + html(*j.last_message) + "</code>";
      if (j.consecutive_failures > 1) {
        last += "<br><span class=bad>" + std::to_string(j.consecutive_failures) + " failures in a row</span>";
      }
    }
    // Next run: what makes it due when no time does (as jobctl jobs says
    // it), "paused", after its running run, or when.
    std::string next;
    switch (jobrepo::due_state(j)) {
      case jobrepo::DueState::on_demand: next = html(due_text(j)); break;
      case jobrepo::DueState::gave_up:
        next = "<span class=bad>" + html(due_text(j)) + "</span><br><span class=dim>jobctl job run-now " +
               html(j.name) + " retries it</span>";
        break;
      case jobrepo::DueState::scheduled:
        next = j.paused ? "<span class=dim>paused</span>"
                        : (j.run_requested ? "after its running run" : time_html(j.next_scheduled_run, now, zone));
        break;
    }
    // Every server that serves it: the live ones, then those not live.
    std::string served;
    for (const auto* s : view.live()) served += (served.empty() ? "" : ", ") + html(s->server_id);
    if (view.unserved()) served = "<span class=bad>no live server</span>";
    for (const auto& s : view.servings) {
      if (!s.live) served += ", <span class=dim>" + html(s.server_id) + " (not live)</span>";
    }
    if (view.drifted()) served += " <span class=warn>definitions differ</span>";
    out += "<tr data-job=\"" + html(j.name) + "\">" +
           cell("Job", "<b>" + html(j.name) + "</b><br><span class=dim>" + html(j.description) + "</span>") +
           cell("State", state) + cell("Schedule", j.schedule.empty() ? "<span class=dim>-</span>" : html(j.schedule)) +
           cell("Next run", next, "next") + cell("Last run", last, "last") + cell("Servers", served, "servers") +
           "</tr>";
  }
  out += "</table></div>";

  out += "<h2>Servers (" + std::to_string(live_count) + " of " + std::to_string(servers.size()) + " live)</h2>";
  if (servers.empty()) {
    out += "<p class=dim>no server serves a job</p>";
  } else {
    out += "<div class=wrap><table id=servers>" + head_row({"Server", "State", "Last seen", "Jobs"});
    for (const auto& [id, server] : servers) {
      std::string jobs;
      for (const auto& name : server.jobs) jobs += (jobs.empty() ? "" : ", ") + html(name);
      out += "<tr data-server=\"" + html(id) + "\" class=" + (server.live ? "live" : "notlive") + ">" +
             cell("Server",
                  "<b>" + html(id) + "</b>" + (id == server_id_ ? " <span class=dim>(this server)</span>" : "")) +
             cell("State",
                  server.live ? "<span class=\"badge ok\">live</span>" : "<span class=\"badge bad\">not live</span>",
                  "state") +
             cell("Last seen", time_html(server.seen, now), "seen") + cell("Jobs", jobs, "jobs") + "</tr>";
    }
    out += "</table></div>";
  }

  if (!drifted.empty()) {
    out += "<h2>Definitions differ (" + std::to_string(drifted.size()) +
           ")</h2><p class=dim>Live servers define these jobs differently, so their runs alternate between the "
           "definitions. The store keeps a fingerprint of each server's definition, not the definition: "
           "<code>jobctl serve --check --json --config FILE</code> on each server shows the definition behind "
           "its fingerprint.</p><div class=wrap><table id=drift>" +
           head_row({"Job", "Definition", "Live servers"});
    for (const auto& view : snap.jobs) {
      if (!view.drifted()) continue;
      std::map<std::string, std::string> by_fingerprint;  // fingerprint -> its live servers
      for (const auto* s : view.live()) {
        auto& ids = by_fingerprint[s->fingerprint];
        ids += (ids.empty() ? "" : ", ") + html(s->server_id) +
               (s->server_id == server_id_ ? " <span class=dim>(this server)</span>" : "");
      }
      for (const auto& [fingerprint, ids] : by_fingerprint) {
        out += "<tr data-drift=\"" + html(view.job.name) + "\">" + cell("Job", "<b>" + html(view.job.name) + "</b>") +
               cell("Definition", "fingerprint <code>" + html(fingerprint) + "</code>", "fingerprint") +
               cell("Live servers", ids, "servers") + "</tr>";
      }
    }
    out += "</table></div>";
  }

  std::vector<const JobView*> running;
  for (const auto& view : snap.jobs) {
    if (view.running) running.push_back(&view);
  }
  out += "<h2>Running (" + std::to_string(running.size()) + ")</h2>";
  if (running.empty()) {
    out += "<p class=dim>nothing is running</p>";
  } else {
    out += "<div class=wrap><table id=running>" + head_row({"Job", "Server", "Progress", "Age", "Run"});
    for (const auto* view : running) {
      const auto& r = *view->running;
      std::string progress = "<span class=dim>-</span>";
      if (r.total_count > 0) {
        const auto percent = percent_done(r.completed_count, r.total_count);
        progress = "<span class=bar><span style=\"width:" + std::to_string(percent) + "%\"></span></span> " +
                   std::to_string(r.completed_count) + "/" + std::to_string(r.total_count);
      }
      out += "<tr data-run=\"" + html(r.private_id) + "\">" +
             cell("Job", html(r.job_name) + (r.cancel_requested ? " <span class=warn>cancelling</span>" : ""), "job") +
             cell("Server", html(r.server_id)) + cell("Progress", progress, "progress") +
             cell("Age", html(format_duration(between(r.create_time, now)))) +
             cell("Run", "<code>" + html(r.private_id) + "</code>") + "</tr>";
    }
    out += "</table></div>";
  }

  // The newest runs that ended, each in its status's colour.
  constexpr std::size_t recent_shown = 15;
  std::vector<const jobrepo::Run*> ended;
  for (const auto& r : snap.runs) {
    if (r.end_time && ended.size() < recent_shown) ended.push_back(&r);
  }
  out += "<h2>Recent runs</h2>";
  if (ended.empty()) {
    out += "<p class=dim>none ended yet</p>";
  } else {
    out += "<div class=wrap><table id=runs>" + head_row({"Job", "Status", "Ended", "Server", "Message"});
    for (const auto* r : ended) {
      out += "<tr data-run=\"" + html(r->private_id) + "\">" + cell("Job", html(r->job_name), "job") +
             cell("Status", status_html(r->status, r->message), "status") +
             cell("Ended", time_html(*r->end_time, now, calendar(r->job_name))) + cell("Server", html(r->server_id)) +
             cell("Message", "<code class=message>" + html(r->message.value_or("")) + "</code>") + "</tr>";
    }
    out += "</table></div>";
  }

  out += "<h2>Recent failures</h2>";
  if (snap.failures.empty()) {
    out += "<p class=dim>none</p>";
  } else {
    out += "<div class=wrap><table id=failures>" + head_row({"Job", "Ended", "Message", "Server"});
    for (const auto& r : snap.failures) {
      out += "<tr>" + cell("Job", html(r.job_name), "job") +
             cell("Ended", r.end_time ? time_html(*r.end_time, now, calendar(r.job_name)) : "-") +
             cell("Message", "<code class=message>" + html(r.message.value_or("")) + "</code>") +
             cell("Server", html(r.server_id)) + "</tr>";
    }
    out += "</table></div>";
  }
  out += "<p class=dim>read from the store " + html(relative(snap.taken_at, now)) +
         "; JSON: <a href=\"api/jobs\">/api/jobs</a>, <a href=\"api/runs\">/api/runs</a> (<code>?job=NAME&amp;limit=N"
         "</code>); <a href=\"metrics\">/metrics</a>, <a href=\"healthz\">/healthz</a></p></body></html>";
  return out;
}

namespace {

// The names a request may give as its Host besides the address: `names`,
// and this machine's host name (a scrape target of "web-1:9100" names it),
// also without its domain.
std::vector<std::string> with_host_name(std::vector<std::string> names) {
  std::array<char, 256> buffer{};
  if (gethostname(buffer.data(), buffer.size() - 1) == 0) {
    const std::string host = http::host_of(buffer.data());
    if (!host.empty()) {
      names.push_back(host);
      if (const auto dot = host.find('.'); dot != std::string::npos && dot > 0) names.push_back(host.substr(0, dot));
    }
  }
  return names;
}

}  // namespace

struct HttpServer::Impl {
  Impl(StatusBoard& b, HttpAddress a, std::vector<std::string> names)
      : board(b),
        address(std::move(a)),
        server(
            address.host, address.port, with_host_name(std::move(names)), http::Limits{},
            [this](const http::Request& request) { return answer(request); },
            [](bool error, const std::string& line) { log(error ? LogLevel::error : LogLevel::warning, line); }) {}

  http::Response answer(const http::Request& request) const {
    const auto& path = request.path;
    if (path == "/metrics") return {200, "text/plain; version=0.0.4; charset=utf-8", board.metrics_text()};
    if (path == "/healthz") {
      auto [status, text] = board.health();
      return {status, "text/plain; charset=utf-8", std::move(text)};
    }
    if (path == "/") {
      return {200,
              "text/html; charset=utf-8",
              board.page_html(),
              {{"Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'"},
               {"X-Frame-Options", "DENY"}}};
    }
    if (path == "/api/jobs") return {200, "application/json", board.api_jobs()};
    if (path == "/api/runs") {
      auto [status, body] = board.api_runs(request.query);
      return {status, status == 200 ? "application/json" : "text/plain; charset=utf-8", std::move(body)};
    }
    return {404, "text/plain; charset=utf-8", "no such page; see / for the status page\n"};
  }

  StatusBoard& board;
  HttpAddress address;
  http::Server server;
};

HttpServer::HttpServer(StatusBoard& board, HttpAddress address, std::vector<std::string> names)
    : impl_(std::make_unique<Impl>(board, std::move(address), std::move(names))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  const auto& a = impl_->address;
  const std::string shown_address =
      (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
  try {
    impl_->server.bind();
  } catch (const std::exception& e) {
    throw ServeError("--http " + shown(shown_address) + ": " + e.what());
  }
  impl_->server.start();
  log(LogLevel::info, "HTTP on http://" + shown_address + "/ (/metrics, /healthz, /api/jobs, /api/runs)");
}

void HttpServer::stop() {
  if (impl_) impl_->server.stop();
}

}  // namespace jobctl
