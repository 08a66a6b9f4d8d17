#!/usr/bin/env python3
"""HTTP benchmark: sluiced, HAProxy and nginx as HTTP/1.1 reverse proxies, side by side, in the same run.

Each proxy runs pinned to CPU 0 with one worker/thread, in front of the same origin: an nginx of
its own (`worker_processes 1`, `return 200` of a small fixed body, keep-alive on) pinned to CPU 1,
where the load (wrk) also runs. Two measurements per proxy: keep-alive (`wrk -t1 -c50 -d10s
--latency`) and one request per connection (the same with `-H 'Connection: close'`). Only
127.0.0.1 is used, every port is one the kernel handed out as free, every child is bounded in
time and killed on exit. The process, port and CPU helpers are bench/l4/l4bench.py's.
`run.sh` installs the tools and builds sluiced, then runs this script; see bench/README.md.
"""

import argparse
import atexit
import datetime
import json
import os
import shlex
import signal
import socket
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "l4"))
import l4bench as l4  # noqa: E402  (spawn, stop_all, free_port, CpuWindow, ... and the COMMANDS list)
from l4bench import LOAD_CPU, PROXY_CPU, fmt, log, med, ratio, sh, shared, tail  # noqa: E402

# "sluiced" runs its default backend (`auto`: io_uring where the kernel allows it), "sluiced-epoll"
# the same binary and configuration with `--io-backend epoll`.
PROXIES = ["sluiced", "sluiced-epoll", "haproxy", "nginx"]
# "<proxy>-track" (sluiced, sluiced-epoll, haproxy): the same with stick-table tracking in the
# frontend, for the cost of tracking against the same proxy without it, in the same run.
TRACKED = ["sluiced-track", "sluiced-epoll-track", "haproxy-track"]
TRACK_LINES = """    stick-table type ip size 1m store http_req_rate(10s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
"""
TESTS = [("ka", "keep-alive"), ("close", "one request per connection")]
BODY = "sluiced-bench: a small fixed body of 64 bytes from the origin!!\n"  # 64 bytes
assert len(BODY) == 64

# wrk's own summary, machine-readable: latency percentiles in µs (wrk's --latency table rounds).
WRK_LUA = """-- Written by bench/http/httpbench.py
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SLUICED-BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# ---------------------------------------------------------------- readiness


def http_get(port, timeout=2.0, close=False):
    """One GET / on a new connection; returns (status, body)."""
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 else 0
        length = None
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while length is not None and len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, body.decode("latin-1")


def wait_http(p, port, timeout=5.0):
    """Waits until GET / through port answers 200 with the origin's body. Returns None or why not."""
    deadline = time.monotonic() + timeout
    last = "not listening"
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return f"exited with status {p.returncode}: {tail(p.bench_err)}"
        if l4.listening(port):
            try:
                status, body = http_get(port)
                if status == 200 and body == BODY:
                    return None
                last = f"GET / answered {status} with {len(body)} bytes of body"
            except (OSError, ValueError, IndexError) as e:
                last = f"GET / failed: {e}"
        time.sleep(0.05)
    return f"not ready after {timeout} s ({last}): {tail(p.bench_err)}"


# ---------------------------------------------------------------- configurations


def haproxy_cfg(fe_port, origin_port, track=False, frontend_lines=""):
    """Also sluiced's: it reads HAProxy configuration. `track`: stick-table tracking in the frontend;
    `frontend_lines`: more lines for it (bench/http/compressbench.py's compression)."""
    extra = (TRACK_LINES if track else "") + frontend_lines
    return f"""# Written by bench/http/httpbench.py
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse safe

frontend fe_http
    bind 127.0.0.1:{fe_port}
{extra}    default_backend be_origin

backend be_origin
    server origin 127.0.0.1:{origin_port}
"""


NGINX_COMMON = """worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx.error.log warn;
worker_rlimit_nofile 16384;

events {{
    worker_connections 4096;
}}
"""


def origin_cfg(d, port, location=None):
    """The origin nginx. `location`: the lines that answer `/` (default: `return 200` of BODY);
    bench/http/compressbench.py serves a file instead."""
    if location is None:
        location = f"""        default_type text/plain;
        location / {{
            return 200 "{BODY.rstrip()}\\n";
        }}
"""
    return (
        "# Written by bench/http/httpbench.py: the origin\n"
        + NGINX_COMMON.format(d=d)
        + f"""
http {{
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{location}    }}
}}
"""
    )


