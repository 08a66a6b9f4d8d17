#!/usr/bin/env python3
"""L4 benchmark: sluiced, HAProxy and nginx `stream` side by side, in the same run.

Each proxy runs pinned to CPU 0 with one worker/thread; the origins (iperf3 -s, the loadgen's echo
server) and the load (iperf3 -c, `sluiced-loadgen churn`) run pinned to CPU 1. Only 127.0.0.1 is
used, every port is one the kernel handed out as free, every child is bounded in time and killed
on exit. `run.sh` installs the tools and builds the binaries, then runs this script; see
bench/README.md for the figures.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "0"
LOAD_CPU = "1"
# "sluiced" runs its default backend (`auto`), "sluiced-epoll" the same with `--io-backend epoll`.
PROXIES = ["sluiced", "sluiced-epoll", "haproxy", "nginx"]

CHILDREN = []  # Popen objects, each the leader of its own process group
LIFETIME = [960]  # seconds: every long-running child runs under `timeout`, in case this script is killed
COMMANDS = []  # every command line run, in order, for the report


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def spawn(argv, name, outdir, stdout=None):
    """Starts a long-running child in its own process group, stderr to <outdir>/<name>.err, bounded in time."""
    argv = ["timeout", "-k", "5", str(LIFETIME[0])] + argv
    COMMANDS.append(shlex.join(argv))
    err = open(os.path.join(outdir, name + ".err"), "wb")
    p = subprocess.Popen(argv, stdout=stdout or subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    p.bench_name = name
    p.bench_err = err.name
    CHILDREN.append(p)
    return p


def run(argv, timeout):
    """Runs a bounded command, returns (rc, stdout, stderr)."""
    COMMANDS.append(shlex.join(argv))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout or "", f"timed out after {timeout} s"


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=3)


def stop_all():
    while CHILDREN:
        stop(CHILDREN.pop())


def on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")


def on_alarm(_signum, _frame):
    raise SystemExit("time budget exhausted (--budget): stopping")


# ---------------------------------------------------------------- ports and readiness


def free_port(taken):
    """A port the kernel says is free on 127.0.0.1 (bind port 0), not already handed out by us."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def listening(port):
    """True if something listens on 127.0.0.1:port or 0.0.0.0:port (read from /proc/net/tcp)."""
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] in want and fields[3] == "0A":
                return True
    return False


def echo_roundtrip(port, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"ping-sluiced-bench")
        got = b""
        while len(got) < 18:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
    return got == b"ping-sluiced-bench"


def wait_ready(p, ports, echo_port, timeout=5.0):
    """Waits until every port listens and an echo goes through echo_port. Returns None or why not."""
    deadline = time.monotonic() + timeout
    last = "not listening"
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return f"exited with status {p.returncode}: {tail(p.bench_err)}"
        if all(listening(pt) for pt in ports):
            try:
                if echo_port is None or echo_roundtrip(echo_port):
                    return None
                last = "echo through it came back wrong"
            except OSError as e:
                last = f"echo through it failed: {e}"
        time.sleep(0.05)
    return f"not ready after {timeout} s ({last}): {tail(p.bench_err)}"


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        return " | ".join(lines[-n:]) or "(no output)"
    except OSError:
        return "(no output)"


# ---------------------------------------------------------------- CPU accounting


def tree_pids(root):
    """root and all its descendants (nginx: master + worker)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_cpu_seconds(root):
    """utime + stime of root and its descendants (all threads), in seconds."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def cpu_busy_seconds(cpu):
    """Non-idle time of one CPU (user, nice, system, irq, softirq, steal) from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def cpus_busy(secs=1.0):
    """Busy fraction of CPU 0 and CPU 1 over secs, whatever runs there."""
    a = [cpu_busy_seconds(c) for c in (PROXY_CPU, LOAD_CPU)]
    time.sleep(secs)
    return [(cpu_busy_seconds(c) - x) / secs for c, x in zip((PROXY_CPU, LOAD_CPU), a)]


def wait_idle(max_wait, threshold=0.15):
    """Samples the CPUs until both are below threshold busy or max_wait seconds passed; returns the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = cpus_busy()
        if max(busy) < threshold or time.monotonic() >= deadline:
            return busy
        log(f"machine busy (CPU0 {busy[0]:.2f}, CPU1 {busy[1]:.2f}): waiting for it to be idle")


