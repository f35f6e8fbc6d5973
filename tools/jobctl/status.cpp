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

// UTC, to the second, then how long ago or ahead.
std::string when_html(jobrepo::Timestamp t, jobrepo::Timestamp now) {
  return "<time datetime=\"" + iso_utc(t) + "\">" + html(iso_utc_seconds(t)) + "</time> <span class=dim>(" +
         html(relative(t, now)) + ")</span>";
}

const char* const page_style = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f7f9}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}
.dim{color:#656d76}.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
.wrap{overflow-x:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;width:100%;min-width:560px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;background:#f6f8fa}tr:last-child td{border-bottom:0}
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;border:1px solid currentColor}
.bar{width:120px;height:10px;background:#eaeef2;border-radius:5px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar>span{display:block;height:100%;background:#2da44e}
code{font:12px ui-monospace,monospace}
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
  try {
    next.jobs = job_views(repo);
    next.runs = repo.list_runs({.limit = 50});
    next.failures = repo.list_runs({.status = jobrepo::Status::failed, .limit = 10});
  } catch (const std::exception& e) {
    const std::lock_guard lock(mutex_);
    // Keep what was read last; say why it is not newer.
    snapshot_.error = e.what();
    return;
  }
  const std::lock_guard lock(mutex_);
  snapshot_ = std::move(next);
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

std::string StatusBoard::api_runs() const {
  const std::lock_guard lock(mutex_);
  return json_text(to_json(snapshot_.runs)) + "\n";
}

std::string StatusBoard::page_html() const {
  const auto [status, health_text] = health();
  const std::lock_guard lock(mutex_);
  const auto now = jobrepo::Clock::now();
  const auto& snap = snapshot_;
  std::string out;
  out.reserve(16384);
  out +=
      "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
      "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
      "<meta http-equiv=refresh content=5><title>jobrepo: " +
      html(server_id_) + "</title><style>" + page_style + "</style></head><body>";
  out += "<h1>jobrepo cluster</h1><div class=dim>seen from server <b>" + html(server_id_) + "</b>, " +
         html(iso_utc_seconds(now)) + "; refreshes every 5 s</div>";
  out += std::string("<div>") + (status == 200 ? "<span class=ok>healthy</span>" : "<span class=bad>unhealthy: ") +
         (status == 200 ? "" : html(health_text) + "</span>") + "</div>";
  if (!snap.error.empty()) {
    out += "<div class=bad>the store could not be read: " + html(snap.error) + "</div>";
  }
  if (snap.taken == Steady::time_point{}) {
    out += "<p class=dim>no reading of the store yet</p></body></html>";
    return out;
  }

  out += "<h2>Jobs (" + std::to_string(snap.jobs.size()) +
         ")</h2><div class=wrap><table id=jobs><tr><th>Job</th><th>State</th><th>Schedule</th><th>Next run</th>"
         "<th>Last run</th><th>Servers</th></tr>";
  for (const auto& view : snap.jobs) {
    const auto& j = view.job;
    std::string state;
    if (j.paused) state += "<span class=\"badge warn\">paused</span> ";
    if (view.running) state += "<span class=\"badge ok\">running</span> ";
    if (state.empty()) state = "<span class=dim>idle</span>";
    std::string last = "<span class=dim>-</span>";
    if (j.last_status) {
      const bool good = *j.last_status == jobrepo::Status::completed;
      last = std::string("<span class=") + (good ? "ok" : "bad") + ">" +
             html(std::string(jobrepo::to_string(*j.last_status))) + "</span>";
      if (j.last_end_time) last += " <span class=dim>" + html(relative(*j.last_end_time, now)) + "</span>";
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
                        : (j.run_requested ? "after its running run" : when_html(j.next_scheduled_run, now));
        break;
    }
    std::string servers;
    for (const auto* s : view.live()) servers += (servers.empty() ? "" : ", ") + html(s->server_id);
    if (view.unserved()) servers = "<span class=bad>no live server</span>";
    if (view.drifted()) servers += " <span class=warn>definitions differ</span>";
    out += "<tr data-job=\"" + html(j.name) + "\"><td><b>" + html(j.name) + "</b><br><span class=dim>" +
           html(j.description) + "</span></td><td>" + state + "</td><td>" +
           (j.schedule.empty() ? "<span class=dim>-</span>" : html(j.schedule)) + "</td><td class=next>" + next +
           "</td><td>" + last + "</td><td>" + servers + "</td></tr>";
  }
  out += "</table></div>";

  std::vector<const JobView*> running;
  for (const auto& view : snap.jobs) {
    if (view.running) running.push_back(&view);
  }
  out += "<h2>Running (" + std::to_string(running.size()) + ")</h2>";
  if (running.empty()) {
    out += "<p class=dim>nothing is running</p>";
  } else {
    out +=
        "<div class=wrap><table id=running><tr><th>Job</th><th>Server</th><th>Progress</th><th>Age</th>"
        "<th>Run</th></tr>";
    for (const auto* view : running) {
      const auto& r = *view->running;
      std::string progress = "<span class=dim>-</span>";
      if (r.total_count > 0) {
        const auto percent = percent_done(r.completed_count, r.total_count);
        progress = "<span class=bar><span style=\"width:" + std::to_string(percent) + "%\"></span></span> " +
                   std::to_string(r.completed_count) + "/" + std::to_string(r.total_count);
      }
      out += "<tr data-run=\"" + html(r.private_id) + "\"><td>" + html(r.job_name) +
             (r.cancel_requested ? " <span class=warn>cancelling</span>" : "") + "</td><td>" + html(r.server_id) +
             "</td><td class=progress>" + progress + "</td><td>" + html(format_duration(between(r.create_time, now))) +
             "</td><td><code>" + html(r.private_id) + "</code></td></tr>";
    }
    out += "</table></div>";
  }

  out += "<h2>Recent failures</h2>";
  if (snap.failures.empty()) {
    out += "<p class=dim>none</p>";
  } else {
    out += "<div class=wrap><table id=failures><tr><th>Job</th><th>Ended</th><th>Message</th><th>Server</th></tr>";
    for (const auto& r : snap.failures) {
      out += "<tr><td>" + html(r.job_name) + "</td><td>" + (r.end_time ? when_html(*r.end_time, now) : "-") +
             "</td><td><code class=message>" + html(r.message.value_or("")) + "</code></td><td>" + html(r.server_id) +
             "</td></tr>";
    }
    out += "</table></div>";
  }
  out += "<p class=dim>read from the store " + html(relative(snap.taken_at, now)) +
         "; JSON: <a href=\"api/jobs\">/api/jobs</a>, <a href=\"api/runs\">/api/runs</a>; <a href=\"metrics\">"
         "/metrics</a>, <a href=\"healthz\">/healthz</a></p></body></html>";
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
    if (path == "/api/runs") return {200, "application/json", board.api_runs()};
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
  log(LogLevel::info, "HTTP on http://" + shown_address + "/ (/metrics, /healthz, /api/jobs)");
}

void HttpServer::stop() {
  if (impl_) impl_->server.stop();
}

}  // namespace jobctl