def nginx_proxy_cfg(d, fe_port, origin_port, http_lines=""):
    """`http_lines`: more lines for the `http` block (bench/http/compressbench.py's gzip)."""
    return (
        "# Written by bench/http/httpbench.py\n"
        + NGINX_COMMON.format(d=d)
        + f"""
http {{
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
{http_lines}    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 32;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{fe_port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


# ---------------------------------------------------------------- measurement


def wrk(proxy, port, args, close, lua, outdir, label, headers=()):
    """One wrk run against `port` (`headers`: more request headers), with the proxy's CPU."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", lua]
    if close:
        argv += ["-H", "Connection: close"]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"http://127.0.0.1:{port}/")
    with l4.CpuWindow(proxy.pid, args.seconds + 30) as w:
        rc, out, err = l4.run(argv, timeout=args.seconds + 30)
    with open(os.path.join(outdir, f"wrk-{label}.txt"), "a") as f:
        f.write(out + err + "\n")
    line = next((ln for ln in out.splitlines() if ln.startswith("SLUICED-BENCH ")), None)
    if rc != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc {rc}): {(err or out).strip()[-300:]}")
    kv = {k: int(v) for k, v in (x.split("=", 1) for x in line.split()[1:])}
    reqs = kv["requests"]
    errors = sum(v for k, v in kv.items() if k.startswith("errors_"))
    return {
        "rps": reqs / (kv["duration_us"] / 1e6),
        "requests": reqs,
        "p50_us": kv["p50_us"],
        "p99_us": kv["p99_us"],
        "max_us": kv["max_us"],
        "errors": errors,
        "errors_detail": {k[7:]: v for k, v in kv.items() if k.startswith("errors_") and v},
        "proxy_cores": w.proxy_cores,
        "cpu0_cores": w.cpu0_cores,
        "us_per_req": w.proxy_cpu_s * 1e6 / reqs if reqs else 0.0,
        "distance_ns": w.distance_ns,
    }


# ---------------------------------------------------------------- report


def all_runs(results):
    return [x for r in results.values() for t, _ in TESTS for x in r[t]]


def medians(results, keep=lambda run: True):
    # results[proxy][test] = [run, ...] -> M[proxy][test][figure] = median over the kept runs, and "n"
    M = {}
    for p, r in results.items():
        M[p] = {}
        for t, _ in TESTS:
            xs = [x for x in r[t] if keep(x)]
            M[p][t] = {k: med(xs, k) for k in ("rps", "p50_us", "p99_us", "proxy_cores", "cpu0_cores", "us_per_req")}
            M[p][t]["errors"] = sum(x["errors"] for x in xs)
            M[p][t]["n"] = len(xs)
    return M


def bar_line(s, h, label=""):
    """The issue's HTTP bars from sluiced's (s) and HAProxy's (h) medians."""
    r_ka = ratio(s["ka"]["us_per_req"], h["ka"]["us_per_req"])
    r_cl = ratio(s["close"]["us_per_req"], h["close"]["us_per_req"])
    p_ka = ratio(s["ka"]["p99_us"], h["ka"]["p99_us"])
    p_cl = ratio(s["close"]["p99_us"], h["close"]["p99_us"])

    def verdict(ok):
        return "met" if ok else "NOT met"

    return (
        f"Bar{label}: CPU per keep-alive request at most 0.8 of HAProxy's: **{verdict(r_ka is not None and r_ka <= 0.8)}** ({fmt(r_ka, 3)}); "
        f"per new-connection request at most 0.9 of HAProxy's: **{verdict(r_cl is not None and r_cl <= 0.9)}** ({fmt(r_cl, 3)}); "
        f"p99 no worse than HAProxy's: **{verdict(p_ka is not None and p_cl is not None and p_ka <= 1.0 and p_cl <= 1.0)}** "
        f"(keep-alive {fmt(p_ka, 3)}, new connection {fmt(p_cl, 3)})."
    )