# ---------------------------------------------------------------- placement of the two CPUs
#
# On this VM the host moves the two virtual CPUs between nearby cores (a cache line crosses from
# one to the other and back in about 60-130 ns) and distant ones (about 450-500 ns), and back,
# every few seconds to minutes, without the guest seeing it in /proc/stat. Every loopback request
# crosses between the proxy's CPU and the load's several times, so the same proxy costs about 4 µs
# more CPU per keep-alive request when the CPUs are far apart (bench/RESULTS.md, "Where the harness's noise
# comes from"). Each measurement therefore samples the round trip during the run, and the report
# compares proxies measured in the same placement.

LOADGEN = {"path": None}  # sluiced-loadgen, which samples the placement and the system call cost; None: neither (set by main())
DISTANCE_INTERVAL_MS = 500
# `cpu-distance` per sample: the fastest of 3 batches of 500 round trips (under 1 ms of both CPUs).
DISTANCE_ARGS = ["--round-trips", "500", "--batches", "3"]
# Two placements are told apart when the slowest sample of a run is at least this many times its
# fastest; the split is then at their geometric mean.
FAR_FACTOR = 3.0


class DistanceSampler:
    """Samples the CPUs' cache-line round trip every DISTANCE_INTERVAL_MS until stopped."""

    def __init__(self, bound_s):
        self.proc = None
        self.samples = []
        if not LOADGEN["path"]:
            return
        n = int(bound_s * 1000 / DISTANCE_INTERVAL_MS) + 1
        argv = ["timeout", "-k", "2", str(int(bound_s) + 5), LOADGEN["path"], "cpu-distance", "--cpus", f"{PROXY_CPU},{LOAD_CPU}", "--samples", str(n)]
        argv += ["--interval-ms", str(DISTANCE_INTERVAL_MS), "--stream"] + DISTANCE_ARGS
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        CHILDREN.append(self.proc)

    def stop(self):
        if self.proc is None:
            return self.samples
        stop(self.proc)
        CHILDREN.remove(self.proc)
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        self.samples = [float(ln.split("=", 1)[1]) for ln in out.splitlines() if ln.startswith("sample_ns=")]
        return self.samples


def syscall_cost():
    """What system calls cost on the proxy's CPU (`sluiced-loadgen syscall-cost`), or None: a dict
    of `syscall_ns` (`getppid`), and `fd_alone_ns` and `fd_shared_ns` (`fcntl` on a descriptor in
    a process of one thread, and of two) where the loadgen gave them.

    Taken once at the start of a run, while the machine is idle. Hosts that show the same CPU
    model to the VM have been seen to differ by half in the first figure (126-135 ns on one,
    196-209 on another), and a proxy makes two to four system calls per keep-alive request, so the
    report gives it beside the CPU's identity. The other two say what a proxy of several threads
    (sluiced) pays per call on a descriptor over one of a single thread (HAProxy with `nbthread
    1`) on this host: 57 ns on the host of 2026-11-23 23:00 UTC (see bench/RESULTS.md)."""
    if not LOADGEN["path"]:
        return None
    try:
        out = subprocess.run(["timeout", "30", LOADGEN["path"], "syscall-cost", "--cpu", str(PROXY_CPU)], capture_output=True, text=True, check=True).stdout
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        return {k: float(fields[k]) for k in ("syscall_ns", "fd_alone_ns", "fd_shared_ns") if k in fields} if "syscall_ns" in fields else None
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None


def machine_line(cost):
    """The report's "Machine" line: CPUs, the CPU's identity as the VM sees it, what system calls cost (`syscall_cost()`'s dict, or None), kernel, compiler."""
    info = {}
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if not ln.strip():
                break  # the first CPU's block is enough
            k, _, v = ln.partition(":")
            info[k.strip()] = v.strip()
    ident = ", ".join(f"{k.replace('cpu ', '')} {info[k]}" for k in ("cpu family", "model", "stepping", "microcode") if k in info)
    cpu = info.get("model name", "?") + (f"; {ident}" if ident else "")
    cost = cost or {}
    call = f"; a system call (`getppid`) costs {cost['syscall_ns']:.0f} ns on CPU {PROXY_CPU}" if "syscall_ns" in cost else ""
    if "fd_alone_ns" in cost and "fd_shared_ns" in cost:
        call += f", one on a descriptor (`fcntl`) {cost['fd_alone_ns']:.0f} ns in a process of one thread and {cost['fd_shared_ns']:.0f} ns in one of two"
    return f"- Machine: {os.cpu_count()} CPUs ({cpu}){call}; Linux {platform.release()}, {sh('rustc --version')}{mitigations()}"


