#!/usr/bin/env python3
"""Memory per idle client connection and cold start: sluiced, HAProxy and nginx in the same run.

Idle memory: each proxy (one worker, pinned to CPU 0, an HTTP frontend in front of an nginx origin
pinned to CPU 1) first serves one request, then this script opens --idle connections to it
(8,000 by default) that send nothing, waits until the proxy has accepted them all (its open
descriptors are counted in /proc) and the resident memory of the proxy's processes (VmRSS, nginx's
master and worker summed) has settled, and reports (RSS with the connections - RSS before) /
connections. An idle client connection is one that has sent no request yet: the state a proxy
holds most of under a connection flood or many idle browsers.

Cold start: from exec to the first proxied response (200 from the origin), with a configuration
of --servers servers (100 backends of 10 servers by default, every server the origin, no health
checks), the median of --repeats starts. The client polls the listening port every millisecond.

Only 127.0.0.1 is used; every port is one the kernel handed out; every child is bounded in time
and killed on exit. `run.sh` installs the tools and builds sluiced; see bench/README.md.
"""

import argparse
import atexit
import datetime
import os
import resource
import shlex
import signal
import socket
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "l4"))
sys.path.insert(0, os.path.join(REPO, "bench", "http"))
import l4bench as l4  # noqa: E402
import httpbench as hb  # noqa: E402
from l4bench import LOAD_CPU, PROXY_CPU, sh  # noqa: E402

PROXIES = ["sluiced", "haproxy", "nginx"]


