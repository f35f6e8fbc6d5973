#!/usr/bin/env python3
"""Mutation check of the conformance suite with the in-memory backend.

Each mutant in mutants.json is one realistic bug in memory_store.cpp: an
exact snippet (`old`, found exactly once) and its replacement (`new`). For
each, the backend is rebuilt with the bug and the conformance suite is run
with -a (abort at the first failure):

  caught    the suite failed (exit status neither 0 nor 77) within the timeout
  survived  the suite passed (0) or skipped (77): it does not check that rule
  hung      the timeout passed first: NOT caught (a suite should fail, not hang)
  crashed   the suite died of a signal: NOT caught (a suite should fail, not
            crash, whatever the store returns)

The unmutated copy runs first and must pass: exit status 0, or 77 when it
reports cases skipped and none failed (its summary line says so); otherwise
nothing else runs.

Usage:
  mutants.py --prefix PREFIX --source examples/memory_backend
             [--only ID,...] [--jobs 2] [--timeout 120] [--work DIR]
             [--mutants FILE] [--tests SPEC]

--prefix is an installed jobrepo (CMAKE_PREFIX_PATH). Each parallel slot has
its own copy of the source and one configured build directory; a mutant only
rewrites memory_store.cpp there, so each build recompiles that file alone.

--tests is a Catch2 test spec the suite runs with; the default runs every
case (the cases the harness cannot run are skipped, exit 77).

Exit status: 0 when the unmutated copy passed and every mutant ran (whatever
survived); 1 when the unmutated copy failed; 2 for a bad mutants file or
command line; 3 when a mutant did not build (a defect of the kit).
Standard library only.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = "memory_conformance"


def fail(message, status=2):
    print("mutants.py: " + message, file=sys.stderr)
    sys.exit(status)


def load_mutants(path, source_dir):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    source_file = data.get("source_file", "memory_store.cpp")
    mutants = data.get("mutants", [])
    with open(os.path.join(source_dir, source_file), encoding="utf-8") as f:
        original = f.read()
    problems, seen = [], set()
    for i, m in enumerate(mutants):
        missing = [key for key in ("id", "what", "old", "new") if not isinstance(m.get(key), str)]
        if missing:
            problems.append(f"mutant #{i}: missing text fields {', '.join(missing)}")
            continue
        if m["id"] in seen:
            problems.append(f"mutant {m['id']}: duplicate id")
        seen.add(m["id"])
        count = original.count(m["old"])
        if count != 1:
            problems.append(f"mutant {m['id']}: its old snippet occurs {count} times in {source_file} (must be 1)")
        elif m["old"] == m["new"]:
            problems.append(f"mutant {m['id']}: old and new are the same")
    if problems:
        fail("bad mutants file " + path + ":\n  " + "\n  ".join(problems))
    return source_file, original, mutants


def baseline_passed(log):
    """True when the suite's summary line in `log` reports passed cases and no failure."""
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    match = re.search(r"\]: (\d+) passed, 0 failed, \d+ skipped", text)
    return bool(match) and int(match.group(1)) > 0


def run(cmd, cwd=None, timeout=None, log=None):
    """Runs cmd in its own process group; returns (status, seconds, timed_out).
    On timeout the whole group (the suite and any child it started) is killed."""
    start = time.monotonic()
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        if log:
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = proc.wait(timeout=timeout)
            return status, time.monotonic() - start, False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return None, time.monotonic() - start, True
    finally:
        if log:
            out.close()