def mitigations(root="/sys/devices/system/cpu/vulnerabilities"):
    """The kernel's speculation mitigations in effect, as "; mitigations: name (what), ...", or "".

    They set what a system call and a return inside the kernel cost (`spec_rstack_overflow`'s
    "Safe RET" makes every kernel return dearer), and a proxy that spends most of a request in
    the kernel pays more of that than one that spends more in user space."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return ""
    out = []
    for name in names:
        try:
            with open(os.path.join(root, name)) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.startswith("Mitigation: "):
            out.append(f"{name} ({text[len('Mitigation: '):].split(';')[0].strip()})")
    return "; mitigations: " + ", ".join(out) if out else ""


def distance_command():
    """The sampler's command line, for the report."""
    return shlex.join([LOADGEN["path"] or "sluiced-loadgen", "cpu-distance", "--cpus", f"{PROXY_CPU},{LOAD_CPU}", "--samples", "N", "--interval-ms", str(DISTANCE_INTERVAL_MS), "--stream"] + DISTANCE_ARGS)


def placement_split(runs):
    """The round trip (ns) that separates near from far over all samples of runs, or None for one placement."""
    xs = [x for r in runs for x in r.get("distance_ns") or []]
    if not xs:
        return None
    lo, hi = min(xs), max(xs)
    return (lo * hi) ** 0.5 if hi >= FAR_FACTOR * lo else None


def placement(run, split):
    """'near', 'far' or 'mixed' (the CPUs moved during the run); 'one' when the harness run saw one placement, '?' unsampled."""
    xs = run.get("distance_ns") or []
    if not xs:
        return "?"
    if split is None:
        return "one"
    far = sum(1 for x in xs if x >= split)
    return "far" if far == len(xs) else "near" if far == 0 else "mixed"


def placement_summary(runs, split, moved):
    """The report's opening lines on placement, shared by the HTTP and L4 reports; with `split`
    None (one placement, or nothing sampled) they are the whole story."""
    xs = [d for x in runs for d in x.get("distance_ns") or []]
    if not xs:
        return ["Placement of the CPUs: not sampled (no sluiced-loadgen).", ""]
    L = [
        f"Placement of the proxy's CPU against the load's: the round trip of a cache line between CPU {PROXY_CPU} and CPU {LOAD_CPU}, "
        f"sampled every {DISTANCE_INTERVAL_MS} ms during each measurement (`{distance_command()}`): {len(xs)} samples, {min(xs):.0f} to {max(xs):.0f} ns."
    ]
    n = sum(moved.values())
    retaken = f"{n} measurement{'s' if n != 1 else ''} during which the CPUs moved {'were' if n != 1 else 'was'} taken again"
    if split is None:
        again = f" ({retaken})" if n else ""
        return L + [f"One placement throughout the measurements kept{again}: the ratios above compare like with like.", ""]
    kinds = {k: sum(1 for x in runs if placement(x, split) == k) for k in ("near", "far", "mixed")}
    L.append(
        f"**The host moved the CPUs during this run.** Split at {split:.0f} ns: {kinds['near']} measurements near, {kinds['far']} far, "
        f"{kinds['mixed']} mixed (the CPUs moved during the measurement; left out below{f'; besides, {retaken}, not counted anywhere' if n else ''}). "
        "Medians over all runs, above, compare proxies measured in different placements; these compare like with like:"
    )
    L.append("")
    return L


def again_if_moved(measure, retries, moved, proxy, label):
    """Runs measure() and, while the host moved the CPUs during it, up to `retries` more times; the last is kept."""
    r = measure()
    for _ in range(retries):
        if placement_split([r]) is None:
            break
        moved[proxy] += 1
        log(f"{label}: the CPUs moved during the measurement ({min(r['distance_ns']):.0f}-{max(r['distance_ns']):.0f} ns): again")
        r = measure()
    return r


class CpuWindow:
    def __init__(self, pid, bound_s=600):
        self.pid = pid
        self.bound_s = bound_s

    def __enter__(self):
        self.sampler = DistanceSampler(self.bound_s)
        self.t0, self.p0, self.c0 = time.monotonic(), proc_cpu_seconds(self.pid), cpu_busy_seconds(PROXY_CPU)
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        self.wall = wall
        self.proxy_cores = (proc_cpu_seconds(self.pid) - self.p0) / wall
        self.cpu0_cores = (cpu_busy_seconds(PROXY_CPU) - self.c0) / wall
        self.proxy_cpu_s = self.proxy_cores * wall
        self.distance_ns = self.sampler.stop()
        return False


