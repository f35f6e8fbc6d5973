#include "metrics.hpp"

#include <cmath>
#include <cstdio>
#include <set>

namespace jobctl {

using Kind = jobrepo::SchedulerEvent::Kind;

void Metrics::on_event(const jobrepo::SchedulerEvent& event) {
  const std::lock_guard lock(mutex_);
  switch (event.kind) {
    case Kind::claimed: ++values_.claims; break;
    case Kind::completed:
    case Kind::failed:
    case Kind::interrupted: {
      const std::string status = event.kind == Kind::completed ? "completed"
                                 : event.kind == Kind::failed  ? "failed"
                                                               : "interrupted";
      ++values_.runs[{event.job_name, status}];
      auto& histogram = values_.durations[event.job_name];
      const double seconds = std::chrono::duration<double>(event.duration).count();
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (seconds <= buckets[i]) {
          ++histogram.counts[i];
          break;
        }
      }
      ++histogram.count;
      histogram.sum += seconds;
      break;
    }
    case Kind::interrupted_peer: ++values_.runs[{event.job_name, "interrupted"}]; break;
    default: break;
  }
}

void Metrics::store_call_succeeded() {
  const std::lock_guard lock(mutex_);
  values_.up = true;
}

void Metrics::store_call_failed(jobrepo::ErrorCode code) {
  const std::lock_guard lock(mutex_);
  ++values_.store_errors[std::string(jobrepo::to_string(code))];
  // Answers that say something about the request, not the store, keep it up.
  if (code == jobrepo::ErrorCode::unavailable || code == jobrepo::ErrorCode::busy ||
      code == jobrepo::ErrorCode::internal || code == jobrepo::ErrorCode::schema_mismatch) {
    values_.up = false;
  }
}

Metrics::Values Metrics::values() const {
  const std::lock_guard lock(mutex_);
  return values_;
}

