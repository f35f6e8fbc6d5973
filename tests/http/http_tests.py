#!/usr/bin/python3
"""jobctl serve --http, as an operator's tools see it.

Against a jobctl serve with known jobs on a PostgreSQL server of its own (and
then on SQLite): /metrics parsed by the Prometheus client's own text parser
after known runs, values checked against the database; /healthz through a
database outage (503 while the server is stopped, 200 after it is back, the
outage logged once at each end); the status page rendered by a real headless
browser (chromium), whose DOM must show the jobs, a running run's progress, a
failure's message and the jobs that gave up or run on demand; a job that gave up no longer does after
run-now (page and metric); the metrics that examples/prometheus's alert rules
use exist; /api/jobs and /api/runs against jobctl --json; every log line of
--log-format json parsed. Then, on SQLite, the page that tells the truth
(issue 25; truth_scenario): the headline, the roster of servers with one that
died, times in a job's zone and UTC, an operator's cancel apart from
failures, drifted definitions, /api/runs?job=&limit=, and the layout at 390
and 1280 px measured in chromium, whose screenshots are written for docs/.

Usage: http_tests.py JOBCTL SOURCE_DIR OUTPUT_DIR
Exit 0 when everything holds, 1 on a failed check, 77 (skipped) when a tool is
missing on a developer machine (never under tools/test, which sets
JOBREPO_TEST_POSTGRES_REQUIRED and installs the tools).
"""

import base64
import datetime
import fcntl
import html
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zoneinfo

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


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: it reads fd 3 and writes fd 4, one JSON message
    per NUL). --dump-dom gives the DOM but not its layout; DevTools'
    Runtime.evaluate measures the laid-out page (it is not the page's own
    script, which its Content-Security-Policy forbids) and
    Page.captureScreenshot takes the picture."""

    def __init__(self, work):
        to_chromium = os.pipe()
        from_chromium = os.pipe()
        # Above 9, so that bash's 3<& and 4>& cannot take one another's (dash takes no fd above 9).
        child_in = fcntl.fcntl(to_chromium[0], fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_chromium[1], fcntl.F_DUPFD, 10)
        os.close(to_chromium[0])
        os.close(from_chromium[1])
        self.log = open(os.path.join(work, "chromium.err"), "w")
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{child_in} 4>&{child_out}', CHROMIUM, "--headless", "--no-sandbox",
             "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             f"--user-data-dir={os.path.join(work, 'chromium')}", "about:blank"],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(child_in)
        os.close(child_out)
        self.writer = to_chromium[1]
        self.reader = from_chromium[0]
        self.buffer = b""
        self.events = []
        self.last_id = 0

    def _read(self, timeout=60):
        end = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.reader], [], [], left)[0]:
                raise RuntimeError(f"chromium said nothing for {timeout} s")
            chunk = os.read(self.reader, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method, params=None, session=None):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") != self.last_id:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise RuntimeError(f"DevTools {method}: {answer['error']}")
            return answer["result"]

    def open(self, url, width, height):
        """A new tab of width x height CSS pixels (a phone's, with its viewport
        meta tag honoured, below 800) showing url once loaded: its session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=session)
        self.resize(session, width, height)
        self.events = []
        self.send("Page.navigate", {"url": url}, session)
        end = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session for e in self.events):
            if time.monotonic() > end:
                raise RuntimeError(f"{url} did not load within 60 s")
            self.events.append(self._read())
        return session

    def resize(self, session, width, height):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 800}, session)

    def evaluate(self, session, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"DevTools evaluate: {result['exceptionDetails']}")
        return result["result"]["value"]

    def screenshot(self, session, path):
        data = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.writer)
        os.close(self.reader)
        self.log.close()