# ---------------------------------------------------------------- configurations


def haproxy_cfg(fe_tput, fe_echo, iperf_port, echo_port):
    """Also sluiced's: it reads HAProxy configuration."""
    return f"""# Written by bench/l4/l4bench.py
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response

frontend fe_tput
    bind 127.0.0.1:{fe_tput}
    default_backend be_iperf

frontend fe_churn
    bind 127.0.0.1:{fe_echo}
    default_backend be_echo

backend be_iperf
    server iperf 127.0.0.1:{iperf_port}

backend be_echo
    server echo 127.0.0.1:{echo_port}
"""


def nginx_cfg(d, fe_tput, fe_echo, iperf_port, echo_port, module):
    load = f"load_module {module};\n" if module else ""
    return f"""# Written by bench/l4/l4bench.py
{load}worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx.error.log warn;
worker_rlimit_nofile 16384;

events {{
    worker_connections 4096;
}}

stream {{
    server {{
        listen 127.0.0.1:{fe_tput};
        proxy_pass 127.0.0.1:{iperf_port};
    }}
    server {{
        listen 127.0.0.1:{fe_echo};
        proxy_pass 127.0.0.1:{echo_port};
    }}
}}
"""


def nginx_stream_module():
    """The dynamic stream module's path if nginx was built with --with-stream=dynamic, else None."""
    r = subprocess.run(["nginx", "-V"], capture_output=True, text=True)
    if "--with-stream=dynamic" not in r.stderr:
        return None
    for p in ["/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"]:
        if os.path.exists(p):
            return p
    raise SystemExit("nginx's stream module is dynamic but ngx_stream_module.so is missing (apt-get install libnginx-mod-stream)")


# ---------------------------------------------------------------- measurements


def throughput(proxy, port, secs, reverse):
    argv = ["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(secs), "-J"] + (["-R"] if reverse else [])
    with CpuWindow(proxy.pid, secs + 30) as w:
        rc, out, err = run(argv, timeout=secs + 30)
    try:
        j = json.loads(out)
    except json.JSONDecodeError:
        j = {}
    if rc != 0 or "error" in j or "end" not in j:
        raise RuntimeError(f"iperf3 failed (rc {rc}): {j.get('error') or err.strip()[-300:]}")
    gbps = j["end"]["sum_received"]["bits_per_second"] / 1e9
    per_core = gbps / w.proxy_cores if w.proxy_cores > 0 else 0.0
    return {"gbps": gbps, "proxy_cores": w.proxy_cores, "cpu0_cores": w.cpu0_cores, "gbps_per_core": per_core, "distance_ns": w.distance_ns}


def churn(loadgen, proxy, port, secs, concurrency, payload):
    argv = ["taskset", "-c", LOAD_CPU, loadgen, "churn", "--target", f"127.0.0.1:{port}", "--concurrency", str(concurrency), "--duration", str(secs), "--payload", str(payload)]
    with CpuWindow(proxy.pid, secs + 30) as w:
        rc, out, err = run(argv, timeout=secs + 30)
    kv = dict(x.split("=", 1) for x in out.split() if "=" in x)
    if rc != 0 or "conns_per_sec" not in kv:
        raise RuntimeError(f"churn failed (rc {rc}): {err.strip()[-300:]}")
    conns = int(kv["conns"])
    return {
        "cps": float(kv["conns_per_sec"]),
        "errors": int(kv["errors"]),
        "p50_us": int(kv["p50_us"]),
        "p99_us": int(kv["p99_us"]),
        "proxy_cores": w.proxy_cores,
        "cpu0_cores": w.cpu0_cores,
        "cps_per_core": float(kv["conns_per_sec"]) / w.proxy_cores if w.proxy_cores > 0 else 0.0,
        "us_per_conn": w.proxy_cpu_s * 1e6 / conns if conns else 0.0,
        "distance_ns": w.distance_ns,
    }


def med(rows, key):
    return statistics.median(r[key] for r in rows) if rows else None


# ---------------------------------------------------------------- report


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except subprocess.TimeoutExpired:
        return "?"


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.{nd}f}"


def shared(run):
    """True if CPU 0 was busy well beyond the proxy's own use (measured idle: at most 0.06 beyond)."""
    return run["cpu0_cores"] - run["proxy_cores"] > 0.2


def ratio(a, b):
    return a / b if a is not None and b else None


