#!/usr/bin/env python3
"""TLS: handshakes per second and keep-alive HTTPS requests, sluiced vs HAProxy (OpenSSL), same run.

For each certificate (ECDSA P-256, RSA 2048, made here with the openssl CLI) each proxy terminates
TLS on one bind (one worker pinned to CPU 0) and answers `http-request return` itself, so only
TLS and HTTP parsing are measured. Load pinned to CPU 1:
- handshakes: `openssl s_time -new` (a full handshake per connection, no resumption) for
  --seconds; handshakes per second and per busy proxy core (proxy CPU time over wall time);
- keep-alive HTTPS: `wrk -t1 -c50` over TLS; requests per second and proxy CPU µs per request.
Only 127.0.0.1; every child is bounded in time and killed on exit. See bench/README.md.
"""

import argparse
import atexit
import datetime
import os
import re
import shlex
import signal
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "l4"))
import l4bench as l4  # noqa: E402
from l4bench import LOAD_CPU, PROXY_CPU, log, sh  # noqa: E402

PROXIES = ["sluiced", "haproxy"]


def certs(d):
    out = {}
    for name, args in [("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]), ("rsa", ["-newkey", "rsa:2048"])]:
        key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
        subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=bench.local", *args, "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        pem = os.path.join(d, f"{name}.pem")
        with open(pem, "w") as f:
            f.write(open(crt).read() + open(key).read())
        out[name] = pem
    return out


def cfg(port, pem):
    return f"""# Written by bench/tls/tlsbench.py (also HAProxy's)
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout client 30s
    timeout http-keep-alive 30s
frontend fe_tls
    bind 127.0.0.1:{port} ssl crt {pem} alpn http/1.1
    http-request return status 200 content-type text/plain string "tls-bench\\n"
"""


def measure(p, argv, secs):
    c0, t0 = l4.proc_cpu_seconds(p.pid), time.time()
    rc, out, err = l4.run(argv, secs + 30)
    c1, t1 = l4.proc_cpu_seconds(p.pid), time.time()
    return out + err, (c1 - c0), (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target", "release", "sluiced"))
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    atexit.register(l4.stop_all)
    signal.signal(signal.SIGTERM, l4.on_signal)
    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(REPO, "bench", "out", "tls-" + started.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    pems = certs(outdir)
    taken = set()
    results = {}
    for kind, pem in pems.items():
        running = {}
        for name in PROXIES:
            port = l4.free_port(taken)
            path = os.path.join(outdir, f"{name}-{kind}.cfg")
            with open(path, "w") as f:
                f.write(cfg(port, pem))
            argv = ["taskset", "-c", PROXY_CPU] + ([args.sluiced, "-f", path] if name == "sluiced" else ["haproxy", "-db", "-f", path])
            p = l4.spawn(argv, f"{name}-{kind}", outdir)
            for _ in range(100):
                if l4.listening(port):
                    break
                time.sleep(0.05)
            running[name] = (p, port)
        for rep in range(args.repeats):
            for name, (p, port) in running.items():
                hs_argv = ["taskset", "-c", LOAD_CPU, "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(args.seconds)]
                out, cpu, wall = measure(p, hs_argv, args.seconds)
                m = re.search(r"(\d+) connections in ([\d.]+)s", out)
                n = int(m.group(1)) if m else 0
                hs = n / wall if wall else 0
                ka_argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c50", f"-d{args.seconds}s", f"https://127.0.0.1:{port}/"]
                out2, cpu2, wall2 = measure(p, ka_argv, args.seconds)
                m2 = re.search(r"(\d+) requests in", out2)
                reqs = int(m2.group(1)) if m2 else 0
                r = results.setdefault((kind, name), [])
                r.append({"hs_per_s": hs, "hs_per_core": n / cpu if cpu else 0, "rps": reqs / wall2 if wall2 else 0,
                          "us_per_req": cpu2 * 1e6 / reqs if reqs else 0})
                log(f"[{rep + 1}/{args.repeats}] {kind} {name}: {hs:.0f} handshakes/s ({r[-1]['hs_per_core']:.0f} per busy core), "
                    f"{r[-1]['rps']:.0f} HTTPS req/s keep-alive, {r[-1]['us_per_req']:.2f} µs CPU/req")
        for p, _ in running.values():
            l4.stop(p)
    med = lambda xs, k: sorted(x[k] for x in xs)[len(xs) // 2]  # noqa: E731
    commit = sh("git -C " + REPO + " rev-parse --short HEAD")
    L = [f"### TLS: sluiced (rustls) vs HAProxy (OpenSSL), {started:%Y-%m-%d %H:%M} UTC, commit {commit}", "",
         f"Command: `bench/tls/run.sh {' '.join(sys.argv[1:])}`; {sh('haproxy -v | head -1')}; {sh('openssl version')}. Proxy pinned to CPU {PROXY_CPU}, "
         f"load to CPU {LOAD_CPU}; handshakes with `openssl s_time -new -time {args.seconds}` (one client, full handshakes), keep-alive with "
         f"`wrk -t1 -c50 -d{args.seconds}s https://...`; median of {args.repeats}.", "",
         "| certificate | proxy | handshakes/s | handshakes per busy proxy core | keep-alive HTTPS req/s | proxy CPU µs per request |", "|---|---|---|---|---|---|"]
    for (kind, name), xs in results.items():
        L.append(f"| {kind} | {name} | {med(xs, 'hs_per_s'):.0f} | {med(xs, 'hs_per_core'):.0f} | {med(xs, 'rps'):.0f} | {med(xs, 'us_per_req'):.2f} |")
    for kind in pems:
        s, h = results.get((kind, "sluiced")), results.get((kind, "haproxy"))
        if s and h and med(h, "hs_per_core"):
            L.append(f"\n{kind}: handshakes per busy core sluiced / HAProxy = {med(s, 'hs_per_core') / med(h, 'hs_per_core'):.2f}"
                     + (" (bar: at least 1 with ECDSA)" if kind == "ecdsa" else ""))
    text = "\n".join(L) + "\n"
    print(text)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text)
    if args.record:
        with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