# What the page looks like laid out, measured by DevTools in the page's
# viewport: how wide the document is, whether each job name, server name,
# table cell and the headline's verdict lie inside the screen (left >= 0,
# right <= its width), how table cells are displayed (cards on a phone), the
# colours of a failed and of a cancelled run, and the DOM.
MEASURE = """JSON.stringify((() => {
  const width = window.innerWidth;
  const inside = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.left >= -0.5 && r.right <= width + 0.5; };
  const shown = e => e.getClientRects().length > 0;
  const colour = css => { const e = document.querySelector(css); return e ? getComputedStyle(e).color : null; };
  return {
    width: width,
    scroll_width: document.documentElement.scrollWidth,
    scroll_height: document.documentElement.scrollHeight,
    names: [...document.querySelectorAll('tr[data-job] > td:first-child > b')].map(e => [e.textContent, inside(e)]),
    servers: [...document.querySelectorAll('tr[data-server] > td:first-child > b')].map(e => [e.textContent, inside(e)]),
    cells_outside: [...document.querySelectorAll('td')].filter(e => shown(e) && !inside(e)).map(e => e.textContent.slice(0, 40)),
    verdict_inside: inside(document.getElementById('verdict')),
    cell_display: getComputedStyle(document.querySelector('#jobs td')).display,
    failed_colour: colour('#runs .st-failed'),
    cancelled_colour: colour('#runs .st-cancelled'),
    html: document.documentElement.outerHTML,
  };
})())"""


