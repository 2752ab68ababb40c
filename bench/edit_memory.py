#!/usr/bin/env python3
"""Memory an `etchr serve` process uses for edits and holds afterwards.

Starts BINARY on 127.0.0.1:PORT, sends 60 sequential edits of examples/panel.jpg (3.8 MP: crop,
zoom x2, box, highlight) and 60 more from 4 clients at once, then prints the process's peak
and current resident memory (VmHWM, VmRSS). Extra arguments are `KEY=VALUE` environment
variables for the server (e.g. GLIBC_TUNABLES=...). Standard library only.

    python3 bench/edit_memory.py target/release/etchr 8784
"""
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.request

binary, port = sys.argv[1], sys.argv[2]
env = {"RUST_LOG": "error", **dict(kv.split("=", 1) for kv in sys.argv[3:])}
server = subprocess.Popen(
    [binary, "serve", "--listen", f"127.0.0.1:{port}"],
    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
try:
    here = os.path.dirname(os.path.abspath(__file__))
    image = open(os.path.join(here, "..", "examples", "panel.jpg"), "rb").read()
    body = json.dumps({
        "image": "data:image/jpeg;base64," + base64.b64encode(image).decode(),
        "ops": [
            {"op": "crop", "box": [256, 256, 1768, 1268]},
            {"op": "zoom", "factor": 2},
            {"op": "box", "box": [400, 400, 600, 600], "width": 4},
            {"op": "highlight", "box": [400, 400, 600, 600]},
        ],
    }).encode()

    def edit(_):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/edit", body,
                                     {"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()

    for _ in range(50):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    for i in range(60):
        edit(i)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(edit, range(60)))
    status = dict(line.split(":", 1) for line in open(f"/proc/{server.pid}/status"))
    mb = lambda key: int(status[key].split()[0]) // 1024
    print(json.dumps({"binary": binary, "env": sys.argv[3:],
                      "peak_mb": mb("VmHWM"), "held_mb": mb("VmRSS")}))
finally:
    server.kill()
