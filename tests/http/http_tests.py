#!/usr/bin/python3
"""jobctl serve --http, as an operator's tools see it.

Against a jobctl serve with known jobs on a PostgreSQL server of its own (and
then on SQLite): /metrics parsed by the Prometheus client's own text parser
after known runs, values checked against the database; /healthz through a
database outage (503 while the server is stopped, 200 after it is back, the
outage logged once at each end); the status page rendered by a real headless
browser (chromium), whose DOM must show the jobs, a running run's progress, a
failure's message and the jobs that gave up or run on demand, and whose
screenshot is written for docs/; a job that gave up no longer does after
run-now (page and metric); the metrics that examples/prometheus's alert rules
use exist; /api/jobs and /api/runs against jobctl --json; every log line of
--log-format json parsed.

Usage: http_tests.py JOBCTL SOURCE_DIR OUTPUT_DIR
Exit 0 when everything holds, 1 on a failed check, 77 (skipped) when a tool is
missing on a developer machine (never under tools/test, which sets
JOBREPO_TEST_POSTGRES_REQUIRED and installs the tools).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

JOBCTL, SOURCE, OUTPUT = sys.argv[1], sys.argv[2], sys.argv[3]
REQUIRED = os.environ.get("JOBREPO_TEST_POSTGRES_REQUIRED") == "1"
failures = []


def skip(why):
    if REQUIRED:
        print(f"http tests: {why}, but the tests require it (JOBREPO_TEST_POSTGRES_REQUIRED=1)")
        sys.exit(1)
    print(f"http tests: skipped: {why}")
    sys.exit(77)


try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    skip("python3-prometheus-client is not installed (tools/setup installs it)")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    skip("chromium is not installed (tools/setup installs it)")


def check(condition, what):
    if condition:
        return
    failures.append(what)
    print(f"FAILED: {what}", flush=True)


def wait_until(condition, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if condition():
                return True
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass
        time.sleep(0.1)
    check(False, f"within {seconds} s: {what}")
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    """(status, body) of GET path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(port):
    """{(name, labels as a sorted tuple): value} of a scrape, parsed by prometheus_client."""
    status, text = get(port, "/metrics")
    check(status == 200, f"/metrics answers 200 (got {status})")
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def jobctl(url, *args):
    result = subprocess.run([JOBCTL, "--db", url, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"jobctl {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout) if "--json" in args else result.stdout


CONFIG = {
    "claim_interval": "200ms",
    "monitor_interval": "250ms",
    "interrupt_threshold": "2s",
    "grace": "250ms",
    "worker_threads": 4,
    "jobs": [
        {"name": "often", "description": "Runs every half second", "command": ["true"], "every": "500ms"},
        {"name": "broken", "description": "Fails with exit 4", "command": ["sh", "-c", "echo oops >&2; exit 4"],
         "every": "1h", "backoff": {"max_attempts": 1}},
        {"name": "export", "description": "Exports everything; takes a while",
         "command": ["sh", "-c", "echo progress 3/10; echo exporting; sleep 120"], "every": "1h"},
        {"name": "held", "description": "Paused by the operator", "command": ["true"], "every": "1h"},
        {"name": "asked", "description": "Runs when an operator asks", "command": ["true"], "on_demand": True},
        {"name": "quitter", "description": "Gives up after one failure", "command": ["sh", "-c", "exit 5"],
         "every": "1h", "backoff": {"max_attempts": 1, "give_up": True}},
    ],
}


def serve(work, url, port, bare_port=False):
    config = os.path.join(work, "jobs.json")
    with open(config, "w") as f:
        json.dump(CONFIG, f)
    out = open(os.path.join(work, "serve.out"), "w")
    err = open(os.path.join(work, "serve.err"), "w")
    process = subprocess.Popen(
        [JOBCTL, "--db", url, "serve", "--config", config, "--server-id", "web-1", "--http",
         f":{port}" if bare_port else f"127.0.0.1:{port}",
         "--log-format", "json"], stdout=out, stderr=err)
    return process


def scenario(work, url, backend, pg_dir=None):
    port = free_port()
    jobctl(url, "migrate")
    # On SQLite the address is a bare :PORT, which means 127.0.0.1.
    process = serve(work, url, port, bare_port=backend == "sqlite")
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz answers 200 once serving")
        check(get(port, "/healthz")[1] == "ok\n", "/healthz says ok")
        jobctl(url, "job", "pause", "held")

        def ready():
            jobs = {j["name"]: j for j in jobctl(url, "jobs", "--json")}
            running = jobs["export"]["running"]
            return (len(jobctl(url, "runs", "--job", "often", "--status", "completed", "--limit", "-1", "--json")) >= 3
                    and jobs["broken"]["last_status"] == "failed"
                    and jobs["quitter"]["due_state"] == "gave_up"
                    and running is not None and running["completed_count"] == 3)

        wait_until(ready, 30, "three runs of often, broken failed, quitter gave up, export running at 3/10")
        # The cluster-wide values are read every 5 s: wait for a reading that has the pause.
        wait_until(lambda: value(metrics(port), "jobrepo_job_paused", job_name="held") == 1, 15,
                   "jobrepo_job_paused{job=held} is 1")

        before = len(jobctl(url, "runs", "--job", "often", "--status", "completed", "--limit", "-1", "--json"))
        samples = metrics(port)
        after = len(jobctl(url, "runs", "--job", "often", "--status", "completed", "--limit", "-1", "--json"))
        now = time.time()
        check(value(samples, "jobrepo_up") == 1, "jobrepo_up is 1")
        often = value(samples, "jobrepo_runs_total", job_name="often", status="completed")
        check(often is not None and before <= often <= after,
              f"jobrepo_runs_total{{often,completed}} {often} is between the database's {before} and {after}")
        check(value(samples, "jobrepo_runs_total", job_name="broken", status="failed") == 1,
              "jobrepo_runs_total{broken,failed} is 1")
        count = value(samples, "jobrepo_run_duration_seconds_count", job_name="often")
        check(count == often, f"the histogram of often counts {count} runs, as many as completed ({often})")
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                         if name == "jobrepo_run_duration_seconds_bucket" and dict(labels)["job_name"] == "often")
        check(buckets and buckets[-1] == (float("inf"), count), "the +Inf bucket holds every run")
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "the buckets are cumulative")
        check(value(samples, "jobrepo_run_duration_seconds_sum", job_name="often") < count * 5, "the durations are short")
        check(value(samples, "jobrepo_job_running", job_name="export") == 1, "jobrepo_job_running{export} is 1")
        check(value(samples, "jobrepo_job_running", job_name="broken") == 0, "jobrepo_job_running{broken} is 0")
        last_success = value(samples, "jobrepo_job_last_success_timestamp_seconds", job_name="often")
        check(last_success is not None and now - 15 < last_success <= now + 1,
              f"often last succeeded within 15 s ({last_success} vs {now})")
        check(value(samples, "jobrepo_job_last_success_timestamp_seconds", job_name="broken") is None,
              "broken never succeeded: no last-success sample")
        next_run = value(samples, "jobrepo_job_next_run_timestamp_seconds", job_name="broken")
        check(next_run is not None and now + 3500 < next_run < now + 3700, f"broken is due in an hour ({next_run})")
        check(value(samples, "jobrepo_job_paused", job_name="often") == 0, "jobrepo_job_paused{often} is 0")
        # Jobs that no time makes due: one gave up, one runs on demand.
        check(value(samples, "jobrepo_job_gave_up", job_name="quitter") == 1, "jobrepo_job_gave_up{quitter} is 1")
        for name in ("broken", "asked", "often"):
            check(value(samples, "jobrepo_job_gave_up", job_name=name) == 0, f"jobrepo_job_gave_up{{{name}}} is 0")
        for name in ("quitter", "asked"):
            check(value(samples, "jobrepo_job_next_run_timestamp_seconds", job_name=name) is None,
                  f"{name} is due at no time: no next-run sample")
        # For alerting: every status of every served job from 0 (increase()
        # sees a first failure), failures in a row, the last status, the
        # live servers, the periods.
        check(value(samples, "jobrepo_runs_total", job_name="held", status="failed") == 0,
              "jobrepo_runs_total{held,failed} is there from 0")
        check(value(samples, "jobrepo_job_consecutive_failures", job_name="broken") == 1,
              "jobrepo_job_consecutive_failures{broken} is 1")
        check(value(samples, "jobrepo_job_consecutive_failures", job_name="often") == 0,
              "jobrepo_job_consecutive_failures{often} is 0")
        check(value(samples, "jobrepo_job_last_status", job_name="broken", status="failed") == 1
              and value(samples, "jobrepo_job_last_status", job_name="broken", status="completed") == 0,
              "jobrepo_job_last_status{broken} says failed")
        check(value(samples, "jobrepo_job_last_status", job_name="often", status="completed") == 1,
              "jobrepo_job_last_status{often} says completed")
        check(value(samples, "jobrepo_servers_live") == 1, "jobrepo_servers_live is 1")
        check(value(samples, "jobrepo_job_servers_live", job_name="often") == 1, "jobrepo_job_servers_live{often} is 1")
        check(value(samples, "jobrepo_job_period_seconds", job_name="often") == 0.5,
              "jobrepo_job_period_seconds{often} is 0.5")
        check(value(samples, "jobrepo_job_period_seconds", job_name="asked") is None,
              "an on-demand job has no period")
        # The alert rules operators copy ask for metrics that exist.
        with open(os.path.join(SOURCE, "examples", "prometheus", "jobrepo-alerts.yml")) as f:
            rules = f.read()
        exported = {name for name, _ in samples}
        for name in sorted(set(re.findall(r"\bjobrepo_[a-z_]+", rules))):
            check(name in exported, f"examples/prometheus/jobrepo-alerts.yml uses {name}, which /metrics exports")
        claims = value(samples, "jobrepo_claims_total")
        check(claims is not None and claims >= often + 2, f"jobrepo_claims_total {claims} counts every claimed run")

        # The JSON API: what jobctl --json prints, as of the last reading.
        status, body = get(port, "/api/jobs")
        api_jobs = json.loads(body)
        cli_jobs = jobctl(url, "jobs", "--json")
        check(status == 200 and [j["name"] for j in api_jobs] == [j["name"] for j in cli_jobs],
              "/api/jobs lists the jobs of jobctl jobs --json")
        check(all(set(a) == set(c) for a, c in zip(api_jobs, cli_jobs)), "/api/jobs has jobctl's fields")
        status, body = get(port, "/api/runs")
        api_runs = json.loads(body)
        check(status == 200 and api_runs and set(api_runs[0]) == set(jobctl(url, "runs", "--json")[0]),
              "/api/runs has jobctl runs --json's fields")

        # The status page in a real browser.
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=120).stdout
        for name in ("often", "broken", "export", "held"):
            check(f'data-job="{name}"' in dom, f"the status page shows job {name}")
        running_row = re.search(r'<tr data-run="[^"]+"><td>export</td>.*?</tr>', dom)
        check(running_row is not None and "3/10" in running_row.group(0) and 'style="width:30%"' in running_row.group(0),
              "the status page shows export running at 3/10 with its progress bar")
        check('<table id="failures">' in dom and "exit 4" in dom, "the status page shows broken's failure, exit 4")
        check("paused" in dom, "the status page shows the paused job")
        asked_row = re.search(r'<tr data-job="asked">.*?</tr>', dom)
        check(asked_row is not None and '<td class="next">on demand</td>' in asked_row.group(0),
              "the status page says asked runs on demand")
        quitter_row = re.search(r'<tr data-job="quitter">.*?</tr>', dom)
        check(quitter_row is not None and "gave up (1 failure)" in quitter_row.group(0)
              and "jobctl job run-now quitter retries it" in quitter_row.group(0),
              "the status page says quitter gave up, and how to retry it")
        check("2262" not in dom, "the status page shows no time for jobs due at none")
        if backend == "postgres":
            shot = os.path.join(OUTPUT, "status-page.png")
            subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1100,760", f"--screenshot={shot}", f"http://127.0.0.1:{port}/"],
                           capture_output=True, timeout=120)
            check(os.path.exists(shot) and os.path.getsize(shot) > 10000, f"a screenshot of the status page at {shot}")

        # Asked again, the job that gave up is due at a time: no longer gave up.
        # Paused first, so that it stays so instead of failing again at once.
        jobctl(url, "job", "pause", "quitter")
        check(jobctl(url, "job", "run-now", "quitter", "--json")["due_state"] == "scheduled",
              "run-now makes quitter due at a time again")
        wait_until(lambda: value(metrics(port), "jobrepo_job_gave_up", job_name="quitter") == 0, 15,
                   "jobrepo_job_gave_up{quitter} is 0 after run-now")
        check(value(metrics(port), "jobrepo_job_next_run_timestamp_seconds", job_name="quitter") is not None,
              "quitter has a next-run sample again")
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=120).stdout
        quitter_row = re.search(r'<tr data-job="quitter">.*?</tr>', dom)
        check(quitter_row is not None and "gave up" not in quitter_row.group(0),
              "the status page no longer says quitter gave up")

        if pg_dir is not None:
            # The database goes away: healthz says so within a few monitor
            # intervals, and comes back after it returns.
            subprocess.run([os.path.join(SOURCE, "tools", "pg"), "stop", pg_dir], check=True, capture_output=True)
            stopped = time.monotonic()
            wait_until(lambda: get(port, "/healthz")[0] == 503, 15, "/healthz answers 503 with the database stopped")
            took = time.monotonic() - stopped
            status, reason = get(port, "/healthz")
            check(status == 503 and "the store has not answered" in reason, f"/healthz gives the reason ({reason!r})")
            check(took < 5, f"503 within 5 s of the stop (took {took:.1f} s)")
            down = metrics(port)
            check(value(down, "jobrepo_up") == 0, "jobrepo_up is 0 while the database is stopped")
            check((value(down, "jobrepo_store_errors_total", code="unavailable") or 0) > 0,
                  "jobrepo_store_errors_total{code=unavailable} counts the failed calls")
            time.sleep(2)
            subprocess.run([os.path.join(SOURCE, "tools", "pg"), "start", pg_dir], check=True, capture_output=True)
            wait_until(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz answers 200 after the database is back")
            check(value(metrics(port), "jobrepo_up") == 1, "jobrepo_up is 1 again")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    check(code == 0, f"serve stops cleanly on SIGTERM (exit {code})")

    # Every log line is one JSON object with a UTC time, level and server.
    err_lines = open(os.path.join(work, "serve.err")).read().splitlines()
    out_lines = open(os.path.join(work, "serve.out")).read().splitlines()
    parsed = []
    for line in err_lines + out_lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            check(False, f"a log line that is not JSON: {line!r}")
    time_format = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    check(all(time_format.match(p.get("time", "")) and p.get("level") in ("debug", "info", "warning", "error")
              and p.get("server") == "web-1" and "msg" in p for p in parsed),
          "every log line has an RFC 3339 UTC time, a level, the server and a message")
    check(any(p["msg"].startswith(f"HTTP on http://127.0.0.1:{port}/") for p in parsed),
          "serve says where it listens (127.0.0.1 for a bare :PORT)")
    failed = [p for p in parsed if p.get("event") == "failed"]
    check(any(p.get("job") == "broken" and p.get("run") for p in failed), "the failure's line names its job and run")
    check(any(p.get("job") == "broken" and p.get("exit_code") == 4 and p.get("attempt") == 1
              and isinstance(p.get("duration_ms"), int) for p in failed),
          "the failure's line has its exit_code, attempt and duration_ms as numbers")
    completed = [p for p in parsed if p.get("event") == "completed"]
    check(any(p.get("job") == "often" and p.get("exit_code") == 0 and isinstance(p.get("duration_ms"), int)
              and isinstance(p.get("attempt"), int) for p in completed),
          "a completed run's line has its exit_code, attempt and duration_ms as numbers")
    check(any(p.get("job") == "quitter" and p["msg"].endswith("with exit 5; attempt 1 of 1; gave up (run-now retries it)")
              for p in failed), "the line of the last failure before giving up says so")
    output = [p for p in parsed if p.get("stream") == "stdout"]
    check(any(p["job"] == "export" and p["msg"] == "exporting" and p.get("run") for p in output),
          "a command's output line is tagged with its job and run")
    errors = [p for p in parsed if p.get("stream") == "stderr"]
    check(any(p["job"] == "broken" and p["msg"] == "oops" and p.get("run") for p in errors),
          "a command's stderr line is tagged with its job and run")
    if pg_dir is not None:
        outage = [p for p in parsed if "the store fails" in p["msg"]]
        back = [p for p in parsed if "the store answers again" in p["msg"]]
        check(len(outage) == 1 and outage[0]["level"] == "error", f"the outage is logged once when it starts ({len(outage)})")
        check(len(back) == 1 and "store calls failed meanwhile" in back[0]["msg"],
              f"and once when it ends, with a count ({len(back)})")
        doubled = [p["msg"] for p in parsed if re.search(r"\b(\w+): \1:", p["msg"])]
        check(not doubled, f"no doubled operation prefixes ({doubled[:2]})")


def main():
    os.makedirs(OUTPUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="jobrepo-http-")
    os.chmod(work, 0o755)
    pg_dir = os.path.join(work, "pg")
    pg = os.path.join(SOURCE, "tools", "pg")
    started = subprocess.run([pg, "start", pg_dir], capture_output=True, text=True)
    if started.returncode != 0:
        skip(f"no PostgreSQL server could be started: {started.stderr.strip()}")
    try:
        pg_work = os.path.join(work, "postgres")
        os.makedirs(pg_work)
        scenario(pg_work, started.stdout.strip(), "postgres", pg_dir)
        sqlite_work = os.path.join(work, "sqlite")
        os.makedirs(sqlite_work)
        scenario(sqlite_work, "sqlite:" + os.path.join(sqlite_work, "jobs.db"), "sqlite")
    finally:
        subprocess.run([pg, "stop", pg_dir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"http tests: {len(failures)} checks failed")
        return 1
    print("http tests: every check passed on postgres and sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