def placement_section(runs, split, results, moved):
    """Where the host had put CPU 0 against CPU 1 during each measurement, and the figures per placement."""
    L = l4.placement_summary(runs, split, moved)
    if split is None:
        return L
    per = {k: medians(results, lambda x, k=k: l4.placement(x, split) == k) for k in ("near", "far")}
    L.append("| proxy | keep-alive near: CPU µs/req (runs) | keep-alive far | new connection near | new connection far |")
    L.append("|---|---|---|---|---|")
    for p in results:
        cells = [f"{fmt(per[k][p][t]['us_per_req'], 2)} ({per[k][p][t]['n']})" for t in ("ka", "close") for k in ("near", "far")]
        L.append(f"| {p} | " + " | ".join(cells) + " |")
    L.append("")
    for k in ("near", "far"):
        M = per[k]
        if "sluiced" not in M or "haproxy" not in M:
            continue
        n = min(M[p][t]["n"] for p in ("sluiced", "haproxy") for t in ("ka", "close"))
        if n < 3:
            L.append(f"- {k.capitalize()}: too few measurements for a verdict (fewest of sluiced's and HAProxy's: {n}; at least 3 needed).")
            continue
        L.append("- " + bar_line(M["sluiced"], M["haproxy"], f", CPUs {k}"))
        extra = []
        if "sluiced-epoll" in M and M["sluiced-epoll"]["ka"]["n"]:
            extra.append(f"epoll backend / HAProxy keep-alive {fmt(ratio(M['sluiced-epoll']['ka']['us_per_req'], M['haproxy']['ka']['us_per_req']), 3)}")
            extra.append(f"io_uring / epoll keep-alive {fmt(ratio(M['sluiced']['ka']['us_per_req'], M['sluiced-epoll']['ka']['us_per_req']), 3)}")
        if "nginx" in M and M["nginx"]["ka"]["n"]:
            extra.append(f"sluiced / nginx keep-alive {fmt(ratio(M['sluiced']['ka']['us_per_req'], M['nginx']['ka']['us_per_req']), 3)}")
        if extra:
            L.append(f"  - Also, CPUs {k}: " + "; ".join(extra) + ".")
    L.append("")
    return L


