#!/usr/bin/python3
"""jobctl serve and systemd's notify protocol, with no systemd: the test is
the notify socket (NOTIFY_SOCKET, a datagram socket of its own) and reads
what serve says, as systemd would for a unit of Type=notify with
WatchdogSec=.

- serve says READY=1 once it is set up, its STATUS names what it serves,
  WATCHDOG=1 comes at half the watchdog's period, SIGHUP gives RELOADING=1
  then READY=1, SIGTERM STOPPING=1, and it exits 0;
- a job's command sees none of NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID;
- WATCHDOG_PID naming another process: no WATCHDOG=1 (that watchdog is not
  serve's);
- a database that is away: READY=1 all the same, STATUS says it waits, and
  the watchdog is pinged (a restart would not bring the database back).

Usage: notify_tests.py JOBCTL
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

JOBCTL = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


class Listener:
    """The notify socket: every datagram serve sends, with its time."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, {key: value})
        self.cursor = 0  # wait_for() looks from here on

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key, value=None, seconds=10, prefix=None):
        """The next message after the last one found with key (=value, or
        whose value starts with prefix), or None after `seconds`."""
        end = time.monotonic() + seconds
        while True:
            while self.cursor < len(self.messages):
                fields = self.messages[self.cursor][1]
                self.cursor += 1
                if key in fields and (value is None or fields[key] == value) and (
                        prefix is None or fields[key].startswith(prefix)):
                    return fields
            if time.monotonic() >= end:
                return None
            self.pump(0.1)

    def count(self, key, since=0.0):
        return sum(1 for at, fields in self.messages if at >= since and key in fields)

    def close(self):
        self.sock.close()


def serve(work, url, env_extra, name):
    config = os.path.join(work, name + ".json")
    with open(config, "w") as f:
        json.dump({"claim_interval": "200ms", "monitor_interval": "250ms", "interrupt_threshold": "2s",
                   "grace": "200ms",
                   "jobs": [{"name": "env", "description": "writes its environment",
                             "command": ["sh", "-c", "env > " + os.path.join(work, name + ".env")],
                             "every": "1h"}]}, f)
    env = dict(os.environ)
    env.update(env_extra)
    err = open(os.path.join(work, name + ".err"), "w")
    return subprocess.Popen([JOBCTL, "--db", url, "serve", "--config", config, "--server-id", name],
                            env=env, stdout=subprocess.DEVNULL, stderr=err)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    return process.returncode


def main():
    with tempfile.TemporaryDirectory(prefix="jobrepo-notify-") as work:
        url = "sqlite:" + os.path.join(work, "jobs.db")

        # 1. The whole life, watchdog every 0.4 s (pinged every 0.2 s).
        listener = Listener(work)
        process = serve(work, url, {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"}, "node-a")
        try:
            ready = listener.wait_for("READY", "1")
            check(ready is not None, "serve says READY=1")
            serving = listener.wait_for("STATUS", prefix="serving")
            check(serving is not None and serving["STATUS"] == "serving 1 job as node-a on " + url,
                  f"its status names what it serves: {serving}")
            since = time.monotonic()
            listener.pump(2.0)
            pings = listener.count("WATCHDOG", since)
            # 0.2 s apart: about 10 in 2 s; a loaded machine may lose a few.
            check(6 <= pings <= 12, f"WATCHDOG=1 at half of WATCHDOG_USEC: {pings} in 2 s (about 10)")
            env_file = os.path.join(work, "node-a.env")
            for _ in range(100):
                if os.path.exists(env_file) and os.path.getsize(env_file) > 0:
                    break
                time.sleep(0.1)
            command_env = open(env_file).read() if os.path.exists(env_file) else ""
            check("JOBREPO_JOB_NAME=env" in command_env, "the job's command ran")
            check(not any(v + "=" in command_env for v in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")),
                  "its command sees no NOTIFY_SOCKET, WATCHDOG_USEC or WATCHDOG_PID")
            process.send_signal(signal.SIGHUP)
            reloading = listener.wait_for("RELOADING", "1")
            check(reloading is not None and "MONOTONIC_USEC" in reloading, f"SIGHUP: RELOADING=1 with MONOTONIC_USEC")
            again = listener.wait_for("READY", "1")
            check(again is not None and again.get("STATUS", "").startswith("serving"),
                  f"then READY=1, serving again: {again}")
            process.send_signal(signal.SIGTERM)
            stopping = listener.wait_for("STOPPING", "1")
            check(stopping is not None, "SIGTERM: STOPPING=1")
            check(process.wait(20) == 0, "serve exits 0")
        finally:
            stop(process)
            listener.close()
            os.unlink(listener.path)

        # 2. A watchdog meant for another process (WATCHDOG_PID): not pinged.
        listener = Listener(work)
        process = serve(work, url, {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000",
                                    "WATCHDOG_PID": str(os.getpid())}, "node-b")
        try:
            check(listener.wait_for("READY", "1") is not None, "WATCHDOG_PID of another process: READY=1")
            listener.pump(1.5)
            check(listener.count("WATCHDOG") == 0, "and no WATCHDOG=1 (that watchdog is not serve's)")
        finally:
            check(stop(process) == 0, "serve exits 0")
            listener.close()
            os.unlink(listener.path)

        # 3. The database away (nothing listens on the port): ready, waiting, pinged.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        listener = Listener(work)
        process = serve(work, f"postgresql://jobrepo@127.0.0.1:{port}/jobrepo?connect_timeout=1",
                        {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"}, "node-c")
        try:
            check(listener.wait_for("READY", "1") is not None, "database away: READY=1")
            waiting = listener.wait_for("STATUS", prefix="waiting for the database")
            check(waiting is not None, f"its status says it waits for the database: {waiting}")
            since = time.monotonic()
            listener.pump(1.5)
            check(listener.count("WATCHDOG", since) >= 4, "and the watchdog is pinged while it waits")
        finally:
            check(stop(process) == 0, "serve exits 0 on SIGTERM while it waits")
            listener.close()

    print(f"systemd notify: {'all passed' if not failures else str(len(failures)) + ' failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