namespace {

// A label value as the text format writes it: \, " and newline escaped.
std::string label(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// A sample value, exactly (Unix times need 16 digits).
std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// A bucket bound as people write it: 0.1, 2.5, 3600.
std::string bound(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

double seconds_since_epoch(jobrepo::Timestamp t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

}  // namespace

std::string prometheus_text(const Metrics::Values& values, const std::vector<std::string>& registered,
                            const std::vector<std::string>& running_here, const std::vector<ClusterJob>& cluster,
                            const std::map<std::string, double>& periods, const WriterState& writer) {
  std::string out;
  const auto header = [&](const char* name, const char* type, const char* help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };
  header("jobrepo_up", "gauge", "1 when the last call of this server to the store succeeded.");
  out.append("jobrepo_up ").append(values.up ? "1" : "0").append("\n");

  header("jobrepo_runs_total", "counter",
         "Runs this server ended, by job and status; every status of every job it serves, from 0.");
  // Present from 0 for the jobs served, so that increase() sees the first
  // failure; kept for jobs no longer served (a counter does not vanish).
  auto runs = values.runs;
  for (const auto& job : registered) {
    for (const char* status : {"completed", "failed", "interrupted"}) runs.try_emplace({job, status}, 0);
  }
  for (const auto& [key, count] : runs) {
    out.append("jobrepo_runs_total{job_name=\"" + label(key.first) + "\",status=\"" + key.second + "\"} ")
        .append(std::to_string(count))
        .append("\n");
  }

  header("jobrepo_run_duration_seconds", "histogram", "How long the runs this server ended ran, by job.");
  for (const auto& [job, histogram] : values.durations) {
    long long cumulative = 0;
    for (std::size_t i = 0; i < Metrics::buckets.size(); ++i) {
      cumulative += histogram.counts[i];
      out.append("jobrepo_run_duration_seconds_bucket{job_name=\"" + label(job) + "\",le=\"" +
                 bound(Metrics::buckets[i]) + "\"} " + std::to_string(cumulative) + "\n");
    }
    out.append("jobrepo_run_duration_seconds_bucket{job_name=\"" + label(job) + "\",le=\"+Inf\"} " +
               std::to_string(histogram.count) + "\n");
    out.append("jobrepo_run_duration_seconds_sum{job_name=\"" + label(job) + "\"} " + number(histogram.sum) + "\n");
    out.append("jobrepo_run_duration_seconds_count{job_name=\"" + label(job) + "\"} " +
               std::to_string(histogram.count) + "\n");
  }

  header("jobrepo_job_running", "gauge", "1 while a run of the job executes on this server.");
  const std::set<std::string> running(running_here.begin(), running_here.end());
  for (const auto& job : registered) {
    out.append("jobrepo_job_running{job_name=\"" + label(job) + "\"} " + (running.count(job) ? "1" : "0") + "\n");
  }

  header("jobrepo_job_period_seconds", "gauge",
         "The time between two scheduled runs of the job as this server's config defines it: its every, or the "
         "gap between its next two cron fire times; none for jobs run on demand.");
  for (const auto& [job, seconds] : periods) {
    out.append("jobrepo_job_period_seconds{job_name=\"" + label(job) + "\"} " + number(seconds) + "\n");
  }

  header("jobrepo_job_last_success_timestamp_seconds", "gauge",
         "When a run of the job last completed, on any server (Unix time; read from the store).");
  for (const auto& job : cluster) {
    if (!job.last_success) continue;
    out.append("jobrepo_job_last_success_timestamp_seconds{job_name=\"" + label(job.name) + "\"} " +
               number(seconds_since_epoch(*job.last_success)) + "\n");
  }
  header("jobrepo_job_next_run_timestamp_seconds", "gauge",
         "When the job is due next (Unix time; from the store); none when no time makes it due.");
  for (const auto& job : cluster) {
    if (!job.next_run) continue;
    out.append("jobrepo_job_next_run_timestamp_seconds{job_name=\"" + label(job.name) + "\"} " +
               number(seconds_since_epoch(*job.next_run)) + "\n");
  }
  header("jobrepo_job_paused", "gauge", "1 when the job is paused (from the store).");
  for (const auto& job : cluster) {
    out.append("jobrepo_job_paused{job_name=\"" + label(job.name) + "\"} " + (job.paused ? "1" : "0") + "\n");
  }
  header("jobrepo_job_gave_up", "gauge",
         "1 when the job failed and nothing retries it until run-now asks (from the store).");
  for (const auto& job : cluster) {
    out.append("jobrepo_job_gave_up{job_name=\"" + label(job.name) + "\"} " + (job.gave_up ? "1" : "0") + "\n");
  }

  header("jobrepo_job_consecutive_failures", "gauge",
         "Failed runs of the job in a row, on any server; 0 after a success (from the store).");
  for (const auto& job : cluster) {
    out.append("jobrepo_job_consecutive_failures{job_name=\"" + label(job.name) + "\"} " +
               std::to_string(job.consecutive_failures) + "\n");
  }
  header("jobrepo_job_last_status", "gauge",
         "1 for the status of the job's last ended run, on any server, 0 for the others; all 0 before its first "
         "(from the store).");
  for (const auto& job : cluster) {
    for (const auto status : {jobrepo::Status::completed, jobrepo::Status::failed, jobrepo::Status::interrupted}) {
      out.append("jobrepo_job_last_status{job_name=\"" + label(job.name) + "\",status=\"" +
                 std::string(jobrepo::to_string(status)) + "\"} " + (job.last_status == status ? "1" : "0") + "\n");
    }
  }
  header("jobrepo_job_servers_live", "gauge",
         "Live servers that serve the job (their record has not expired; from the store).");
  for (const auto& job : cluster) {
    out.append("jobrepo_job_servers_live{job_name=\"" + label(job.name) + "\"} " +
               std::to_string(job.live_server_ids.size()) + "\n");
  }
  header("jobrepo_servers_live", "gauge", "Live servers that serve any job of this plugin (from the store).");
  std::set<std::string> live;
  for (const auto& job : cluster) live.insert(job.live_server_ids.begin(), job.live_server_ids.end());
  out.append("jobrepo_servers_live ").append(std::to_string(live.size())).append("\n");

  header("jobrepo_writer_call_seconds", "gauge",
         "How long the store call that stores this server's run outcomes has run; 0 when none is in flight.");
  out.append("jobrepo_writer_call_seconds ").append(number(writer.call_seconds)).append("\n");
  header("jobrepo_outcomes_waiting", "gauge", "Runs whose handler returned here, their outcome not stored yet.");
  out.append("jobrepo_outcomes_waiting ").append(std::to_string(writer.outcomes_waiting)).append("\n");
  header("jobrepo_writer_stalls_total", "counter",
         "Store calls of outcomes that ran past max(1s, monitor_interval) (each also a warning in the log).");
  out.append("jobrepo_writer_stalls_total ").append(std::to_string(writer.stalls)).append("\n");

  header("jobrepo_claims_total", "counter", "Runs this server claimed.");
  out.append("jobrepo_claims_total ").append(std::to_string(values.claims)).append("\n");

  header("jobrepo_store_errors_total", "counter", "Store calls of this server that failed, by error code.");
  for (const auto& [code, count] : values.store_errors) {
    out.append("jobrepo_store_errors_total{code=\"" + code + "\"} " + std::to_string(count) + "\n");
  }
  return out;
}

void MeteredStore::around(const char* operation, const std::function<void()>& call) {
  (void)operation;
  try {
    call();
  } catch (const jobrepo::Error& e) {
    on_failure_(e);
    throw;
  }
  on_success_();
}

}  // namespace jobctl