def tput_bar(r):
    """The L4 throughput bar's verdict on sluiced's Gbit/s per busy core over HAProxy's."""
    return f"Gbit/s per busy proxy core at least HAProxy's: **{'met' if r is not None and r >= 1.0 else 'NOT met'}** ({fmt(r, 3)})"


def churn_bar(r, note=""):
    """The L4 churn bar's verdict on sluiced's conns/s over HAProxy's; `note` goes inside the parentheses."""
    return f"churn at least 0.9 of HAProxy's: **{'met' if r is not None and r >= 0.9 else 'NOT met'}** ({fmt(r, 3)}{note})"


def placement_section(runs, split, results, moved):
    """Where the host had put CPU 0 against CPU 1 during each measurement, and the bars per placement."""
    L = placement_summary(runs, split, moved)
    if split is None:
        return L
    L.append("| proxy | Gbit/s per busy core, near (runs) | far | conns/s, near (runs) | far |")
    L.append("|---|---|---|---|---|")
    per = {}
    for k in ("near", "far"):
        per[k] = {}
        for p, r in results.items():
            t = [x for x in r["tput"] if placement(x, split) == k]
            c = [x for x in r["churn"] if placement(x, split) == k]
            per[k][p] = {"gbps_per_core": med(t, "gbps_per_core"), "nt": len(t), "cps": med(c, "cps"), "nc": len(c)}
    for p in results:
        n, f = per["near"][p], per["far"][p]
        L.append(f"| {p} | {fmt(n['gbps_per_core'])} ({n['nt']}) | {fmt(f['gbps_per_core'])} ({f['nt']}) | {fmt(n['cps'], 0)} ({n['nc']}) | {fmt(f['cps'], 0)} ({f['nc']}) |")
    L.append("")
    for k in ("near", "far"):
        s, h = per[k].get("sluiced"), per[k].get("haproxy")
        if not s or not h:
            continue
        parts = []
        if min(s["nt"], h["nt"]) >= 3:
            parts.append(tput_bar(ratio(s["gbps_per_core"], h["gbps_per_core"])))
        else:
            parts.append(f"Gbit/s per busy core: too few measurements ({min(s['nt'], h['nt'])}; at least 3 needed)")
        if min(s["nc"], h["nc"]) >= 3:
            parts.append(churn_bar(ratio(s["cps"], h["cps"])))
        else:
            parts.append(f"churn: too few measurements ({min(s['nc'], h['nc'])}; at least 3 needed)")
        L.append(f"- Bar, CPUs {k}: " + "; ".join(parts) + ".")
    L.append("")
    return L


