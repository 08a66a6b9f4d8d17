#!/usr/bin/env python3
"""Compression benchmark: sluiced, HAProxy and nginx gzip the same HTML page, side by side, in one run.

The origin is an nginx of its own pinned to CPU 1 that serves one page of HTML (about 16 KB,
`Content-Length`, uncompressed). Each proxy runs pinned to CPU 0 with one worker/thread and
compresses `text/html` with gzip at its default level: sluiced with `compression algo gzip`
(flate2's Rust deflate at level 1, `tune.comp.maxlevel`'s default), HAProxy with the same lines
(Debian builds it with libslz, its own fast compressor), nginx with `gzip on` and
`gzip_comp_level 1`. The load is `wrk -t1 -c50` on CPU 1, keep-alive, with
`Accept-Encoding: gzip` ("gzip") and without it ("plain": the same page passed as it is, for what
compressing adds). Figures per proxy: requests per second, the proxy's CPU per request, and the
bytes of one compressed answer (a faster compressor may compress less). Only 127.0.0.1 is used;
every child is bounded in time and killed on exit. The process, port and CPU helpers are
bench/l4/l4bench.py's. Usage: bench/http/compress.sh [--repeats 3] [--seconds 5] (see --help).
"""

import argparse
import atexit
import datetime
import gzip
import os
import shlex
import signal
import socket
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "l4"))
sys.path.insert(0, os.path.join(REPO, "bench", "http"))
import l4bench as l4  # noqa: E402
from l4bench import LOAD_CPU, PROXY_CPU, fmt, log, med, ratio, sh  # noqa: E402
import httpbench  # noqa: E402
from httpbench import WRK_LUA, wrk  # noqa: E402

PROXIES = ["sluiced", "haproxy", "nginx"]
TESTS = [("gzip", "Accept-Encoding: gzip"), ("plain", "no Accept-Encoding")]


def page():
    """About 16 KB of HTML-like text: repetitive as real markup is, not a single repeated line."""
    rows = [f'<tr class="row{i % 7}"><td>{i}</td><td>item {i * 7919 % 1000}</td><td><a href="/items/{i}">details</a></td></tr>\n' for i in range(180)]
    return "<!doctype html>\n<html><head><title>bench</title></head><body><table>\n" + "".join(rows) + "</table></body></html>\n"


def origin_cfg(d, port):
    """The HTTP harness's origin, serving `page.html` from `d` uncompressed."""
    return httpbench.origin_cfg(d, port, location=f"        types {{ text/html html; }}\n        gzip off;\n        root {d};\n        location / {{ try_files /page.html =404; }}\n")


def haproxy_cfg(fe_port, origin_port):
    """Also sluiced's: the HTTP harness's configuration, compressing HTML in the frontend."""
    return httpbench.haproxy_cfg(fe_port, origin_port, frontend_lines="    compression algo gzip\n    compression type text/html\n")


def nginx_cfg(d, fe_port, origin_port):
    return httpbench.nginx_proxy_cfg(d, fe_port, origin_port, http_lines="    gzip on;\n    gzip_comp_level 1;\n    gzip_types text/html;\n")