class Slot:
    """One copy of the source and its configured build directory."""

    def __init__(self, index, args, work):
        self.dir = os.path.join(work, f"slot-{index}")
        self.src = os.path.join(self.dir, "src")
        self.build = os.path.join(self.dir, "build")
        if os.path.exists(self.src):
            shutil.rmtree(self.src)
        shutil.copytree(args.source, self.src, ignore=shutil.ignore_patterns("build", ".git"))
        self.args = args

    def configure(self, log):
        cmd = ["cmake", "-S", self.src, "-B", self.build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
               "-DCMAKE_PREFIX_PATH=" + os.path.abspath(self.args.prefix)]
        if shutil.which("ninja"):
            cmd += ["-G", "Ninja"]
        status, _, _ = run(cmd, log=log)
        return status == 0

    def write_source(self, name, text):
        path = os.path.join(self.src, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def build_and_test(self, log, timeout, tests):
        status, build_seconds, _ = run(["cmake", "--build", self.build], log=log)
        if status != 0:
            return "build-failed", build_seconds, 0.0
        cmd = [os.path.join(self.build, SUITE), "-a"] + ([tests] if tests else [])
        status, seconds, timed_out = run(cmd, cwd=self.dir, timeout=timeout, log=log)
        if timed_out:
            return "hung", build_seconds, seconds
        if status == 0:
            return "passed", build_seconds, seconds
        if status == 77:
            return "skipped", build_seconds, seconds
        if status < 0 or status >= 128:
            return "crashed", build_seconds, seconds
        return "caught", build_seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="installed jobrepo (CMAKE_PREFIX_PATH)")
    parser.add_argument("--source", required=True, help="the backend's source folder (examples/memory_backend)")
    parser.add_argument("--only", default="", help="comma-separated mutant ids")
    parser.add_argument("--jobs", type=int, default=2, help="mutants built and run at once")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per suite run")
    parser.add_argument("--work", default="", help="work directory (kept; default: a new temporary one)")
    parser.add_argument("--mutants", default=os.path.join(HERE, "mutants.json"))
    parser.add_argument("--tests", default="", help="Catch2 test spec (default: every case)")
    args = parser.parse_args()
    if args.jobs < 1:
        fail("--jobs must be at least 1")
    if not os.path.isdir(args.source):
        fail(f"no source folder {args.source}")

    source_file, original, mutants = load_mutants(args.mutants, args.source)
    if args.only:
        wanted = [x.strip() for x in args.only.split(",") if x.strip()]
        known = {m["id"] for m in mutants}
        unknown = [x for x in wanted if x not in known]
        if unknown:
            fail("unknown mutant ids: " + ", ".join(unknown))
        mutants = [m for m in mutants if m["id"] in wanted]

    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="jobrepo-mutants-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    print(f"work directory: {work} (logs in {logs})")
    print(f"suite: {SUITE} -a {args.tests!r}, timeout {args.timeout:g} s, {args.jobs} at once")

    # Slots, configured at once; the baseline runs in slot 0.
    slots = [Slot(i, args, work) for i in range(min(args.jobs, max(1, len(mutants))))]
    for i, slot in enumerate(slots):
        log = os.path.join(logs, f"configure-{i}.log")
        if not slot.configure(log):
            fail(f"configure failed in {slot.build} (see {log})", 1)

    base_log = os.path.join(logs, "unmutated.log")
    slots[0].write_source(source_file, original)
    result, build_s, run_s = slots[0].build_and_test(base_log, args.timeout, args.tests)
    if result == "skipped" and baseline_passed(base_log):
        result = "passed"  # some cases skipped (the harness cannot run them), none failed
    print(f"{'(unmutated)':<37} {result:<12} {run_s:6.1f} s")
    if result != "passed":
        print(f"the unmutated copy does not pass ({result}); see {base_log}. Stopping.")
        return 1

    todo = queue.Queue()
    for m in mutants:
        todo.put(m)
    results = {}
    print_lock = threading.Lock()

    def worker(slot):
        while True:
            try:
                m = todo.get_nowait()
            except queue.Empty:
                return
            log = os.path.join(logs, m["id"] + ".log")
            if os.path.exists(log):
                os.remove(log)
            slot.write_source(source_file, original.replace(m["old"], m["new"], 1))
            outcome, build_s, run_s = slot.build_and_test(log, args.timeout, args.tests)
            if outcome in ("passed", "skipped"):
                outcome = "survived"  # the suite did not notice the bug
            results[m["id"]] = (outcome, run_s)
            with print_lock:
                print(f"{m['id'] + ':':<37} {outcome:<12} {run_s:6.1f} s   (build {build_s:4.1f} s)", flush=True)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Leave each slot's source unmutated.
    for slot in slots:
        slot.write_source(source_file, original)

    counts = {k: 0 for k in ("caught", "survived", "hung", "crashed", "build-failed")}
    for outcome, _ in results.values():
        counts[outcome] += 1
    print()
    print("table (in mutants.json order):")
    for m in mutants:
        outcome, seconds = results[m["id"]]
        print(f"  {m['id']:<36} {outcome:<12} {seconds:6.1f} s")
    print()
    print(f"mutants: {counts['caught']} caught, {counts['survived']} survived, {counts['hung']} hung, "
          f"{counts['crashed']} crashed of {len(mutants)}")
    for kind in ("survived", "hung", "crashed", "build-failed"):
        for m in mutants:
            if results[m["id"]][0] == kind:
                print(f"  {kind}: {m['id']}: {m['what']}")
    if counts["build-failed"]:
        print(f"{counts['build-failed']} mutants did not build (see their logs in {logs})")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
