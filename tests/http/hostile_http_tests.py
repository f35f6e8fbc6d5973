#!/usr/bin/python3
"""jobctl serve --http against hostile clients (issue 26; docs/operations.md,
"HTTP: what a hostile client meets").

Against one jobctl serve on SQLite, with raw sockets:
  - a table of hostile requests (bad request lines, versions, methods,
    targets, headers, Host names, bodies, Range, pipelining), each with the
    status it must get, no answer larger than 4x the page, and /healthz still
    answering after all of them;
  - /healthz within 1 s while 200 slowloris sockets and 1,000 idle ones are
    open (and still afterwards);
  - the peak resident set of serve under a 64 MB POST (and a GET with a 64 MB
    body) rises by less than 1 MB;
  - a second serve on the same port exits 1 with its error while the first
    keeps serving; with --json it prints that error as JSON on stdout;
  - a DNS name that is not the server's (DNS rebinding) gets 421, and
    --http-host NAME makes a name answer;
  - a run's progress of 999999999999999998/999999999999999999 shows as 99%.

Usage: hostile_http_tests.py JOBCTL
Exit 0 when everything holds, 1 on a failed check.
"""

import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

JOBCTL = sys.argv[1]
failures = []
cases = 0


def check(condition, what):
    global cases
    cases += 1
    if condition:
        return
    failures.append(what)
    print(f"FAILED: {what}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock, timeout=5.0):
    """(status, headers dict, body bytes, raw size) of one response, or (None, ...) when
    the connection closed (or timed out) without one."""
    sock.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None, {}, b"", len(data), b""
        if not chunk:
            return None, {}, b"", len(data), b""
        data += chunk
        if time.monotonic() > end:
            return None, {}, b"", len(data), b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    if not match:
        return None, {}, b"", len(data), b""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        body += chunk
    extra = body[length:]
    return int(match.group(1)), headers, body[:length], len(head) + 4 + len(body), extra


def exchange(port, raw, timeout=5.0):
    """Sends `raw` on a new connection; (status, headers, body, size)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        result = read_response(sock, timeout)
        return result[:4]


def get(port, path, host=None, timeout=5.0):
    host = host or f"127.0.0.1:{port}"
    return exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(), timeout)


def healthz_seconds(port):
    start = time.monotonic()
    status, _, body, _ = get(port, "/healthz", timeout=10)
    return (time.monotonic() - start) if status == 200 and body == b"ok\n" else None


def vm_hwm(pid):
    """Peak resident set (VmHWM) in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def start_serve(work, url, port, config, extra=(), json_output=False, name="serve"):
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    out = open(os.path.join(work, f"{name}.out"), "w")
    err = open(os.path.join(work, f"{name}.err"), "w")
    args = [JOBCTL, "--db", url] + (["--json"] if json_output else []) + [
        "serve", "--config", path, "--server-id", name, "--http", f"127.0.0.1:{port}", *extra]
    return subprocess.Popen(args, stdout=out, stderr=err)


def wait_for(condition, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


CONFIG = {
    "claim_interval": "200ms",
    "jobs": [
        {"name": "counting", "command": ["sh", "-c",
                                         "echo progress 999999999999999998/999999999999999999; sleep 60"],
         "every": "1h"},
        {"name": "idle", "command": ["true"], "every": "1h"},
    ],
}


def table(port):
    """The hostile requests: (what, raw request, expected status or None for no
    answer at all)."""
    h = f"Host: 127.0.0.1:{port}\r\n"
    rows = [
        ("a plain GET", f"GET /healthz HTTP/1.1\r\n{h}\r\n", 200),
        ("HEAD", f"HEAD /healthz HTTP/1.1\r\n{h}\r\n", 200),
        ("HTTP/1.0 without Host", "GET /healthz HTTP/1.0\r\n\r\n", 200),
        ("bare LF line ends", f"GET /healthz HTTP/1.1\n{h.strip()}\n\n", 200),
        ("empty lines before the request line", f"\r\n\r\nGET /healthz HTTP/1.1\r\n{h}\r\n", 200),
        ("a query string", f"GET /healthz?x=1&y=%00 HTTP/1.1\r\n{h}\r\n", 200),
        ("the absolute form", f"GET http://127.0.0.1:{port}/healthz HTTP/1.1\r\n{h}\r\n", 200),
        ("the absolute form naming another host", f"GET http://evil.example/healthz HTTP/1.1\r\n{h}\r\n", 421),
        ("https in the absolute form", f"GET https://127.0.0.1/healthz HTTP/1.1\r\n{h}\r\n", 400),
        ("obs-text in a header value", f"GET /healthz HTTP/1.1\r\n{h}X-A: \xe9\xff\r\n\r\n", 200),
        ("Content-Length: 0", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 0\r\n\r\n", 200),
        ("Content-Length: 00", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 00\r\n\r\n", 200),
        ("Range: bytes=0-0", f"GET / HTTP/1.1\r\n{h}Range: bytes=0-0\r\n\r\n", 200),
        ("Range: bytes=-1", f"GET / HTTP/1.1\r\n{h}Range: bytes=-1\r\n\r\n", 200),
        ("Range with 2,000 ranges", f"GET / HTTP/1.1\r\n{h}Range: bytes={','.join(['0-'] * 2000)}\r\n\r\n", 200),
        ("Range with 3,000 ranges (over the head limit)",
         f"GET / HTTP/1.1\r\n{h}Range: bytes={','.join(['0-'] * 3000)}\r\n\r\n", 431),
        ("If-Range and Range", f"GET / HTTP/1.1\r\n{h}If-Range: x\r\nRange: bytes=1-2,3-4\r\n\r\n", 200),
        ("Accept-Encoding: gzip", f"GET / HTTP/1.1\r\n{h}Accept-Encoding: gzip, br\r\n\r\n", 200),
        ("Expect: 100-continue without a body", f"GET /healthz HTTP/1.1\r\n{h}Expect: 100-continue\r\n\r\n", 200),
        ("Upgrade: websocket", f"GET / HTTP/1.1\r\n{h}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 200),
        ("Upgrade: h2c", f"GET / HTTP/1.1\r\n{h}Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n", 200),
        ("100 header lines", f"GET /healthz HTTP/1.1\r\n{h}" + "X-A: b\r\n" * 99 + "\r\n", 200),
        ("101 header lines", f"GET /healthz HTTP/1.1\r\n{h}" + "X-A: b\r\n" * 100 + "\r\n", 431),
        ("a 9 KB header", f"GET /healthz HTTP/1.1\r\n{h}X-Big: {'a' * 9000}\r\n\r\n", 431),
        ("a 9 KB target", f"GET /{'a' * 9000} HTTP/1.1\r\n{h}\r\n", 414),
        ("a 7 KB target", f"GET /{'a' * 7000} HTTP/1.1\r\n{h}\r\n", 404),
        ("an unknown path", f"GET /nope HTTP/1.1\r\n{h}\r\n", 404),
        ("a path with a trailing slash", f"GET /healthz/ HTTP/1.1\r\n{h}\r\n", 404),
        ("a doubled slash", f"GET //healthz HTTP/1.1\r\n{h}\r\n", 404),
        ("dot segments", f"GET /../../etc/passwd HTTP/1.1\r\n{h}\r\n", 404),
        ("percent-encoded dot segments", f"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n{h}\r\n", 404),
        ("a percent-encoded NUL", f"GET /healthz%00 HTTP/1.1\r\n{h}\r\n", 404),
        ("a fragment", f"GET /healthz#x HTTP/1.1\r\n{h}\r\n", 404),
        ("a raw NUL in the target", f"GET /heal\x00thz HTTP/1.1\r\n{h}\r\n", 400),
        ("a raw DEL in the target", f"GET /heal\x7fthz HTTP/1.1\r\n{h}\r\n", 400),
        ("raw UTF-8 in the target", f"GET /h\xc3\xa9 HTTP/1.1\r\n{h}\r\n", 400),
        ("a tab in the target", f"GET /a\tb HTTP/1.1\r\n{h}\r\n", 400),
        ("the target *", f"OPTIONS * HTTP/1.1\r\n{h}\r\n", 405),
        ("a target without a slash", f"GET healthz HTTP/1.1\r\n{h}\r\n", 400),
        ("no version (HTTP/0.9)", "GET /healthz\r\n\r\n", 400),
        ("two spaces", f"GET  /healthz HTTP/1.1\r\n{h}\r\n", 400),
        ("a trailing word", f"GET /healthz HTTP/1.1 x\r\n{h}\r\n", 400),
        ("a lower-case version", f"GET /healthz http/1.1\r\n{h}\r\n", 400),
        ("HTTP/1.10", f"GET /healthz HTTP/1.10\r\n{h}\r\n", 400),
        ("HTTP/2.0", f"GET /healthz HTTP/2.0\r\n{h}\r\n", 505),
        ("HTTP/3.0", f"GET /healthz HTTP/3.0\r\n{h}\r\n", 505),
        ("HTTP/1.2", f"GET /healthz HTTP/1.2\r\n{h}\r\n", 505),
        ("the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("a TLS client hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + "\x00" * 40 + "\r\n\r\n", 400),
        ("a method with a bracket", f"G(T /healthz HTTP/1.1\r\n{h}\r\n", 400),
        ("a lower-case method", f"get /healthz HTTP/1.1\r\n{h}\r\n", 405),
        ("an unknown method", f"BREW /healthz HTTP/1.1\r\n{h}\r\n", 405),
        ("POST", f"POST /healthz HTTP/1.1\r\n{h}Content-Length: 0\r\n\r\n", 405),
        ("PUT with a body", f"PUT / HTTP/1.1\r\n{h}Content-Length: 5\r\n\r\nhello", 405),
        ("DELETE", f"DELETE /api/jobs HTTP/1.1\r\n{h}\r\n", 405),
        ("PATCH", f"PATCH /api/jobs HTTP/1.1\r\n{h}\r\n", 405),
        ("OPTIONS", f"OPTIONS / HTTP/1.1\r\n{h}\r\n", 405),
        ("TRACE", f"TRACE / HTTP/1.1\r\n{h}\r\n", 405),
        ("CONNECT", f"CONNECT 127.0.0.1:22 HTTP/1.1\r\n{h}\r\n", 405),
        ("POST with chunked body", f"POST /metrics HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         405),
        ("GET with a body", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 5\r\n\r\nhello", 413),
        ("GET with a chunked body", f"GET /healthz HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
        ("GET with Content-Length and Transfer-Encoding (smuggling)",
         f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
        ("Expect: 100-continue with a body", f"GET / HTTP/1.1\r\n{h}Expect: 100-continue\r\nContent-Length: 9\r\n\r\n", 413),
        ("a negative Content-Length", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\n", 400),
        ("a list as Content-Length", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 1, 1\r\n\r\n", 400),
        ("two different Content-Lengths", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 0\r\nContent-Length: 4\r\n\r\n",
         400),
        ("a huge Content-Length", f"GET /healthz HTTP/1.1\r\n{h}Content-Length: 99999999999999999999999\r\n\r\n", 413),
        ("a space before the colon", f"GET /healthz HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\n\r\n", 400),
        ("a folded header", f"GET /healthz HTTP/1.1\r\n{h}X-A: b\r\n c\r\n\r\n", 400),
        ("a header without a colon", f"GET /healthz HTTP/1.1\r\n{h}X-A b\r\n\r\n", 400),
        ("an empty header name", f"GET /healthz HTTP/1.1\r\n{h}: b\r\n\r\n", 400),
        ("a control byte in a value", f"GET /healthz HTTP/1.1\r\n{h}X-A: b\x01c\r\n\r\n", 400),
        ("a NUL in a value", f"GET /healthz HTTP/1.1\r\n{h}X-A: b\x00c\r\n\r\n", 400),
        ("a bare CR in a value", f"GET /healthz HTTP/1.1\r\n{h}X-A: b\rc\r\n\r\n", 400),
        ("HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 400),
        ("two Host headers", f"GET /healthz HTTP/1.1\r\n{h}{h}\r\n", 400),
        ("an empty Host", "GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", 400),
        ("Host with user info", "GET /healthz HTTP/1.1\r\nHost: u@127.0.0.1\r\n\r\n", 400),
        ("Host with a bad port", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:x\r\n\r\n", 400),
        ("Host with a space", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host with a path", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1/x\r\n\r\n", 400),
        ("a 300-character Host", f"GET /healthz HTTP/1.1\r\nHost: {'a' * 300}\r\n\r\n", 400),
        ("Host: localhost", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", 200),
        ("Host: LOCALHOST. with a port", f"GET /healthz HTTP/1.1\r\nHost: LOCALHOST.:{port}\r\n\r\n", 200),
        ("Host: 127.0.0.1 without a port", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200),
        ("Host: [::1]", "GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n", 200),
        ("Host: 127.0.0.2 (loopback)", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n", 200),
        ("Host: this machine's host name", f"GET /healthz HTTP/1.1\r\nHost: {socket.gethostname()}:{port}\r\n\r\n",
         200),
        ("Host: a rebinding name", f"GET /healthz HTTP/1.1\r\nHost: attacker.example:{port}\r\n\r\n", 421),
        ("Host: a rebinding name, status page", f"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", 421),
        ("Host: a rebinding name, metrics", f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1.nip.io\r\n\r\n", 421),
        ("Host: another LAN address", "GET /healthz HTTP/1.1\r\nHost: 192.168.1.10\r\n\r\n", 421),
        ("Host: the allowed name", "GET /healthz HTTP/1.1\r\nHost: status.example\r\n\r\n", 200),
        ("Host: the allowed name upper case", "GET /healthz HTTP/1.1\r\nHost: STATUS.example:80\r\n\r\n", 200),
        ("Host: a name below the allowed one", "GET /healthz HTTP/1.1\r\nHost: x.status.example\r\n\r\n", 421),
        ("Connection: close", f"GET /healthz HTTP/1.1\r\n{h}Connection: close\r\n\r\n", 200),
        ("Connection: keep-alive on 1.0", "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
        ("/metrics", f"GET /metrics HTTP/1.1\r\n{h}\r\n", 200),
        ("/api/jobs", f"GET /api/jobs HTTP/1.1\r\n{h}\r\n", 200),
        ("/api/runs", f"GET /api/runs HTTP/1.1\r\n{h}\r\n", 200),
        ("/api/runs with limit 0", f"GET /api/runs?limit=0 HTTP/1.1\r\n{h}\r\n", 400),
        ("/api/runs with a 20-digit limit", f"GET /api/runs?limit={'9' * 20} HTTP/1.1\r\n{h}\r\n", 400),
        ("/api/runs with a bad percent escape", f"GET /api/runs?job=%zz HTTP/1.1\r\n{h}\r\n", 400),
        ("/api/runs with an unknown parameter", f"GET /api/runs?x=1 HTTP/1.1\r\n{h}\r\n", 400),
        ("/api/runs for a job named with a NUL", f"GET /api/runs?job=%00 HTTP/1.1\r\n{h}\r\n", 200),
        ("the status page", f"GET / HTTP/1.1\r\n{h}\r\n", 200),
        ("HEAD of the status page", f"HEAD / HTTP/1.1\r\n{h}\r\n", 200),
    ]
    return [(what, raw.encode("latin-1"), status) for what, raw, status in rows]


def hostile_table(port, page_size):
    rows = table(port)
    for what, raw, expected in rows:
        try:
            status, headers, body, size = exchange(port, raw)
        except OSError as e:
            status, headers, body, size = None, {}, b"", 0
            print(f"  {what}: {e}")
        check(status == expected, f"{what}: status {status}, expected {expected}")
        check(size <= 4 * page_size + 4096, f"{what}: an answer of {size} bytes, more than 4x the page")
        if raw.startswith(b"HEAD"):
            check(body == b"", f"{what}: HEAD answered with a body")
        if status == 405:
            check(headers.get("allow") == "GET, HEAD", f"{what}: 405 names GET, HEAD in Allow")
        if status == 200 and b"Range:" in raw:
            check("content-range" not in headers, f"{what}: no partial answer")
    print(f"hostile requests: {len(rows)} rows", flush=True)
    return len(rows)


def half_close(port):
    """A request followed by the end of the client's sending side (nc -N)
    is answered; a partial one is dropped without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        check(read_response(sock)[0] == 200, "a request whose client then closed its side is answered")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 12")
        sock.shutdown(socket.SHUT_WR)
        check(read_response(sock)[0] is None, "a partial request whose client closed its side gets no answer")


def pipelining_and_keep_alive(port):
    # Three requests in one packet: three answers, in order.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        req = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall((req + f"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + req).encode())
        data = b""
        end = time.monotonic() + 5
        while data.count(b"HTTP/1.1 ") < 3 and time.monotonic() < end:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        check(statuses == [200, 404, 200], f"pipelined requests answered in order: {statuses}")
    # At most 100 requests per connection: the 100th says close, and the
    # connection ends.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        closes = 0
        for i in range(100):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, _, _, _ = read_response(sock)
            if status != 200:
                break
            closes += headers.get("connection") == "close"
        check(i == 99 and closes == 1, f"100 requests on one connection, the last with Connection: close ({i}, {closes})")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        check(read_response(sock, 2)[0] is None, "no 101st answer on one connection")


def slow_clients(port):
    """/healthz within 1 s while 200 slowloris and 1,000 idle sockets are open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    idle, slow = [], []
    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            idle.append(s)
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        worst = 0.0
        end = time.monotonic() + 8
        while time.monotonic() < end:
            # Slowloris: a header byte now and then on every slow socket
            # (reconnecting the ones the server closed).
            for i, s in enumerate(slow):
                try:
                    s.sendall(b"X")
                except OSError:
                    s.close()
                    try:
                        slow[i] = socket.create_connection(("127.0.0.1", port), timeout=5)
                        slow[i].sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    except OSError:
                        pass
            took = healthz_seconds(port)
            check(took is not None, "/healthz answers 200 ok while 1,200 slow and idle sockets are open")
            if took is None:
                break
            worst = max(worst, took)
            time.sleep(0.25)
        check(worst < 1.0, f"/healthz within 1 s under 200 slowloris and 1,000 idle sockets (worst {worst:.3f} s)")
        print(f"slow clients: worst /healthz {worst * 1000:.1f} ms under 200 slowloris and 1,000 idle sockets",
              flush=True)
    finally:
        for s in idle + slow:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    took = healthz_seconds(port)
    check(took is not None and took < 1.0, "/healthz answers after the slow clients left")


def big_bodies(port, pid):
    """A 64 MB POST (and GET) raises serve's peak RSS by less than 1 MB."""
    before = vm_hwm(pid)
    chunk = b"x" * (1 << 20)
    for method, expected in (("POST", 405), ("GET", 413)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"{method} /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {64 << 20}\r\n\r\n"
                         .encode())
            sent = 0
            try:
                for _ in range(64):
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server closed: the body was refused
            status = read_response(sock, 5)[0]
            check(status == expected, f"a 64 MB {method} gets {expected} (got {status}, {sent >> 20} MB sent)")
    after = vm_hwm(pid)
    check(after - before < 1024, f"peak RSS rose by {after - before} kB under 64 MB bodies (less than 1 MB)")
    print(f"64 MB bodies: peak RSS {before} kB before, {after} kB after", flush=True)


def second_serve(work, url, port):
    other = start_serve(work, url, port, {"jobs": [{"name": "x", "command": ["true"], "every": "1h"}]},
                        name="second")
    try:
        rc = other.wait(30)
    except subprocess.TimeoutExpired:
        other.kill()
        other.wait()
        rc = None
    err = open(os.path.join(work, "second.err")).read()
    check(rc == 1, f"a second serve on the same port exits 1 (got {rc})")
    check("cannot listen there" in err and "in use" in err, f"the second serve says the port is in use: {err!r}")
    check(healthz_seconds(port) is not None, "the first serve still answers")
    # With --json, the error is JSON on stdout.
    other = start_serve(work, url, port, {"jobs": [{"name": "x", "command": ["true"], "every": "1h"}]},
                        json_output=True, name="third")
    try:
        rc = other.wait(30)
    except subprocess.TimeoutExpired:
        other.kill()
        other.wait()
        rc = None
    out = open(os.path.join(work, "third.out")).read()
    try:
        parsed = json.loads(out)
        ok = isinstance(parsed, dict) and "in use" in json.dumps(parsed)
    except ValueError:
        ok = False
    check(rc == 1 and ok, f"--json serve on a port in use: exit 1 and the error as JSON on stdout (rc {rc}, {out!r})")


def hostile_names(port):
    """A job named with a line feed, a forged row and control bytes shows on
    one row of the status page, escaped by the one visible rule."""
    def page():
        status, _, body, _ = get(port, "/")
        return body if status == 200 and b"evil" in body else None
    body = None
    end = time.monotonic() + 20
    while time.monotonic() < end and not body:
        body = page()
        time.sleep(0.2)
    check(body is not None, "the status page shows the job created with a hostile name")
    if body:
        check(b"evil\\n&lt;/td&gt;&lt;td&gt;forged\\x1b[31m" in body,
              "its line feed and escape byte show as \\n and \\x1b, its forged cell as text")
        check(b"evil\n" not in body and b"\x1b" not in body, "no raw line feed or escape byte from the name")
        check(b"with no live server: evil\\n&lt;/td&gt;&lt;td&gt;forged\\x1b[31m" in body,
              "the headline names the job that no server serves, escaped alike")
    # /api/runs?job= takes the name percent-encoded: the job is known, with no runs.
    status, _, runs, _ = get(port, "/api/runs?job=" + urllib.parse.quote("evil\n</td><td>forged\x1b[31m", safe=""))
    check(status == 200 and json.loads(runs) == [], f"/api/runs?job=<the hostile name> answers [] ({status}, {runs!r})")


def progress(port):
    def shown():
        status, _, body, _ = get(port, "/")
        return status == 200 and b"999999999999999998/999999999999999999" in body and body
    body = None
    end = time.monotonic() + 20
    while time.monotonic() < end and not body:
        body = shown()
        time.sleep(0.2)
    check(bool(body), "the status page shows the running run's progress")
    if body:
        check(b"width:99%" in body, "progress 999999999999999998/999999999999999999 shows as 99%")


def main():
    with tempfile.TemporaryDirectory(prefix="jobrepo-hostile-http-") as work:
        url = "sqlite:" + os.path.join(work, "jobs.db")
        port = free_port()
        # A job named by a database writer with a line feed, HTML and an
        # escape byte (jobctl job create takes any valid UTF-8).
        for args in (["migrate"], ["job", "create", "evil\n</td><td>forged\x1b[31m", "made elsewhere"]):
            made = subprocess.run([JOBCTL, "--db", url, *args], capture_output=True, text=True, timeout=60)
            check(made.returncode == 0, f"jobctl {args[0]}: {made.stderr.strip()}")
        serve = start_serve(work, url, port, CONFIG, extra=("--http-host", "status.example"))
        try:
            if not wait_for(lambda: healthz_seconds(port) is not None, 30):
                print("FAILED: serve did not answer /healthz within 30 s")
                print(open(os.path.join(work, "serve.err")).read())
                return 1
            progress(port)
            hostile_names(port)
            page_size = get(port, "/")[3]
            hostile_table(port, page_size)
            pipelining_and_keep_alive(port)
            half_close(port)
            big_bodies(port, serve.pid)
            slow_clients(port)
            second_serve(work, url, port)
            check(healthz_seconds(port) is not None, "/healthz answers after everything")
            check(serve.poll() is None, "serve is still running")
        finally:
            serve.terminate()
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        err = open(os.path.join(work, "serve.err")).read()
        check("internal error" not in err.lower(), "serve logged no internal error")
    print(f"hostile http: {cases} checks, {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
