#!/usr/bin/env python3
"""Instructions per HTTP connection (one request, `Connection: close`) in sluiced, by callgrind.

    python3 bench/callgrind/per_connection.py <binary> <connections> <uring|epoll> <port>

Runs the proxy under `valgrind --tool=callgrind` (pinned to CPU 0, `nbthread 1`, a frontend
answering `http-request return`), makes <connections> serial connections of one request each,
stops it and prints its total instructions. Run it for two counts and divide the difference by
the difference in connections: start-up and shutdown cancel out. Serial connections make the
figure vary by a few percent from run to run (how many wake-ups a connection takes varies): run
each binary several times and compare medians.
"""
import socket, subprocess, sys, time, os, re, glob
binary=sys.argv[1]; n=int(sys.argv[2]); backend=sys.argv[3]
port=int(sys.argv[4])
cfg=f"/tmp/c{port}.cfg"
open(cfg,"w").write(f"global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string ok\n")
out=f"/tmp/cg.{port}.{n}"
p=subprocess.Popen(["taskset","-c","0","valgrind","--tool=callgrind",f"--callgrind-out-file={out}","--trace-children=no",binary,"-d","-f",cfg,"--io-backend",backend],stderr=subprocess.DEVNULL,stdout=subprocess.DEVNULL)
end=time.time()+60
while time.time()<end:
    try: socket.create_connection(("127.0.0.1",port),timeout=1).close(); break
    except OSError: time.sleep(0.2)
for i in range(n):
    s=socket.create_connection(("127.0.0.1",port),timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    while s.recv(4096): pass
    s.close()
p.send_signal(15); p.wait()
tot=0
for f in glob.glob(out+"*"):
    for line in open(f):
        if line.startswith("summary:") or line.startswith("totals:"):
            tot+=int(line.split()[1]); break
print(tot)