def report(args, results, unavailable, commit, started, configs):
    # results[proxy] = {"tput": [...], "rtput": [...], "churn": [...]}
    M = {}
    for p, r in results.items():
        M[p] = {
            "gbps": med(r["tput"], "gbps"),
            "tput_cores": med(r["tput"], "proxy_cores"),
            "tput_cpu0": med(r["tput"], "cpu0_cores"),
            "gbps_per_core": med(r["tput"], "gbps_per_core"),
            "rgbps": med(r["rtput"], "gbps"),
            "rgbps_per_core": med(r["rtput"], "gbps_per_core"),
            "cps": med(r["churn"], "cps"),
            "churn_cores": med(r["churn"], "proxy_cores"),
            "churn_cpu0": med(r["churn"], "cpu0_cores"),
            "cps_per_core": med(r["churn"], "cps_per_core"),
            "us_per_conn": med(r["churn"], "us_per_conn"),
            "p99_us": med(r["churn"], "p99_us"),
            "errors": sum(x["errors"] for x in r["churn"]),
        }
    L = []
    L.append(f"## L4 proxying: sluiced vs HAProxy vs nginx ({started:%Y-%m-%d %H:%M} UTC)")
    L.append("")
    L.append(f"- Date: {started:%Y-%m-%d %H:%M:%S} UTC; commit: `{commit}`")
    L.append(machine_line(args.syscall_cost))
    L.append(f"- Versions: {sh('haproxy -v | head -1')}; {sh('nginx -v 2>&1')}; {sh('iperf3 --version | head -1')}")
    L.append(f"- Harness: `{shlex.join(['bench/l4/run.sh'] + sys.argv[1:])}`")
    L.append(
        f"- Other load: CPU0 {fmt(args.idle_before[0])} and CPU1 {fmt(args.idle_before[1])} busy in the second before the run (should be near 0); "
        f"load average {args.loadavg_before} before, {args.loadavg_after} after"
    )
    L.append(
        f"- Layout: proxy pinned to CPU {PROXY_CPU} (`taskset -c {PROXY_CPU}`), one worker/thread; origins and load pinned to CPU {LOAD_CPU}; "
        f"{args.repeats} runs of each measurement, interleaved across proxies, median shown"
    )
    for p, why in unavailable.items():
        L.append(f"- **{p}: not available** ({why})")
    runs = [x for r in results.values() for k in ("tput", "rtput", "churn") for x in r[k]]
    n_shared = sum(1 for x in runs if shared(x))
    if max(args.idle_before) > 0.15 or n_shared:
        L.append(
            f"- **Warning: the machine was not idle**: in {n_shared} of {len(runs)} runs (marked * below) CPU 0 was busy well above the proxy's own use. "
            "The raw Gbit/s and conns/s of those runs are understated; the per-core figures suffer less."
        )
    L.append("")
    L.append(f"Throughput: `iperf3 -c` for {args.tput_seconds} s through the proxy, client to server" + (" and `-R` server to client." if args.reverse else "."))
    L.append("Busy proxy cores = CPU time (utime+stime of the proxy's processes and threads) / wall time; Gbit/s per core = Gbit/s / busy cores.")
    L.append(f"CPU{PROXY_CPU} busy = the whole CPU {PROXY_CPU} (including softirq time that lands on it), for comparison.")
    L.append("")
    hdr = "| proxy | Gbit/s | busy proxy cores | Gbit/s per busy core | CPU0 busy |"
    sep = "|---|---|---|---|---|"
    if args.reverse:
        hdr += " Gbit/s -R | Gbit/s per core -R |"
        sep += "---|---|"
    L += [hdr, sep]
    for p in results:
        m = M[p]
        row = f"| {p} | {fmt(m['gbps'])} | {fmt(m['tput_cores'], 3)} | {fmt(m['gbps_per_core'])} | {fmt(m['tput_cpu0'], 3)} |"
        if args.reverse:
            row += f" {fmt(m['rgbps'])} | {fmt(m['rgbps_per_core'])} |"
        L.append(row)
    L.append("")
    L.append(
        f"Connection churn: `sluiced-loadgen churn`, {args.concurrency} concurrent loops of connect, write {args.payload} bytes, read the echo, close, "
        f"for {args.churn_seconds} s."
    )
    L.append("")
    L.append("| proxy | conns/s | busy proxy cores | conns/s per busy core | proxy CPU µs per conn | CPU0 busy | p99 latency µs | errors (all runs) |")
    L.append("|---|---|---|---|---|---|---|---|")
    for p in results:
        m = M[p]
        L.append(
            f"| {p} | {fmt(m['cps'], 0)} | {fmt(m['churn_cores'], 3)} | {fmt(m['cps_per_core'], 0)} | {fmt(m['us_per_conn'], 1)} | "
            f"{fmt(m['churn_cpu0'], 3)} | {fmt(m['p99_us'], 0)} | {m['errors']} |"
        )
    L.append("")
    if "sluiced" in M:
        L.append("Ratios (sluiced / other; above 1 is better for sluiced, except CPU µs per conn where below 1 is better):")
        L.append("")
        L.append("| figure | sluiced/HAProxy | sluiced/nginx |")
        L.append("|---|---|---|")
        s = M["sluiced"]
        keys = [("gbps", "Gbit/s"), ("gbps_per_core", "Gbit/s per busy core"), ("cps", "conns/s"), ("cps_per_core", "conns/s per busy core"), ("us_per_conn", "CPU µs per conn")]
        if args.reverse:
            keys[2:2] = [("rgbps", "Gbit/s -R"), ("rgbps_per_core", "Gbit/s per busy core -R")]
        for k, label in keys:
            L.append(f"| {label} | {fmt(ratio(s[k], M.get('haproxy', {}).get(k)), 3)} | {fmt(ratio(s[k], M.get('nginx', {}).get(k)), 3)} |")
        L.append("")
        if "haproxy" in M:
            r1 = ratio(s["gbps_per_core"], M["haproxy"]["gbps_per_core"])
            r2 = ratio(s["cps"], M["haproxy"]["cps"])
            r3 = ratio(s["cps_per_core"], M["haproxy"]["cps_per_core"])
            L.append(f"Bar: {tput_bar(r1)}; {churn_bar(r2, f'; per busy core {fmt(r3, 3)}, the figure to trust if runs are marked *')}.")
            L.append("")
    split = placement_split(runs)
    L += placement_section(runs, split, results, args.moved)
    L.append("Every run (proxy: figure per repetition; * = CPU 0 shared with other work during that run):")
    L.append("")

    def each(xs, key, nd, star=False):
        return ", ".join(fmt(x[key], nd) + ("*" if star and shared(x) else "") for x in xs)

    for p, r in results.items():
        L.append(
            f"- {p}: CPUs (throughput) {', '.join(placement(x, split) for x in r['tput'])}; (churn) {', '.join(placement(x, split) for x in r['churn'])}; "
            f"Gbit/s {each(r['tput'], 'gbps', 2, True)}; busy cores {each(r['tput'], 'proxy_cores', 3)}; "
            + (f"-R Gbit/s {each(r['rtput'], 'gbps', 2, True)}; busy cores {each(r['rtput'], 'proxy_cores', 3)}; " if args.reverse else "")
            + f"conns/s {each(r['churn'], 'cps', 0, True)}; busy cores {each(r['churn'], 'proxy_cores', 3)}"
        )
    L.append("")
    L += commands_and_configs(configs)
    return "\n".join(L), M