def fetch(port, gz):
    """One GET / through `port`: (status, head lower-cased, body bytes as framed, de-chunked)."""
    req = "GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n" + ("Accept-Encoding: gzip\r\n" if gz else "") + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(req.encode())
        got = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
    head, _, body = got.partition(b"\r\n\r\n")
    head = head.decode("latin-1").lower()
    if "transfer-encoding: chunked" in head:
        out, rest = b"", body
        while True:
            line, _, rest = rest.partition(b"\r\n")
            n = int(line.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        body = out
    return int(head.split()[1]), head, body


def check(port, want):
    """None when both a gzip and a plain GET through `port` give the page; else why not."""
    try:
        status, head, body = fetch(port, True)
        if status != 200 or "content-encoding: gzip" not in head or gzip.decompress(body).decode() != want:
            return f"the gzip GET answered {status}, {len(body)} bytes, head {head[:200]!r}"
        status, head, body = fetch(port, False)
        if status != 200 or "content-encoding" in head or body.decode() != want:
            return f"the plain GET answered {status}, {len(body)} bytes"
    except (OSError, ValueError, EOFError) as e:
        return f"GET failed: {e}"
    return None


def wait_ready(p, port, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    why = "not listening"
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return f"exited with status {p.returncode}: {l4.tail(p.bench_err)}"
        if l4.listening(port):
            why = check(port, want)
            if why is None:
                return None
        time.sleep(0.05)
    return why


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target/release/sluiced"))
    ap.add_argument("--loadgen", default=os.path.join(REPO, "target/release/sluiced-loadgen"))
    ap.add_argument("--retries", type=int, default=2, help="times a measurement during which the host moved the CPUs is taken again")
    ap.add_argument("--wait-idle", type=int, default=0)
    ap.add_argument("--budget", type=int, default=600)
    ap.add_argument("--no-record", action="store_true", help="never touch bench/RESULTS.md")
    args = ap.parse_args()
    args.threads = 1
    proxies = [p for p in args.proxies.split(",") if p]
    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(REPO, "bench", "out", f"compress-{started:%Y%m%d-%H%M%S}")
    os.makedirs(outdir, exist_ok=True)
    commit = sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD")
    if sh(f"git -C {shlex.quote(REPO)} status --porcelain --untracked-files=no"):
        commit += " (with uncommitted changes)"
    atexit.register(l4.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, l4.on_signal)
    signal.signal(signal.SIGALRM, l4.on_alarm)
    signal.alarm(args.budget)
    l4.LIFETIME[0] = args.budget + 60
    if os.access(args.loadgen, os.X_OK):
        l4.LOADGEN["path"] = args.loadgen
    idle = l4.wait_idle(args.wait_idle)
    cost = l4.syscall_cost()
    lua = os.path.join(outdir, "report.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    want = page()
    taken = set()
    configs = {}

    origin_port = l4.free_port(taken)
    d = os.path.join(outdir, "origin")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "page.html"), "w") as f:
        f.write(want)
    text = origin_cfg(d, origin_port)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(text)
    configs["origin: nginx.conf"] = text
    origin = l4.spawn(["taskset", "-c", LOAD_CPU, "nginx", "-p", d + "/", "-e", os.path.join(d, "nginx.error.log"), "-c", os.path.join(d, "nginx.conf")], "origin", outdir)
    deadline = time.monotonic() + 5
    while not l4.listening(origin_port):
        if time.monotonic() > deadline or origin.poll() is not None:
            raise SystemExit(f"origin nginx did not start: {l4.tail(origin.bench_err)}")
        time.sleep(0.05)

    running, unavailable = {}, {}
    for p in proxies:
        port = l4.free_port(taken)
        d = os.path.join(outdir, p)
        os.makedirs(d, exist_ok=True)
        if p in ("sluiced", "haproxy"):
            text, cfg = haproxy_cfg(port, origin_port), os.path.join(d, f"{p}.cfg")
            argv = [args.sluiced, "-d", "-f", cfg] if p == "sluiced" else ["haproxy", "-db", "-f", cfg]
        else:
            text, cfg = nginx_cfg(d, port, origin_port), os.path.join(d, "nginx.conf")
            argv = ["nginx", "-p", d + "/", "-e", os.path.join(d, "nginx.error.log"), "-c", cfg]
        with open(cfg, "w") as f:
            f.write(text)
        configs[f"{p}: {os.path.basename(cfg)}"] = text
        proc = l4.spawn(["taskset", "-c", PROXY_CPU] + argv, p, outdir)
        why = wait_ready(proc, port, want)
        if why:
            unavailable[p] = why
            log(f"{p}: not available: {why}")
            l4.stop(proc)
            l4.CHILDREN.remove(proc)
            continue
        size = len(fetch(port, True)[2])
        running[p] = (proc, port, size)
        log(f"{p}: ready (pid {proc.pid}, port {port}); one gzip answer is {size} bytes for {len(want)}")
    if not running:
        raise SystemExit("no proxy could be started")

    results = {p: {t: [] for t, _ in TESTS} for p in running}
    moved = {p: 0 for p in running}
    order = list(running)
    for rep in range(args.repeats):
        for p in order[rep % len(order) :] + order[: rep % len(order)]:
            proc, port, _ = running[p]
            for t, title in TESTS:
                label = f"[{rep + 1}/{args.repeats}] {p:8} {t}"
                headers = ["Accept-Encoding: gzip"] if t == "gzip" else []
                r = l4.again_if_moved(lambda: wrk(proc, port, args, False, lua, outdir, f"{p}-{t}", headers), args.retries, moved, p, label)
                results[p][t].append(r)
                log(f"{label:28} {r['rps']:9.0f} req/s, {r['proxy_cores']:.3f} busy cores, {r['us_per_req']:.2f} µs CPU/req, {r['errors']} errors")
    l4.stop_all()

    meds = {p: {t: {k: med(results[p][t], k) for k in ("rps", "us_per_req", "p99_us", "proxy_cores")} for t, _ in TESTS} for p in running}
    lines = [
        f"## HTTP compression: sluiced vs HAProxy vs nginx ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Commit `{commit}`. Idle before: CPU0 {idle[0]:.2f}, CPU1 {idle[1]:.2f}.",
        "",
        l4.machine_line(cost),
        "",
        f"Command: `bench/http/compress.sh {' '.join(shlex.quote(a) for a in sys.argv[1:])}`; "
        f"{args.repeats} repetitions of {args.seconds} s per proxy and test, medians; the page is {len(want):,} bytes of HTML.",
        "",
        "| proxy | gzip req/s | gzip µs CPU/req | plain req/s | plain µs CPU/req | compressing adds, µs/req | gzip answer, bytes | re-measured (CPUs moved) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in running:
        g, pl = meds[p]["gzip"], meds[p]["plain"]
        lines.append(
            f"| {p} | {g['rps']:.0f} | {fmt(g['us_per_req'])} | {pl['rps']:.0f} | {fmt(pl['us_per_req'])} | {fmt(g['us_per_req'] - pl['us_per_req'])} | {running[p][2]:,} | {moved[p]} |"
        )
    lines.append("")
    if "sluiced" in running:
        for peer in ("haproxy", "nginx"):
            if peer in running:
                lines.append(
                    f"- sluiced / {peer}, CPU per gzip request: **{fmt(ratio(meds['sluiced']['gzip']['us_per_req'], meds[peer]['gzip']['us_per_req']), 3)}**; "
                    f"per plain request: {fmt(ratio(meds['sluiced']['plain']['us_per_req'], meds[peer]['plain']['us_per_req']), 3)}; "
                    f"answer size: {fmt(ratio(running['sluiced'][2], running[peer][2]), 3)}"
                )
    for p, why in unavailable.items():
        lines.append(f"- {p}: not measured: {why}")
    lines += ["", "Commands, in order:", "", "```"] + l4.COMMANDS + ["```", ""]
    for name, text in configs.items():
        lines += [f"`{name}`:", "", "```", text.rstrip(), "```", ""]
    text = "\n".join(lines)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    if "sluiced" in running and not args.no_record:
        with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as f:
            f.write("\n" + text + "\n")
        log("appended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