def text_of(fragment):
    """The text of an HTML fragment: tags dropped, entities read."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


# CONFIG's timing, other jobs.
TRUTH_CONFIG = dict(CONFIG, jobs=[
        {"name": "backup", "description": "Fails 4 times in a row, then waits for its hour",
         "command": ["sh", "-c", "echo disk full >&2; exit 3"], "every": "1h",
         "backoff": {"initial": "100ms", "max": "100ms", "max_attempts": 4}},
        {"name": "report", "description": "Cancelled by an operator", "command": ["sleep", "60"], "every": "1h"},
        {"name": "nightly", "description": "At 03:00 in Berlin", "command": ["true"], "cron": "0 3 * * *",
         "time_zone": "Europe/Berlin"},
        {"name": "quick check", "description": "Every second", "command": ["true"], "every": "1s"},
        {"name": "tidy", "description": "Defined otherwise by web-2", "command": ["true"], "every": "1h"},
    ])
# web-2 defines tidy with another command (drift); web-3 serves sync, then dies.
DRIFT_CONFIG = dict(TRUTH_CONFIG, jobs=[{"name": "tidy", "description": "Defined otherwise by web-2",
                                         "command": ["sh", "-c", "true; true"], "every": "1h"}])
GONE_CONFIG = dict(TRUTH_CONFIG, jobs=[{"name": "sync", "description": "Served by web-3 alone",
                                        "command": ["true"], "every": "1h"}])


def start_server(work, url, server_id, config, http_port=None):
    path = os.path.join(work, f"{server_id}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    args = [JOBCTL, "--db", url, "serve", "--config", path, "--server-id", server_id]
    if http_port:
        args += ["--http", f"127.0.0.1:{http_port}"]
    return subprocess.Popen(args, stdout=open(os.path.join(work, f"{server_id}.out"), "w"),
                            stderr=open(os.path.join(work, f"{server_id}.err"), "w"))


def truth_scenario(work, url):
    """Issue 25: the page tells the cluster's truth. A job that failed 4 times
    in a row, a run cancelled by an operator, a cron job in Europe/Berlin, a
    job defined otherwise by a second live server, and a third server that
    dies (kill -9) with the only server of its job; serve runs with
    TZ=Pacific/Chatham (+13:45), so a time in the machine's zone would show."""
    port = free_port()
    saved_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Chatham"
    jobctl(url, "migrate")
    servers = {"web-1": start_server(work, url, "web-1", TRUTH_CONFIG, port),
               "web-2": start_server(work, url, "web-2", DRIFT_CONFIG),
               "web-3": start_server(work, url, "web-3", GONE_CONFIG)}
    browser = None
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz of web-1 answers 200")

        def jobs():
            return {j["name"]: j for j in jobctl(url, "jobs", "--json")}

        def ready():
            j = jobs()
            return (j["backup"]["consecutive_failures"] == 4 and j["report"]["running"] is not None
                    and j["sync"]["last_status"] == "completed" and j["quick check"]["last_status"] == "completed"
                    and len({s["fingerprint"] for s in j["tidy"]["servers"] if s["live"]}) == 2)

        wait_until(ready, 30, "backup failed 4 times, report runs, sync ran on web-3, tidy is served two ways")
        run_id = jobs()["report"]["running"]["run_id"]
        jobctl(url, "run", "cancel", run_id)
        check(jobctl(url, "run", "show", run_id, "--json")["message"] == "cancelled by operator",
              "jobctl run cancel ends report's run, cancelled by operator")
        servers["web-3"].kill()
        servers["web-3"].wait()
        wait_until(lambda: jobs()["sync"]["unserved"], 15, "web-3 is not live 2 s (its threshold) after kill -9")

        def board_ready():
            j = {v["name"]: v for v in json.loads(get(port, "/api/jobs")[1])}
            return j["sync"]["unserved"] and j["report"]["last_status"] == "interrupted"

        wait_until(board_ready, 15, "web-1's page has read the cancel and web-3's end")

        # /api/runs?job=NAME&limit=N, from memory.
        def runs(query):
            status, body = get(port, "/api/runs" + query)
            return status, json.loads(body) if status == 200 else body

        status, backup = runs("?job=backup")
        check(status == 200 and len(backup) == 4 and {r["job_name"] for r in backup} == {"backup"}
              and {r["status"] for r in backup} == {"failed"}, f"?job=backup: its 4 failed runs ({status}, {len(backup)})")
        check([r["create_time"] for r in backup] == sorted((r["create_time"] for r in backup), reverse=True),
              "?job=backup: newest first")
        status, two = runs("?job=backup&limit=2")
        check(status == 200 and [r["private_id"] for r in two] == [r["private_id"] for r in backup[:2]],
              "?job=backup&limit=2: its 2 newest")
        check(runs("?limit=20&job=backup")[1] == backup, "?limit=20&job=backup: the parameters in any order")
        for query in ("?job=quick+check&limit=3", "?job=quick%20check&limit=3"):
            status, quick = runs(query)
            check(status == 200 and len(quick) == 3 and {r["job_name"] for r in quick} == {"quick check"},
                  f"{query}: 3 runs of the job named with a space")
        status, report = runs("?job=report")
        check(status == 200 and len(report) == 1 and report[0]["status"] == "interrupted"
              and report[0]["message"] == "cancelled by operator", f"?job=report: the cancelled run ({report})")
        for query in ("?job=nosuch", "?job=", "?job=nosuch&limit=1"):
            check(runs(query) == (200, []), f"{query}: a name no job has gives []")
        for _ in range(3):  # both from one reading (a refresh may come between them)
            (status, five), (status_all, every) = runs("?limit=5"), runs("")
            if every[:5] == five:
                break
        check(status == 200 and len(five) == 5, "?limit=5: the 5 newest runs")
        check(status_all == 200 and 5 < len(every) <= 50 and every[:5] == five,
              "no parameter: the newest runs, at most 50")
        for query, says in (("?limit=0", 'limit 0 is not a whole number from 1 to 50'),
                            ("?limit=-1", "limit -1 is not"), ("?limit=abc", "limit abc is not"),
                            ("?limit=", 'limit "" is not'), ("?limit=51", "from 1 to 50 (the runs this server keeps)"),
                            ("?limit=99999999999999999999", "limit 99999999999999999999 is not"),
                            ("?job=backup&limit=21", "from 1 to 20 (the runs of a job this server keeps)"),
                            ("?limit=1.5", "limit 1.5 is not"),
                            ("?jobs=backup", 'unknown parameter jobs (it takes job and limit)'),
                            ("?job=a&job=b", "the parameter job is given twice"),
                            ("?job=%zz", "job=%zz is not percent-encoded text")):
            status, body = runs(query)
            check(status == 400 and body.startswith("/api/runs: ") and says in body and body.count("\n") == 1,
                  f"{query}: 400 and one line saying {says!r} ({status}, {body!r})")

        browser = Browser(work)
        session = browser.open(f"http://127.0.0.1:{port}/", 1280, 900)
        wide = json.loads(browser.evaluate(session, MEASURE))
        browser.resize(session, 1280, min(wide["scroll_height"], 4000))
        shot = os.path.join(OUTPUT, "status-page.png")
        browser.screenshot(session, shot)
        check(os.path.getsize(shot) > 10000, f"a screenshot of the status page at 1280 px: {shot}")
        phone_session = browser.open(f"http://127.0.0.1:{port}/", 390, 2000)
        phone = json.loads(browser.evaluate(phone_session, MEASURE))
        phone_shot = os.path.join(OUTPUT, "status-page-390.png")
        browser.screenshot(phone_session, phone_shot)
        check(os.path.getsize(phone_shot) > 10000, f"a screenshot of the status page at 390 px: {phone_shot}")

        # Layout: nothing lost sideways, on a phone or a desktop.
        names = {"backup", "report", "nightly", "quick check", "tidy", "sync"}
        for label, page, width, display in (("1280 px", wide, 1280, "table-cell"), ("390 px", phone, 390, "block")):
            check(page["width"] == width, f"{label}: the viewport is {width} px wide ({page['width']})")
            check(page["scroll_width"] <= page["width"],
                  f"{label}: the page is no wider than the screen ({page['scroll_width']} px)")
            check({n for n, _ in page["names"]} == names and all(inside for _, inside in page["names"]),
                  f"{label}: every job name lies wholly on the screen ({page['names']})")
            check({n for n, _ in page["servers"]} == {"web-1", "web-2", "web-3"}
                  and all(inside for _, inside in page["servers"]), f"{label}: every server lies on the screen")
            check(not page["cells_outside"], f"{label}: no table cell sticks out of the screen ({page['cells_outside']})")
            check(page["verdict_inside"], f"{label}: the headline's verdict lies on the screen")
            check(page["cell_display"] == display, f"{label}: table cells are shown as {display} ({page['cell_display']})")
            check(page["failed_colour"] and page["cancelled_colour"] and page["failed_colour"] != page["cancelled_colour"],
                  f"{label}: a cancelled run's colour ({page['cancelled_colour']}) is not a failed one's "
                  f"({page['failed_colour']})")
        dom = wide["html"]

        # The headline: what is wrong, named; this server's own health apart.
        verdict = re.search(r'<p id="verdict" class="(\w+)">(.*?)</p>', dom)
        expected = ("1 job failing: backup (4 in a row); 1 job with no live server: sync; 1 job defined differently: "
                    "tidy; 1 server not live: web-3; store ok")
        check(verdict is not None and verdict.group(1) == "bad" and text_of(verdict.group(2)) == expected,
              f"the headline says, in red, {expected!r} ({verdict and text_of(verdict.group(2))!r})")
        check('id="headline" class="headline bad"' in dom, "the headline's box is red")
        self_fact = re.search(r'<li id="fact-self" class="(\w+)">(.*?)</li>', dom)
        check(self_fact is not None and self_fact.group(1) == "ok"
              and text_of(self_fact.group(2)) == "this server (web-1): healthy",
              "the headline says this server's own health as this server's")
        servers_fact = re.search(r'<li id="fact-servers">(.*?)</li>', dom)
        check(servers_fact is not None and text_of(servers_fact.group(1)) == "servers: 2 of 3 live; not live: web-3",
              f"the headline counts the live servers ({servers_fact and text_of(servers_fact.group(1))!r})")

        # The roster: the dead server stays, not live, with when it was last seen.
        roster = {m.group(1): (m.group(2), m.group(0)) for m in
                  re.finditer(r'<tr data-server="([^"]+)" class="(\w+)">.*?</tr>', dom)}
        check(set(roster) == {"web-1", "web-2", "web-3"}, f"the roster lists web-1, web-2 and web-3 ({set(roster)})")
        if set(roster) == {"web-1", "web-2", "web-3"}:
            check(roster["web-1"][0] == "live" and "(this server)" in roster["web-1"][1]
                  and ">live<" in roster["web-1"][1], "web-1 is live, and this server")
            check(roster["web-2"][0] == "live" and "tidy" in text_of(roster["web-2"][1]), "web-2 is live, serving tidy")
            gone = roster["web-3"][1]
            check(roster["web-3"][0] == "notlive" and ">not live<" in gone and "sync" in text_of(gone)
                  and re.search(r'<time datetime="[^"]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>', gone)
                  and re.search(r"\d+(ms|s|m) ago", text_of(gone)),
                  f"web-3 stays listed, not live, with its job and when it was last seen ({text_of(gone)!r})")

        # Times in the job's own zone and in UTC, never the machine's.
        row = re.search(r'<tr data-job="nightly">.*?</tr>', dom)
        nightly = row and re.search(r'<td class="next"[^>]*><time datetime="([^"]+)">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) '
                                    r'(\S+) \(((\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d) UTC\)</time>', row.group(0))
        check(nightly is not None, f"nightly's next run shows in its zone and in UTC ({row and text_of(row.group(0))!r})")
        if nightly:
            instant = datetime.datetime.fromisoformat(nightly.group(1).replace("Z", "+00:00"))
            berlin = instant.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
            check(nightly.group(2) == berlin.strftime("%Y-%m-%d %H:%M:%S") and nightly.group(2).endswith(" 03:00:00")
                  and nightly.group(3) == berlin.tzname(),
                  f"nightly's next run is 03:00:00 in Berlin with its abbreviation ({nightly.group(2)} {nightly.group(3)})")
            utc_shown = (nightly.group(5) or nightly.group(2)[:10]) + " " + nightly.group(6)
            check(utc_shown == instant.strftime("%Y-%m-%d %H:%M:%S"), f"and that instant in UTC ({utc_shown})")
            check(0 < instant.timestamp() - time.time() <= 25 * 3600, "within a day")
        quick_row = re.search(r'<tr data-job="quick check">.*?</tr>', dom)
        check(quick_row is not None and re.search(r'<td class="next"[^>]*><time datetime="[^"]+Z">\d{4}-\d\d-\d\d '
                                                  r'\d\d:\d\d:\d\d UTC</time>', quick_row.group(0)),
              "a job without a zone shows UTC")
        check("+1345" not in dom and "+1245" not in dom and "Chatham" not in dom,
              "no time shows in the machine's zone (TZ=Pacific/Chatham)")

        # An operator's cancel is not a failure.
        report_row = re.search(r'<tr data-job="report">.*?</tr>', dom)
        backup_row = re.search(r'<tr data-job="backup">.*?</tr>', dom)
        check(report_row is not None and '<span class="st st-cancelled">cancelled</span>' in report_row.group(0)
              and "cancelled by operator" in report_row.group(0), "report's last run shows cancelled, not failed")
        check(backup_row is not None and '<span class="st st-failed">failed</span>' in backup_row.group(0)
              and "4 failures in a row" in backup_row.group(0), "backup's last run shows failed, 4 in a row")
        recent = re.search(r'<table id="runs">.*?</table>', dom)
        check(recent is not None and re.search(r'data-label="Job">report</td><td class="status" data-label="Status">'
                                               r'<span class="st st-cancelled">', recent.group(0))
              and 'class="st st-failed"' in recent.group(0), "the recent runs show the cancel and the failures apart")

        # Drift: which servers differ, by fingerprint.
        drift = re.findall(r'<tr data-drift="tidy">(.*?)</tr>', dom)
        live = {s["server_id"]: s["fingerprint"] for s in jobs()["tidy"]["servers"] if s["live"]}
        shown = {re.search(r"<code>([0-9a-f]+)</code>", d).group(1): text_of(d) for d in drift}
        check(len(drift) == 2 and set(shown) == set(live.values())
              and "web-1 (this server)" in shown.get(live.get("web-1"), "") and "web-2" in shown.get(live.get("web-2"), ""),
              f"the page shows tidy's two definitions by fingerprint, with their servers ({shown}, {live})")
    finally:
        if browser:
            browser.close()
        for process in servers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in servers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if saved_tz is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved_tz


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
        running_row = re.search(r'<tr data-run="[^"]+"><td class="job" data-label="Job">export</td>.*?</tr>', dom)
        check(running_row is not None and "3/10" in running_row.group(0) and 'style="width:30%"' in running_row.group(0),
              "the status page shows export running at 3/10 with its progress bar")
        check('<table id="failures">' in dom and "exit 4" in dom, "the status page shows broken's failure, exit 4")
        check("paused" in dom, "the status page shows the paused job")
        asked_row = re.search(r'<tr data-job="asked">.*?</tr>', dom)
        check(asked_row is not None and '<td class="next" data-label="Next run">on demand</td>' in asked_row.group(0),
              "the status page says asked runs on demand")
        quitter_row = re.search(r'<tr data-job="quitter">.*?</tr>', dom)
        check(quitter_row is not None and "gave up (1 failure)" in quitter_row.group(0)
              and "jobctl job run-now quitter retries it" in quitter_row.group(0),
              "the status page says quitter gave up, and how to retry it")
        check("2262" not in dom, "the status page shows no time for jobs due at none")

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
            # The page's headline says it, in red, and this server's own health apart.
            wait_until(lambda: "store cannot be read: " in get(port, "/")[1], 15,
                       "the status page's headline says the store cannot be read")
            page = get(port, "/")[1]
            check("<p id=verdict class=bad>" in page
                  and "; this server (web-1): unhealthy: the store has not answered" in page,
                  "the headline is red, naming the store and this server's own health as this server's")
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
        truth_work = os.path.join(work, "truth")
        os.makedirs(truth_work)
        truth_scenario(truth_work, "sqlite:" + os.path.join(truth_work, "jobs.db"))
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