def commands_and_configs(configs):
    """The report's closing part: every command line run (each once, in order) and every proxy
    configuration, folded. Shared with the HTTP bench."""
    L = ["Command lines (ports as handed out by the kernel in this run):", "", "```sh"]
    seen = []
    for c in COMMANDS:
        if c not in seen:
            seen.append(c)
    L += seen
    L += ["```", ""]
    for name, text in configs.items():
        L += [f"<details><summary>{name}</summary>", "", "```", text.rstrip(), "```", "", "</details>", ""]
    return L


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated subset of sluiced,sluiced-epoll,haproxy,nginx")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tput-seconds", type=int, default=10)
    ap.add_argument("--churn-seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--payload", type=int, default=16)
    ap.add_argument("--reverse", action="store_true", help="also measure iperf3 -R (server to client)")
    ap.add_argument("--sluiced", default=os.path.join(REPO, "target/release/sluiced"))
    ap.add_argument("--loadgen", default=os.path.join(REPO, "target/release/sluiced-loadgen"), help="the churn load, and the sampler of the CPUs' placement")
    ap.add_argument("--retries", type=int, default=2, help="times a measurement during which the host moved the CPUs is taken again")
    ap.add_argument("--out", default=None, help="directory for configs, logs and the report (default bench/out/l4-<date>)")
    rec = ap.add_mutually_exclusive_group()
    rec.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md even without sluiced")
    rec.add_argument("--no-record", action="store_true", help="never touch bench/RESULTS.md")
    ap.add_argument("--budget", type=int, default=900, help="hard time limit for the whole run, seconds")
    ap.add_argument("--wait-idle", type=int, default=0, help="wait up to this many seconds for both CPUs to be idle before starting")
    args = ap.parse_args()

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    for p in proxies:
        if p not in PROXIES:
            ap.error(f"unknown proxy {p}")
    if os.cpu_count() < 2:
        raise SystemExit("needs 2 CPUs: one for the proxy, one for the origins and the load")

    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = args.out or os.path.join(REPO, "bench", "out", f"l4-{started:%Y%m%d-%H%M%S}")
    os.makedirs(outdir, exist_ok=True)
    commit = sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD")
    if sh(f"git -C {shlex.quote(REPO)} status --porcelain --untracked-files=no"):
        commit += " (with uncommitted changes)"

    atexit.register(stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.budget)

    if os.access(args.loadgen, os.X_OK):
        LOADGEN["path"] = args.loadgen
    args.loadavg_before = loadavg()
    args.idle_before = wait_idle(args.wait_idle)
    args.syscall_cost = syscall_cost()
    if max(args.idle_before) > 0.15:
        log(f"warning: the machine is busy (CPU0 {args.idle_before[0]:.2f}, CPU1 {args.idle_before[1]:.2f}): figures will be low and noisy")

    taken = set()
    iperf_port = free_port(taken)
    bound = args.budget + 60
    LIFETIME[0] = bound
    # Origins, pinned to the load CPU.
    iperf = spawn(["taskset", "-c", LOAD_CPU, "iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)], "iperf3-server", outdir)
    echo = spawn(
        ["taskset", "-c", LOAD_CPU, args.loadgen, "echo-server", "--listen", "127.0.0.1:0", "--print-port", "--max-seconds", str(bound)],
        "echo-server",
        outdir,
        stdout=subprocess.PIPE,
    )
    line = echo.stdout.readline().strip()
    if not line.isdigit():
        raise SystemExit(f"echo server did not print its port: {tail(echo.bench_err)}")
    echo_port = int(line)
    taken.add(echo_port)
    why = wait_ready(iperf, [iperf_port], None)
    if why:
        raise SystemExit(f"iperf3 -s: {why}")
    if not echo_roundtrip(echo_port):
        raise SystemExit("the echo server does not echo")

    # Proxies, pinned to the proxy CPU, all started before measuring: an idle proxy costs nothing.
    running, unavailable, configs = {}, {}, {}
    for p in proxies:
        fe_tput, fe_echo = free_port(taken), free_port(taken)
        d = os.path.join(outdir, p)
        os.makedirs(d, exist_ok=True)
        if p in ("sluiced", "sluiced-epoll", "haproxy"):
            text = haproxy_cfg(fe_tput, fe_echo, iperf_port, echo_port)
            cfg = os.path.join(d, f"{p}.cfg")
            if p.startswith("sluiced"):
                if not os.access(args.sluiced, os.X_OK):
                    unavailable[p] = f"{args.sluiced} not built"
                    continue
                argv = ["taskset", "-c", PROXY_CPU, args.sluiced, "-d", "-f", cfg] + (["--io-backend", "epoll"] if p == "sluiced-epoll" else [])
            else:
                argv = ["taskset", "-c", PROXY_CPU, "haproxy", "-db", "-f", cfg]
        else:
            text = nginx_cfg(d, fe_tput, fe_echo, iperf_port, echo_port, nginx_stream_module())
            cfg = os.path.join(d, "nginx.conf")
            argv = ["taskset", "-c", PROXY_CPU, "nginx", "-p", d + "/", "-e", os.path.join(d, "nginx.error.log"), "-c", cfg]
        with open(cfg, "w") as f:
            f.write(text)
        configs[f"{p}: {os.path.basename(cfg)}"] = text
        proc = spawn(argv, p, outdir)
        why = wait_ready(proc, [fe_tput, fe_echo], fe_echo)
        if why:
            unavailable[p] = why
            stop(proc)
            CHILDREN.remove(proc)
            log(f"{p}: not available: {why}")
            continue
        running[p] = (proc, fe_tput, fe_echo)
        log(f"{p}: ready (pid {proc.pid}, throughput port {fe_tput}, churn port {fe_echo})")

    if not running:
        raise SystemExit("no proxy could be started")

    results = {p: {"tput": [], "rtput": [], "churn": []} for p in running}
    moved = {p: 0 for p in running}
    order = list(running)
    for rep in range(args.repeats):
        for p in order[rep % len(order) :] + order[: rep % len(order)]:  # rotate: no proxy always goes first
            proc, fe_tput, fe_echo = running[p]
            if proc.poll() is not None:
                raise SystemExit(f"{p} died: {tail(proc.bench_err)}")
            t = again_if_moved(lambda: throughput(proc, fe_tput, args.tput_seconds, False), args.retries, moved, p, f"[{rep + 1}/{args.repeats}] {p:8} throughput")
            results[p]["tput"].append(t)
            log(f"[{rep + 1}/{args.repeats}] {p:8} throughput  {t['gbps']:7.2f} Gbit/s, {t['proxy_cores']:.3f} busy cores, {t['gbps_per_core']:.2f} Gbit/s per core")
            if args.reverse:
                t = again_if_moved(lambda: throughput(proc, fe_tput, args.tput_seconds, True), args.retries, moved, p, f"[{rep + 1}/{args.repeats}] {p:8} throughput -R")
                results[p]["rtput"].append(t)
                log(f"[{rep + 1}/{args.repeats}] {p:8} throughput -R {t['gbps']:6.2f} Gbit/s, {t['proxy_cores']:.3f} busy cores")
            c = again_if_moved(
                lambda: churn(args.loadgen, proc, fe_echo, args.churn_seconds, args.concurrency, args.payload), args.retries, moved, p, f"[{rep + 1}/{args.repeats}] {p:8} churn"
            )
            results[p]["churn"].append(c)
            log(
                f"[{rep + 1}/{args.repeats}] {p:8} churn       {c['cps']:9.0f} conns/s, {c['proxy_cores']:.3f} busy cores, "
                f"{c['us_per_conn']:.1f} µs CPU/conn, p99 {c['p99_us']} µs, {c['errors']} errors"
            )
    stop_all()
    args.loadavg_after = loadavg()

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
