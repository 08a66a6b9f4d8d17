#!/usr/bin/env python3
"""Instructions per keep-alive HTTP request in sluiced, counted with callgrind.

Starts an origin (a sluiced answering with `http-request return`, not under valgrind), then the
proxy under `valgrind --tool=callgrind` twice, once for N1 and once for N2 keep-alive requests
sent on one connection by this script, and prints (Ir(N2) - Ir(N1)) / (N2 - N1): start-up and
shutdown cancel out. Instruction counts do not depend on what else the machine runs.
Usage: bench/callgrind/count.py [--binary target/release/sluiced] [--n1 500] [--n2 2500] [--extra 'cfg lines']

With --load S1,S2 the requests come from `wrk -t1 -c50` instead (S1 then S2 seconds, both pinned
with the proxy as the HTTP harness pins them: proxy on CPU 0, wrk on CPU 1) and the figure is
(Ir(S2) - Ir(S1)) / (requests(S2) - requests(S1)). Fifty connections at once is the load of
bench/http: the once-per-wake-up costs (the event loop, timers, the ring) are shared by the
requests that wake-up serves, as they are there, where one serial connection pays them for each
request. The request counts differ from run to run, the per-request figure much less.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def requests(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head = buf[:i].decode("latin1").lower()
                m = re.search(r"content-length: *(\d+)", head)
                need = i + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    buf = buf[need:]
                    break
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            buf += chunk
    s.close()


def wrk(port, seconds):
    """Runs wrk -t1 -c50 on CPU 1 for `seconds`; the requests it completed."""
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{seconds}s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk: " + out)
    return int(m.group(1))


def count(binary, cfg, port, n, d, load=None):
    """Ir of the proxy serving `n` serial requests, or wrk for `load` seconds; (Ir, requests)."""
    out = os.path.join(d, f"callgrind.{n if load is None else str(load) + 's'}")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "-f", cfg]
    if load is not None:
        argv = ["taskset", "-c", "0"] + argv
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.5)
        if load is None:
            requests(port, n)
        else:
            n = wrk(port, load)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1]), n
    raise SystemExit("no totals in " + out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "sluiced"))
    ap.add_argument("--n1", type=int, default=500)
    ap.add_argument("--n2", type=int, default=2500)
    ap.add_argument("--extra", default="", help="more lines for the proxy's frontend (e.g. tracking rules)")
    ap.add_argument("--global-extra", default="", help="more lines for the proxy's global section")
    ap.add_argument("--load", default=None, help="S1,S2: wrk -t1 -c50 for S1 then S2 seconds instead of serial requests")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="sluiced-callgrind-")
    origin_port, port = free_port(), free_port()
    origin_cfg = os.path.join(d, "origin.cfg")
    with open(origin_cfg, "w") as f:
        f.write(f"global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 60s\nfrontend o\n  bind 127.0.0.1:{origin_port}\n"
                "  http-request return status 200 content-type text/plain string \"sluiced-bench: a small fixed body of 64 bytes from the origin!!\\n\"\n")
    cfg = os.path.join(d, "p.cfg")
    extra = "".join(f"  {l.strip()}\n" for l in args.extra.split("\n") if l.strip())
    gextra = "".join(f"  {l.strip()}\n" for l in args.global_extra.split("\n") if l.strip())
    with open(cfg, "w") as f:
        f.write(f"global\n  nbthread 1\n{gextra}defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
                f"  option http-keep-alive\n  http-reuse safe\nfrontend fe_http\n  bind 127.0.0.1:{port}\n{extra}  default_backend be_origin\n"
                f"backend be_origin\n  server origin 127.0.0.1:{origin_port}\n")
    pin = ["taskset", "-c", "1"] if args.load else []
    origin = subprocess.Popen(pin + [args.binary, "-f", origin_cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(origin_port)
        if args.load:
            s1, s2 = (int(x) for x in args.load.split(","))
            (a, n1), (b, n2) = count(args.binary, cfg, port, 0, d, s1), count(args.binary, cfg, port, 0, d, s2)
        else:
            (a, n1), (b, n2) = count(args.binary, cfg, port, args.n1, d), count(args.binary, cfg, port, args.n2, d)
    finally:
        origin.terminate()
        origin.wait()
    per = (b - a) / (n2 - n1)
    how = "wrk -t1 -c50" if args.load else "serial"
    print(f"{n1} requests: {a:,} Ir; {n2} requests: {b:,} Ir; per keep-alive request ({how}): {per:,.0f} Ir")


if __name__ == "__main__":
    main()
