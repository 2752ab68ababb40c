#!/usr/bin/env python3
"""Planned `/v1/edit` requests, side by side for two or more `etchr serve` binaries.

Each binary in turn (A-B-A-B...: ROUNDS rounds) is started on 127.0.0.1:PORT and sent, one at a
time, 5 warm-up and then 20 edits of IMAGE (a JPEG) planned by the shipped editing model from
QUESTION (no ops). Prints, per binary, the medians of the server's own `timings_ms` (decode, plan,
render, encode, total) over all its rounds. Standard library only.

    python3 bench/plan_time.py IMAGE 'What is the code on the tag "Pump 7"?' PORT ROUNDS \
        target/release/etchr /tmp/etchr-before
"""
import base64
import json
import statistics
import subprocess
import sys
import time
import urllib.request

image_path, question, port, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
binaries = sys.argv[5:]
image = open(image_path, "rb").read()
body = json.dumps({
    "image": "data:image/jpeg;base64," + base64.b64encode(image).decode(),
    "question": question,
}).encode()


def edit():
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/edit", body,
                                 {"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=120).read())["timings_ms"]


timings = {b: [] for b in binaries}
for _ in range(rounds):
    for binary in binaries:
        server = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}"],
            env={"RUST_LOG": "error"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            for _ in range(5):
                edit()
            timings[binary] += [edit() for _ in range(20)]
        finally:
            server.kill()
            server.wait()

for binary, runs in timings.items():
    medians = {k: round(statistics.median(t.get(k) or 0.0 for t in runs), 1)
               for k in ["decode", "plan", "render", "encode", "total"]}
    print(json.dumps({"binary": binary, "edits": len(runs), "median_ms": medians}))
