#!/usr/bin/env python3
"""Connections lost across reloads: sluiced and HAProxy, reloaded with -sf, -x and in master-worker mode.

Clients open one connection per request (`Connection: close`) to a proxy answering
`http-request return`, as fast as they can, while the proxy is reloaded N times; every reset,
empty answer or error is counted. Runs in a network namespace of its own (re-executed under
`unshare -n`, so root is needed) so that `net.ipv4.tcp_migrate_req` can be set without touching
the machine's; traffic stays on that namespace's loopback.

    sudo python3 bench/reload/reloadbench.py --reloads 40 --migrate 0
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT = 18432


def config(kind, stats=None):
    body = 'http-request return status 200 content-type text/plain string "ok"'
    glob = f"global\n  stats socket {stats} level admin expose-fd listeners\n" if stats else "global\n"
    if kind == "haproxy":
        return f"{glob}defaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\nfrontend f\n  bind 127.0.0.1:{PORT}\n  {body}\n"
    return f"{glob}defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{PORT}\n  {body}\n"


def command(proxy, cfg):
    if proxy == "haproxy":
        return [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", cfg]
    exe = os.path.join(ROOT, "target", "release", "sluiced")
    backend = "epoll" if proxy == "sluiced-epoll" else "uring"
    return [exe, "-d", "-f", cfg, "--io-backend", backend]


def wait_port():
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("the proxy did not listen")


def run_case(proxy, mode, reloads, clients, gap):
    tmp = tempfile.mkdtemp(prefix="reloadbench-")
    cfg = os.path.join(tmp, "c.cfg")
    stats = os.path.join(tmp, "admin.sock") if mode == "x" else None
    with open(cfg, "w") as f:
        f.write(config(proxy, stats))
    base = command(proxy, cfg)
    procs = []
    if mode == "master":
        procs.append(subprocess.Popen(base[:1] + ["-W"] + base[1:], stderr=subprocess.DEVNULL))
    else:
        procs.append(subprocess.Popen(base, stderr=subprocess.DEVNULL))
    wait_port()
    stop = False
    counts = {"ok": 0, "reset": 0, "other": 0}
    lock = threading.Lock()

    def client():
        while not stop:
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
                s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                data = b""
                while True:
                    c = s.recv(4096)
                    if not c:
                        break
                    data += c
                s.close()
                key = "ok" if data.startswith(b"HTTP/1.1 200") else "other"
            except ConnectionResetError:
                key = "reset"
            except OSError:
                key = "other"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for _ in range(reloads):
        time.sleep(gap)
        if mode == "master":
            os.kill(procs[0].pid, signal.SIGUSR2)
        else:
            take = ["-x", stats] if stats else []
            procs.append(subprocess.Popen(base + take + ["-sf", str(procs[-1].pid)], stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    stop = True
    for t in threads:
        t.join()
    procs[-1].terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reloads", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--gap", type=float, default=0.15, help="seconds between reloads")
    ap.add_argument("--proxies", default="sluiced,sluiced-epoll,haproxy")
    ap.add_argument("--modes", default="sf,x,master", help="sf: -sf; x: -x <stats socket> -sf; master: -W and SIGUSR2")
    ap.add_argument("--migrate", type=int, default=0, help="net.ipv4.tcp_migrate_req in the namespace")
    args = ap.parse_args()
    if os.environ.get("RELOADBENCH_NETNS") != "1":
        env = dict(os.environ, RELOADBENCH_NETNS="1")
        sys.exit(subprocess.call(["unshare", "-n", sys.executable] + sys.argv, env=env))
    subprocess.check_call(["ip", "link", "set", "lo", "up"])
    subprocess.check_call(["sysctl", "-qw", f"net.ipv4.tcp_migrate_req={args.migrate}"])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit `{commit}`; {args.reloads} reloads, {args.gap}s apart, "
          f"{args.clients} clients, one connection per request; net.ipv4.tcp_migrate_req={args.migrate}\n")
    print("| proxy | reload | requests answered | reset | other failures |")
    print("|---|---|---|---|---|")
    for proxy in args.proxies.split(","):
        for mode in args.modes.split(","):
            c = run_case(proxy, mode, args.reloads, args.clients, args.gap)
            what = {"sf": "-sf", "x": "-x -sf (expose-fd listeners)", "master": "master-worker (-W, SIGUSR2)"}[mode]
            print(f"| {proxy} | {what} | {c['ok']:,} | {c['reset']} | {c['other']} |", flush=True)


if __name__ == "__main__":
    main()
