#!/usr/bin/env python3
"""Instructions per keep-alive HTTP request through sluiced (and HAProxy, same configuration), with
and without stick-table tracking.

The proxy under test runs under `valgrind --tool=callgrind` (release build, `nbthread 1`) in
front of a second sluiced answering `http-request return` (not measured). One client connection
sends N1 and then N2 keep-alive requests in two separate runs; instructions per request =
(total(N2) - total(N1)) / (N2 - N1), so start-up and shut-down cancel out. With --repeats R, each
count is the minimum of R runs: the proxy's timer wheel and its event loop do more work when
the run is slower in wall time (valgrind on a busy machine), which only ever adds instructions.

Variants:
  none     no stick table
  track    stick-table type ip size 1m store http_req_rate(10s)
           http-request track-sc0 src
           http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
  keys     the same on a string table keyed by a header that is new on every request (an
           insertion per request; past --size entries, an eviction per request)
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

VARIANTS = {
    "none": "",
    "track": "  stick-table type ip size {size} store http_req_rate(10s)\n  http-request track-sc0 src\n"
    "  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 100000000 }}\n",
    "keys": "  stick-table type string len 16 size {size} store http_req_rate(10s)\n  http-request track-sc0 req.hdr(x-key)\n"
    "  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 100000000 }}\n",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def client(port, n, keyed):
    c = socket.create_connection(("127.0.0.1", port))
    for i in range(n):
        hdr = f"x-key: k{i}\r\n" if keyed else ""
        c.sendall(f"GET / HTTP/1.1\r\nhost: b\r\n{hdr}\r\n".encode())
        buf = b""
        while b"\r\n\r\nok" not in buf:
            chunk = c.recv(4096)
            if not chunk:
                raise SystemExit("the proxy closed the connection")
            buf += chunk
        if b" 200 " not in buf.split(b"\r\n", 1)[0]:
            raise SystemExit(f"unexpected answer: {buf[:80]!r}")
    c.close()


def count(proxy, binary, d, variant, size, origin, n):
    port = free_port()
    cfg = os.path.join(d, f"{proxy}.{variant}.cfg")
    with open(cfg, "w") as f:
        f.write("global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n")
        f.write(f"frontend fe\n  bind 127.0.0.1:{port}\n" + VARIANTS[variant].format(size=size) + "  default_backend be\n")
        f.write(f"backend be\n  server o 127.0.0.1:{origin}\n")
    out = os.path.join(d, f"callgrind.{proxy}.{variant}.{n}")
    # The same configuration text for both: sluiced reads HAProxy's.
    cmd = [binary, "-f", cfg] if proxy == "sluiced" else [binary, "-db", "-f", cfg]
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        client(port, n, variant == "keys")
    finally:
        p.terminate()
        p.wait(timeout=120)
    with open(out) as f:
        for line in f:
            m = re.match(r"(summary|totals): (\d+)", line)
            if m:
                return int(m.group(2))
    raise SystemExit(f"no total in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target/release/sluiced"))
    ap.add_argument("--variants", default="none,track,keys")
    ap.add_argument("--proxies", default="sluiced,haproxy", help="comma-separated subset of sluiced,haproxy (haproxy skipped when not installed)")
    ap.add_argument("--haproxy", default=shutil.which("haproxy") or "haproxy")
    ap.add_argument("--size", default="1m", help="stick-table size")
    ap.add_argument("--n1", type=int, default=500)
    ap.add_argument("--n2", type=int, default=2500)
    ap.add_argument("--repeats", type=int, default=1, help="runs per count, the minimum is kept")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing")
    d = tempfile.mkdtemp(prefix="stickbench-")
    origin = free_port()
    with open(os.path.join(d, "origin.cfg"), "w") as f:
        f.write(f"global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 60s\nfrontend o\n  bind 127.0.0.1:{origin}\n"
                "  http-request return status 200 content-type text/plain string ok\n")
    o = subprocess.Popen([args.sluiced, "-f", os.path.join(d, "origin.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_port(origin)
        rows = []
        for proxy in args.proxies.split(","):
            binary = args.sluiced if proxy == "sluiced" else args.haproxy
            if not shutil.which(binary) and not os.path.exists(binary):
                print(f"{proxy}: not available ({binary})", file=sys.stderr)
                continue
            for v in args.variants.split(","):
                a = min(count(proxy, binary, d, v, args.size, origin, args.n1) for _ in range(args.repeats))
                b = min(count(proxy, binary, d, v, args.size, origin, args.n2) for _ in range(args.repeats))
                rows.append((proxy, v, a, b, (b - a) / (args.n2 - args.n1)))
    finally:
        o.terminate()
        o.wait(timeout=10)
    print(f"| proxy | variant | {args.n1} requests | {args.n2} requests | instructions per keep-alive request |")
    print("|---|---|---|---|---|")
    base = {p: per for p, v, _, _, per in rows if v == "none"}
    for p, v, a, b, per in rows:
        extra = f" ({(per / base[p] - 1) * 100:+.1f} % over none)" if p in base and v != "none" else ""
        print(f"| {p} | {v} | {a:,} | {b:,} | {per:,.0f}{extra} |")


if __name__ == "__main__":
    sys.exit(main())