def report(args, results, unavailable, commit, started, configs):
    M = medians(results)
    runs = all_runs(results)
    split = l4.placement_split(runs)
    L = []
    L.append(f"## HTTP proxying: sluiced vs HAProxy vs nginx ({started:%Y-%m-%d %H:%M} UTC)")
    L.append("")
    L.append(f"- Date: {started:%Y-%m-%d %H:%M:%S} UTC; commit: `{commit}`")
    L.append(l4.machine_line(args.syscall_cost))
    L.append(f"- Versions: {sh('haproxy -v | head -1')}; {sh('nginx -v 2>&1')}; {sh('wrk -v 2>&1 | head -1')}")
    L.append(f"- Harness: `{shlex.join(['bench/http/run.sh'] + sys.argv[1:])}`")
    L.append(
        f"- Other load: CPU0 {fmt(args.idle_before[0])} and CPU1 {fmt(args.idle_before[1])} busy in the second before the run (should be near 0); "
        f"load average {args.loadavg_before} before, {args.loadavg_after} after"
    )
    L.append(
        f"- Layout: proxy pinned to CPU {PROXY_CPU} (`taskset -c {PROXY_CPU}`), one worker/thread; origin (nginx, 1 worker, `return 200` of "
        f"{len(BODY)} bytes) and wrk pinned to CPU {LOAD_CPU}; {args.repeats} runs of each measurement, interleaved across proxies, median shown"
    )
    for p, why in unavailable.items():
        L.append(f"- **{p}: not available** ({why})")
    n_shared = sum(1 for x in runs if shared(x))
    if max(args.idle_before) > 0.15 or n_shared:
        L.append(
            f"- **Warning: the machine was not idle**: in {n_shared} of {len(runs)} runs (marked * below) CPU 0 was busy well above the proxy's own use. "
            "The raw req/s and latencies of those runs suffer; CPU µs per request suffers less."
        )
    L.append("")
    L.append(
        f"Load: `wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency` for GET / through the proxy; keep-alive as is, "
        "one request per connection with `-H 'Connection: close'` (wrk reconnects after each response)."
    )
    L.append("Proxy CPU µs per request = CPU time (utime+stime of the proxy's processes and threads) during the wrk run / requests completed.")
    L.append("")
    for t, title in TESTS:
        L.append(f"{title.capitalize()}:")
        L.append("")
        L.append("| proxy | req/s | p50 latency µs | p99 latency µs | busy proxy cores | proxy CPU µs per request | CPU0 busy | errors (all runs) |")
        L.append("|---|---|---|---|---|---|---|---|")
        for p in results:
            m = M[p][t]
            L.append(
                f"| {p} | {fmt(m['rps'], 0)} | {fmt(m['p50_us'], 0)} | {fmt(m['p99_us'], 0)} | {fmt(m['proxy_cores'], 3)} | "
                f"{fmt(m['us_per_req'], 2)} | {fmt(m['cpu0_cores'], 3)} | {m['errors']} |"
            )
        L.append("")
    if "sluiced" in M:
        L.append("Ratios (sluiced / other; for req/s above 1 is better for sluiced, for CPU µs per request and latency below 1 is):")
        L.append("")
        L.append("| figure | sluiced/HAProxy | sluiced/nginx |")
        L.append("|---|---|---|")
        s = M["sluiced"]
        for t, title in TESTS:
            for k, label in [("rps", "req/s"), ("us_per_req", "CPU µs per request"), ("p50_us", "p50 latency"), ("p99_us", "p99 latency")]:
                h = M.get("haproxy", {}).get(t, {}).get(k)
                n = M.get("nginx", {}).get(t, {}).get(k)
                L.append(f"| {title}: {label} | {fmt(ratio(s[t][k], h), 3)} | {fmt(ratio(s[t][k], n), 3)} |")
        L.append("")
        if "haproxy" in M:
            L.append(bar_line(s, M["haproxy"]))
            L.append("")
    L += placement_section(runs, split, results, args.moved)
    if "haproxy" in results:
        # Each round runs every proxy back to back, so a ratio within one round cancels the
        # machine's drift between rounds (this VM's speed wanders by up to a factor of two).
        L.append(
            "Per-round ratios of CPU µs per request to HAProxy's in the same round (median, then each round"
            + ("; only rounds where both measurements had the CPUs in the same place, near or far):" if split else "):")
        )
        L.append("")
        for p in [x for x in results if x.startswith("sluiced")]:
            for t, title in TESTS:
                pairs = [(x, y) for x, y in zip(results[p][t], results["haproxy"][t]) if x.get("us_per_req") and y.get("us_per_req")]
                if split:
                    pairs = [(x, y) for x, y in pairs if l4.placement(x, split) == l4.placement(y, split) in ("near", "far")]
                rs = [x["us_per_req"] / y["us_per_req"] for x, y in pairs]
                if rs:
                    where = f" [{', '.join(l4.placement(x, split) for x, _ in pairs)}]" if split else ""
                    L.append(f"- {p}, {title}: **{fmt(statistics.median(rs), 3)}** ({', '.join(fmt(r, 2) for r in rs)}){where}")
        L.append("")
    if "sluiced" in M and "sluiced-epoll" in M:
        s, e = M["sluiced"], M["sluiced-epoll"]
        L.append(
            "Backends (sluiced default / sluiced-epoll, CPU µs per request; below 1 the default backend is cheaper): "
            f"keep-alive {fmt(ratio(s['ka']['us_per_req'], e['ka']['us_per_req']), 3)}, "
            f"new connection {fmt(ratio(s['close']['us_per_req'], e['close']['us_per_req']), 3)}; "
            f"epoll backend vs HAProxy keep-alive {fmt(ratio(e['ka']['us_per_req'], M.get('haproxy', {}).get('ka', {}).get('us_per_req')), 3)}."
        )
        L.append("")
    tracked = [(p, p + "-track") for p in ("sluiced", "sluiced-epoll", "haproxy") if p in M and p + "-track" in M]
    if tracked:
        L.append("Stick-table tracking (`<proxy>-track`: the frontend also has `" + "`, `".join(x.strip() for x in TRACK_LINES.strip().splitlines()) + "`), CPU µs per keep-alive request with tracking / without, same proxy, same run:")
        L.append("")
        for p, t in tracked:
            r = ratio(M[t]["ka"]["us_per_req"], M[p]["ka"]["us_per_req"])
            L.append(f"- {p}: {fmt(M[p]['ka']['us_per_req'], 2)} -> {fmt(M[t]['ka']['us_per_req'], 2)} µs ({fmt(None if r is None else (r - 1) * 100, 1)} %)")
        if "sluiced" in M and "sluiced-track" in M:
            r = ratio(M["sluiced-track"]["ka"]["us_per_req"], M["sluiced"]["ka"]["us_per_req"])
            ok = r is not None and r <= 1.10
            L.append(f"- Bar (issue 7: tracking adds at most 10 % to sluiced's own keep-alive figure): **{'met' if ok else 'NOT met'}** ({fmt(r, 3)}).")
        L.append("")
    L.append("Every run (proxy: figure per repetition; * = CPU 0 shared with other work during that run):")
    L.append("")

    def each(xs, key, nd, star=False):
        return ", ".join(fmt(x[key], nd) + ("*" if star and shared(x) else "") for x in xs)

    for p, r in results.items():
        parts = []
        for t, title in TESTS:
            xs = r[t]
            where = ", ".join(l4.placement(x, split) for x in xs)
            parts.append(f"{title}: req/s {each(xs, 'rps', 0, True)}; CPU µs/req {each(xs, 'us_per_req', 2)}; p99 µs {each(xs, 'p99_us', 0)}; CPUs {where}")
        L.append(f"- {p}: " + "; ".join(parts))
        errs = [f"{t} run {i + 1}: {x['errors_detail']}" for t, _ in TESTS for i, x in enumerate(r[t]) if x["errors"]]
        if errs:
            L.append(f"  - errors: {'; '.join(errs)}")
    L.append("")
    L += l4.commands_and_configs(configs)
    return "\n".join(L), M


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated subset of sluiced,sluiced-epoll,haproxy,nginx")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t")
    ap.add_argument("--tests", default="ka,close", help="comma-separated subset of ka (keep-alive) and close (one request per connection)")
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target/release/sluiced"))
    ap.add_argument("--retries", type=int, default=2, help="times a measurement during which the host moved the CPUs is taken again")
    ap.add_argument("--loadgen", default=os.path.join(REPO, "target/release/sluiced-loadgen"), help="samples where the host put the two CPUs (cpu-distance)")
    ap.add_argument("--out", default=None, help="directory for configs, logs and the report (default bench/out/http-<date>)")
    rec = ap.add_mutually_exclusive_group()
    rec.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md even without sluiced")
    rec.add_argument("--no-record", action="store_true", help="never touch bench/RESULTS.md")
    ap.add_argument("--budget", type=int, default=600, help="hard time limit for the whole run, seconds")
    ap.add_argument("--wait-idle", type=int, default=0, help="wait up to this many seconds for both CPUs to be idle before starting")
    args = ap.parse_args()

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    for p in proxies:
        if p not in PROXIES + TRACKED:
            ap.error(f"unknown proxy {p}")
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    for t in tests:
        if t not in dict(TESTS):
            ap.error(f"unknown test {t}")
    if os.cpu_count() < 2:
        raise SystemExit("needs 2 CPUs: one for the proxy, one for the origin and the load")

    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.abspath(args.out or os.path.join(REPO, "bench", "out", f"http-{started:%Y%m%d-%H%M%S}"))
    os.makedirs(outdir, exist_ok=True)
    commit = sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD")
    if sh(f"git -C {shlex.quote(REPO)} status --porcelain --untracked-files=no"):
        commit += " (with uncommitted changes)"

    atexit.register(l4.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, l4.on_signal)
    signal.signal(signal.SIGALRM, l4.on_alarm)
    signal.alarm(args.budget)

    if os.access(args.loadgen, os.X_OK):
        l4.LOADGEN["path"] = args.loadgen
    else:
        log(f"warning: {args.loadgen} not built: the placement of the CPUs will not be sampled")
    args.loadavg_before = l4.loadavg()
    args.idle_before = l4.wait_idle(args.wait_idle)
    args.syscall_cost = l4.syscall_cost()
    if max(args.idle_before) > 0.15:
        log(f"warning: the machine is busy (CPU0 {args.idle_before[0]:.2f}, CPU1 {args.idle_before[1]:.2f}): figures will be low and noisy")

    taken = set()
    bound = args.budget + 60
    l4.LIFETIME[0] = bound
    lua = os.path.join(outdir, "report.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)

    # The origin, pinned to the load CPU.
    configs = {}
    origin_port = l4.free_port(taken)
    d = os.path.join(outdir, "origin")
    os.makedirs(d, exist_ok=True)
    text = origin_cfg(d, origin_port)
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(text)
    configs["origin: nginx.conf"] = text
    origin = l4.spawn(["taskset", "-c", LOAD_CPU, "nginx", "-p", d + "/", "-e", os.path.join(d, "nginx.error.log"), "-c", cfg], "origin", outdir)
    why = wait_http(origin, origin_port)
    if why:
        raise SystemExit(f"origin nginx: {why}")

    # Proxies, pinned to the proxy CPU, all started before measuring: an idle proxy costs nothing.
    running, unavailable = {}, {}
    for p in proxies:
        fe_port = l4.free_port(taken)
        d = os.path.join(outdir, p)
        os.makedirs(d, exist_ok=True)
        base = p.removesuffix("-track")
        if base in ("sluiced", "sluiced-epoll", "haproxy"):
            text = haproxy_cfg(fe_port, origin_port, track=p != base)
            cfg = os.path.join(d, f"{p}.cfg")
            if p.startswith("sluiced"):
                if not os.access(args.sluiced, os.X_OK):
                    unavailable[p] = f"{args.sluiced} not built"
                    continue
                argv = ["taskset", "-c", PROXY_CPU, args.sluiced, "-d", "-f", cfg] + (["--io-backend", "epoll"] if base == "sluiced-epoll" else [])
            else:
                argv = ["taskset", "-c", PROXY_CPU, "haproxy", "-db", "-f", cfg]
        else:
            text = nginx_proxy_cfg(d, fe_port, origin_port)
            cfg = os.path.join(d, "nginx.conf")
            argv = ["taskset", "-c", PROXY_CPU, "nginx", "-p", d + "/", "-e", os.path.join(d, "nginx.error.log"), "-c", cfg]
        with open(cfg, "w") as f:
            f.write(text)
        configs[f"{p}: {os.path.basename(cfg)}"] = text
        proc = l4.spawn(argv, p, outdir)
        why = wait_http(proc, fe_port)
        if why is None:
            # The one-request-per-connection path must work too: the answer to a `Connection: close` request.
            try:
                status, body = http_get(fe_port, close=True)
                if status != 200 or body != BODY:
                    why = f"GET / with Connection: close answered {status} with {len(body)} bytes of body"
            except (OSError, ValueError, IndexError) as e:
                why = f"GET / with Connection: close failed: {e}"
        if why:
            unavailable[p] = why
            l4.stop(proc)
            l4.CHILDREN.remove(proc)
            log(f"{p}: not available: {why}")
            continue
        running[p] = (proc, fe_port)
        log(f"{p}: ready (pid {proc.pid}, port {fe_port})")

    if not running:
        raise SystemExit("no proxy could be started")

    results = {p: {t: [] for t, _ in TESTS} for p in running}
    moved = {p: 0 for p in running}
    order = list(running)
    for rep in range(args.repeats):
        for p in order[rep % len(order) :] + order[: rep % len(order)]:  # rotate: no proxy always goes first
            proc, port = running[p]
            for t, title in TESTS:
                if t not in tests:
                    continue
                if proc.poll() is not None:
                    raise SystemExit(f"{p} died: {tail(proc.bench_err)}")
                label = f"[{rep + 1}/{args.repeats}] {p:8} {title}"
                r = l4.again_if_moved(lambda: wrk(proc, port, args, t == "close", lua, outdir, f"{p}-{t}"), args.retries, moved, p, label)
                results[p][t].append(r)
                log(
                    f"[{rep + 1}/{args.repeats}] {p:8} {title:27} {r['rps']:9.0f} req/s, p50 {r['p50_us']} µs, p99 {r['p99_us']} µs, "
                    f"{r['proxy_cores']:.3f} busy cores, {r['us_per_req']:.2f} µs CPU/req, {r['errors']} errors"
                )
    l4.stop_all()
    args.loadavg_after = l4.loadavg()

    args.moved = moved
    text, meds = report(args, results, unavailable, commit, started, configs)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"medians": meds, "runs": results, "unavailable": unavailable, "commit": commit, "date": started.isoformat(), "syscall_cost": args.syscall_cost}, f, indent=1)
    print(text)
    record = args.record or ("sluiced" in running and not args.no_record)
    if record:
        with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as f:
            f.write("\n" + text + "\n")
        log("appended to bench/RESULTS.md")
    else:
        log(f"not recorded in bench/RESULTS.md ({'--no-record' if args.no_record else 'sluiced did not run; --record to force'}); report in {outdir}/report.md")


if __name__ == "__main__":
    main()