def rss_kib(root_pid):
    """Resident memory of a process tree (VmRSS of each, summed), in KiB."""
    total = 0
    for pid in l4.tree_pids(root_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def open_fds(root_pid):
    n = 0
    for pid in l4.tree_pids(root_pid):
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return n


def proxy_cfg(name, d, fe_port, origin_port, maxconn, backends=1, per_backend=1):
    """HAProxy's configuration (also sluiced's), or nginx's."""
    if name == "nginx":
        ups = "\n".join(f"    upstream be{b} {{\n" + "".join(f"        server 127.0.0.1:{origin_port};\n" for _ in range(per_backend)) + "    }" for b in range(backends))
        return f"""# Written by bench/extra/extrabench.py
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx.error.log warn;
worker_rlimit_nofile {2 * maxconn + 100};
events {{
    worker_connections {2 * maxconn + 100};
}}
http {{
    access_log off;
    keepalive_timeout 300s;
    client_header_timeout 300s;
{ups}
    server {{
        listen 127.0.0.1:{fe_port} backlog=16384;
        location / {{
            proxy_pass http://be0;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    servers = "".join(
        f"backend be{b}\n" + "".join(f"    server s{b}_{i} 127.0.0.1:{origin_port}\n" for i in range(per_backend)) for b in range(backends)
    )
    return f"""# Written by bench/extra/extrabench.py
global
    nbthread 1
    maxconn {maxconn}

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s

frontend fe_http
    bind 127.0.0.1:{fe_port}
    default_backend be0

{servers}"""


def argv_of(name, d, cfg_path, binary):
    if name == "sluiced":
        return ["taskset", "-c", PROXY_CPU, binary, "-f", cfg_path]
    if name == "haproxy":
        return ["taskset", "-c", PROXY_CPU, "haproxy", "-db", "-f", cfg_path]
    return ["taskset", "-c", PROXY_CPU, "nginx", "-p", d, "-e", os.path.join(d, "nginx.error.log"), "-c", cfg_path]


def write_cfg(name, d, text):
    path = os.path.join(d, "nginx.conf" if name == "nginx" else f"{name}.cfg")
    with open(path, "w") as f:
        f.write(text)
    return path


def idle_memory(name, outdir, origin_port, args, taken):
    d = os.path.join(outdir, f"idle-{name}")
    os.makedirs(d, exist_ok=True)
    port = l4.free_port(taken)
    cfg = write_cfg(name, d, proxy_cfg(name, d, port, origin_port, args.idle + 1000))
    p = l4.spawn(argv_of(name, d, cfg, args.sluiced), f"idle-{name}", d)
    try:
        hb.wait_http(p, port)
    except Exception as e:  # noqa: BLE001
        return {"error": f"did not serve: {e}; {l4.tail(p.bench_err)}"}
    time.sleep(0.5)
    before = rss_kib(p.pid)
    fds_before = open_fds(p.pid)
    conns = []
    try:
        for _ in range(args.idle):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.connect(("127.0.0.1", port))
            conns.append(s)
        deadline = time.time() + 30
        while open_fds(p.pid) < fds_before + args.idle and time.time() < deadline:
            time.sleep(0.1)
        accepted = open_fds(p.pid) - fds_before
        # Settled: two readings 0.5 s apart within 1%.
        last = rss_kib(p.pid)
        for _ in range(20):
            time.sleep(0.5)
            now = rss_kib(p.pid)
            if abs(now - last) <= max(1, last // 100):
                break
            last = now
        after = rss_kib(p.pid)
        alive = p.poll() is None
    finally:
        for s in conns:
            s.close()
        l4.stop(p)
    if not alive:
        return {"error": "exited with the connections open: " + l4.tail(p.bench_err)}
    return {"before_kib": before, "after_kib": after, "accepted": accepted, "bytes_per_conn": (after - before) * 1024 / max(1, args.idle)}


def cold_start(name, outdir, origin_port, args, taken):
    d = os.path.join(outdir, f"cold-{name}")
    os.makedirs(d, exist_ok=True)
    per = 10
    times = []
    for r in range(args.repeats):
        port = l4.free_port(taken)
        cfg = write_cfg(name, d, proxy_cfg(name, d, port, origin_port, 4096, backends=max(1, args.servers // per), per_backend=per))
        t0 = time.perf_counter()
        p = l4.spawn(argv_of(name, d, cfg, args.sluiced), f"cold-{name}-{r}", d)
        ok = False
        while time.perf_counter() - t0 < 10 and p.poll() is None:
            try:
                status, _ = hb.http_get(port, timeout=1.0, close=True)
                if status == 200:
                    ok = True
                    break
            except OSError:
                time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        l4.stop(p)
        if not ok:
            return {"error": "no proxied response within 10 s: " + l4.tail(p.bench_err)}
        times.append(elapsed * 1000)
    return {"ms": statistics.median(times), "min": min(times), "max": max(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--idle", type=int, default=8000, help="idle client connections (default 8000)")
    ap.add_argument("--servers", type=int, default=1000, help="servers in the cold-start configuration (default 1000)")
    ap.add_argument("--repeats", type=int, default=5, help="cold starts per proxy (median reported)")
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target", "release", "sluiced"))
    ap.add_argument("--budget", type=int, default=600)
    ap.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    args = ap.parse_args()
    proxies = [p for p in args.proxies.split(",") if p]
    need = args.idle * 2 + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    if min(need, hard) < need:
        sys.exit(f"need {need} file descriptors, the hard limit is {hard}: lower --idle")
    l4.LIFETIME[0] = args.budget
    atexit.register(l4.stop_all)
    signal.signal(signal.SIGTERM, l4.on_signal)
    signal.signal(signal.SIGALRM, l4.on_alarm)
    signal.alarm(args.budget)
    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(REPO, "bench", "out", "extra-" + started.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    taken = set()
    origin_port = l4.free_port(taken)
    od = os.path.join(outdir, "origin")
    os.makedirs(od, exist_ok=True)
    with open(os.path.join(od, "nginx.conf"), "w") as f:
        f.write(hb.origin_cfg(od, origin_port))
    origin = l4.spawn(["taskset", "-c", LOAD_CPU, "nginx", "-p", od, "-e", os.path.join(od, "nginx.error.log"), "-c", os.path.join(od, "nginx.conf")], "origin", od)
    hb.wait_http(origin, origin_port)
    idle = {n: idle_memory(n, outdir, origin_port, args, taken) for n in proxies}
    cold = {n: cold_start(n, outdir, origin_port, args, taken) for n in proxies}
    commit = sh("git -C " + REPO + " rev-parse --short HEAD")
    lines = [
        f"### Idle memory and cold start, {started:%Y-%m-%d %H:%M} UTC, commit {commit}",
        "",
        l4.machine_line(None).removeprefix("- "),
        f"Command: `{shlex.join(['bench/extra/run.sh'] + sys.argv[1:])}`.",
        f"Proxies pinned to CPU {PROXY_CPU} (one worker), origin (nginx) to CPU {LOAD_CPU}. Versions: "
        + "; ".join(v for v in [sh(args.sluiced + " -v | head -1"), sh("haproxy -v | head -1"), sh("nginx -v 2>&1")] if v),
        "",
        f"| proxy | RSS before (KiB) | RSS with {args.idle} idle conns (KiB) | accepted | bytes per idle conn | cold start ms ({args.servers} servers; median, min-max of {args.repeats}) |",
        "|---|---|---|---|---|---|",
    ]
    for n in proxies:
        i, c = idle[n], cold[n]
        mem = f"{i['before_kib']} | {i['after_kib']} | {i['accepted']} | {i['bytes_per_conn']:.0f}" if "error" not in i else f"n/a | n/a | n/a | {i['error'][:80]}"
        cs = f"{c['ms']:.1f} ({c['min']:.1f}-{c['max']:.1f})" if "error" not in c else c["error"][:80]
        lines.append(f"| {n} | {mem} | {cs} |")
    s, h = idle.get("sluiced", {}), idle.get("haproxy", {})
    if "bytes_per_conn" in s and "bytes_per_conn" in h and h["bytes_per_conn"] > 0:
        lines += ["", f"Ratio sluiced / HAProxy bytes per idle connection: {s['bytes_per_conn'] / h['bytes_per_conn']:.2f} (bar: at most 0.5)."]
    if "ms" in cold.get("sluiced", {}):
        lines += [f"sluiced cold start: {cold['sluiced']['ms']:.1f} ms (bar: under 20 ms)."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text)
    if args.record:
        with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
