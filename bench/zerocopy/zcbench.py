#!/usr/bin/env python3
"""Zero-copy body sends (`tune.uring.send-zc`) against plain sends, in one run.

Three sluiced processes (io_uring backend, one worker on CPU 0) forward the same large responses
from an nginx origin (CPU 1) to a client (curl, CPU 1): `tune.uring.send-zc off`, `auto` and
`always`. In interleaved rounds each downloads a 64 MiB file --downloads times; the figure is the
proxy's CPU time per GiB (from /proc/PID/task/*/schedstat), median over the rounds, and the
exporter's zero-copy counters. With --veth the client runs in a network namespace this script
makes, across a veth pair, instead of on loopback (needs root; removed at the end).

It answers where zero-copy pays on this machine, not whether it pays on a real NIC: the kernel
copies at delivery to a local socket, on loopback and across a veth pair alike, and reports it.
Usage: bench/zerocopy/zcbench.py [--rounds 5] [--downloads 4] [--veth] [--no-record]
"""
import argparse
import glob
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "l4"))
import l4bench as l4  # noqa: E402  (machine_line)
SLUICED = os.path.join(REPO, "target", "release", "sluiced")
MODES = ("off", "auto", "always")
FILE_MB = 64


def wait_port(host, port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{host}:{port} never opened")


def cpu_ns(pid):
    # schedstat's nanoseconds, not l4bench's proc_cpu_seconds (clock ticks): one proxy's window
    # in a round is a fraction of a second, where 10 ms ticks would be a few percent.
    return sum(int(open(t + "/schedstat").read().split()[0]) for t in glob.glob(f"/proc/{pid}/task/*"))


def counters(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    get = lambda n: int(re.search(rf"^{n} (\d+)$", text, re.M).group(1))
    return get("sluiced_process_zero_copy_sends_total"), get("sluiced_process_zero_copy_copied_total")


def sh(*a):
    subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--downloads", type=int, default=4, help="64 MiB downloads per proxy per round")
    ap.add_argument("--veth", action="store_true", help="the client in a network namespace across a veth pair")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    for tool in ("nginx", "curl", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    d = tempfile.mkdtemp(prefix="sluiced-zc-")
    procs = []
    ns = None
    try:
        os.makedirs(f"{d}/www")
        with open(f"{d}/www/big", "wb") as f:
            f.write(os.urandom(FILE_MB << 20))
        taken = set()
        origin = l4.free_port(taken)
        with open(f"{d}/origin.conf", "w") as f:
            f.write(
                f"worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/nginx.log warn;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{ access_log off; sendfile on; server {{ listen 127.0.0.1:{origin}; root {d}/www; }} }}\n"
            )
        procs.append(subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", f"{d}/origin.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port("127.0.0.1", origin)
        host, client = "127.0.0.1", []
        if args.veth:
            ns = f"slzc{os.getpid()}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", f"{ns}a", "type", "veth", "peer", "name", f"{ns}b", "netns", ns)
            sh("ip", "addr", "add", "10.213.0.1/30", "dev", f"{ns}a")
            sh("ip", "link", "set", f"{ns}a", "up")
            sh("ip", "-n", ns, "addr", "add", "10.213.0.2/30", "dev", f"{ns}b")
            sh("ip", "-n", ns, "link", "set", f"{ns}b", "up")
            host, client = "10.213.0.1", ["ip", "netns", "exec", ns]
        pids, ports, metrics = {}, {}, {}
        for m in MODES:
            ports[m], metrics[m] = l4.free_port(taken), l4.free_port(taken)
            cfg = (
                f"global\n  nbthread 1\n  tune.uring.send-zc {m}\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
                f"frontend f\n  bind {host}:{ports[m]}\n  default_backend b\nbackend b\n  server o 127.0.0.1:{origin}\n"
                f"frontend m\n  bind 127.0.0.1:{metrics[m]}\n  http-request use-service prometheus-exporter\n"
            )
            with open(f"{d}/{m}.cfg", "w") as f:
                f.write(cfg)
            p = subprocess.Popen(["taskset", "-c", "0", SLUICED, "-f", f"{d}/{m}.cfg", "--io-backend", "uring"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            pids[m] = p.pid
            wait_port("127.0.0.1", metrics[m])
        per_gib = {m: [] for m in MODES}
        for r in range(args.rounds):
            for m in MODES:
                c0 = cpu_ns(pids[m])
                for _ in range(args.downloads):
                    out = subprocess.run(client + ["taskset", "-c", "1", "curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", f"http://{host}:{ports[m]}/big"], capture_output=True, text=True, check=True).stdout
                    if int(out) != FILE_MB << 20:
                        raise SystemExit(f"{m}: downloaded {out} bytes")
                c1 = cpu_ns(pids[m])
                per_gib[m].append((c1 - c0) / 1e6 / (args.downloads * FILE_MB / 1024))
                print(f"round {r} {m}: {per_gib[m][-1]:.0f} ms per GiB", flush=True)
        path = "veth pair to a network namespace" if args.veth else "loopback"
        med = {m: statistics.median(per_gib[m]) for m in MODES}
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        cmd = "bench/zerocopy/zcbench.py " + " ".join(sys.argv[1:])
        lines = [
            f"### Zero-copy sends over {path}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {rev}",
            "",
            l4.machine_line(None),
            "",
            f"`{cmd}`: {args.rounds} interleaved rounds of {args.downloads} downloads of {FILE_MB} MiB per proxy (sluiced on CPU 0, nginx origin and curl on CPU 1).",
            "",
            "| tune.uring.send-zc | proxy CPU per GiB (median) | spread | / off | zero-copy sends | reported copied |",
            "|---|---|---|---|---|---|",
        ]
        for m in MODES:
            s, c = counters(metrics[m])
            lines.append(f"| {m} | {med[m]:.0f} ms | {min(per_gib[m]):.0f}-{max(per_gib[m]):.0f} | {med[m] / med['off']:.3f} | {s:,} | {c:,} |")
        report = "\n".join(lines) + "\n"
        print(report)
        if not args.no_record:
            with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as f:
                f.write("\n" + report)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if ns:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
