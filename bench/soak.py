#!/usr/bin/env python3
"""Soak benchmark (not a test): starts `hearth serve`, sends N mixed requests over raw
sockets -- about 70% valid (chat and completions, streamed or not), 20% malformed (bad
JSON, wrong types, unknown roles, smuggling framing, bad chunking, truncated bodies, junk
request lines) and 10% streamed requests whose client hangs up after the first chunk --
and reports the server's RSS and open file descriptors at start, after warm-up, during
the run and at the end. Then stops the server with SIGTERM and scans its stderr for
sanitizer reports (run it on build-asan/hearth for leaks and memory errors).

    python3 bench/soak.py --hearth build/hearth --model ../shared/fixtures/models/llama-spm-f16.gguf \
        --requests 100000 --concurrency 4

Standard library only; never touches anything but the server it started."""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MALFORMED = [
    # (name, raw request bytes; MODEL is replaced by the model id)
    ("bad json", b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 9\r\n'
                 b'Connection: close\r\n\r\n{"model":'),
    ("wrong type", None, '/v1/completions', '{"model":"MODEL","prompt":"a","max_tokens":"many"}'),
    ("nan", None, '/v1/completions', '{"model":"MODEL","prompt":"a","temperature":NaN}'),
    ("1e999", None, '/v1/completions', '{"model":"MODEL","prompt":"a","top_p":1e999}'),
    ("unknown role", None, '/v1/chat/completions', '{"model":"MODEL","messages":[{"role":"wizard","content":"x"}]}'),
    ("huge n", None, '/v1/completions', '{"model":"MODEL","prompt":"a","n":100000}'),
    ("unknown model", None, '/v1/completions', '{"model":"no-such-model","prompt":"a"}'),
    ("deep nesting", None, '/v1/completions', '{"model":"MODEL","prompt":' + '[' * 5000 + ']' * 5000 + '}'),
    ("invalid utf-8", None, '/v1/completions', b'{"model":"MODEL","prompt":"\xff\xfe"}'),
    ("CL+TE", b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 47\r\nTransfer-Encoding: chunked\r\n\r\n'
              b'0\r\n\r\nGET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n'),
    ("two lengths", b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}abc'),
    ("bad chunk", b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
                  b'zz\r\nab\r\n0\r\n\r\n'),
    ("truncated body", b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"model":', 'close'),
    ("junk line", b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n'),
    ("HTTP/0.9", b'GET /health\r\n\r\n'),
    ("unknown method", b'BREW /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'),
]

WORDS = "the quick brown fox jumps over a lazy dog while seven small birds sing".split()


def post_bytes(path, body):
    if isinstance(body, str):
        body = body.encode()
    return (b'POST ' + path.encode() + b' HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n'
            b'Content-Length: ' + str(len(body)).encode() + b'\r\nConnection: close\r\n\r\n' + body)


def exchange(port, data, timeout, hang_up_after_first_chunk=False, half_close=False):
    """Sends data, reads the answer until the server closes. Returns (status or 0, bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        buf = b""
        while True:
            try:
                d = s.recv(65536)
            except OSError:
                break
            if not d:
                break
            buf += d
            if hang_up_after_first_chunk and b"data: " in buf:
                break  # the client goes away mid-stream
        status = int(buf[9:12]) if buf.startswith(b"HTTP/1.") and len(buf) >= 12 and buf[9:12].isdigit() else 0
        return status, buf
    finally:
        s.close()


def proc_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def settle(pid, baseline_fds, seconds=10.0):
    """Waits (bounded) for closing connections to finish, then samples."""
    until = time.time() + seconds
    st = proc_stats(pid)
    while time.time() < until and st["fds"] > baseline_fds:
        time.sleep(0.2)
        st = proc_stats(pid)
    return st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=0, help="requests before the warm-up sample (default 10%%)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--serve-args", default="--slots 4 --max-queue 64 --ctx 256 -t 1")
    ap.add_argument("--json", help="write the report here too")
    a = ap.parse_args()
    warmup = a.warmup or max(1, a.requests // 10)
    model_id = os.path.splitext(os.path.basename(a.model))[0]

    log = tempfile.NamedTemporaryFile(prefix="hearth-soak-", suffix=".log", delete=False)
    env = dict(os.environ, HEARTH_DATA=tempfile.mkdtemp(prefix="hearth-soak-data-"))
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    cmd = [a.hearth, "serve", "-m", a.model, "--port", "0"] + a.serve_args.split()
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    port = 0
    for _ in range(600):
        time.sleep(0.1)
        text = open(log.name, errors="replace").read()
        if '"msg":"listening"' in text and not port:
            port = int(text.split('"msg":"listening"')[1].split('"port":')[1].split(",")[0].split("}")[0])
        if port:
            try:
                if exchange(port, b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 5)[0] == 200:
                    break
            except OSError:
                pass
        if srv.poll() is not None:
            sys.exit(f"soak: hearth serve exited early:\n{text}")
    else:
        srv.kill()
        sys.exit("soak: the server did not become ready")

    rng = random.Random(a.seed)
    plan = []
    for i in range(a.requests):
        r = rng.random()
        if r < 0.2:
            plan.append(("malformed", rng.randrange(len(MALFORMED))))
        elif r < 0.3:
            plan.append(("disconnect", rng.randrange(1 << 30)))
        else:
            plan.append(("valid", rng.randrange(1 << 30)))

    counts = {}
    unexpected = []
    lock = threading.Lock()
    next_i = [0]
    done = [0]
    samples = []
    baseline = proc_stats(srv.pid)

    def valid_request(seed, stream, max_tokens):
        r = random.Random(seed)
        words = " ".join(r.choice(WORDS) for _ in range(r.randrange(1, 12)))
        if r.random() < 0.5:
            body = {"model": model_id, "messages": [{"role": "user", "content": words}]}
            path = "/v1/chat/completions"
        else:
            body = {"model": model_id, "prompt": words}
            path = "/v1/completions"
        body.update({"max_tokens": max_tokens, "temperature": r.choice([0, 0.7]), "seed": seed, "stream": stream,
                     "ignore_eos": True})
        return post_bytes(path, json.dumps(body))

    def one(kind, arg):
        if kind == "valid":
            stream = arg % 2 == 0
            status, buf = exchange(port, valid_request(arg, stream, 1 + arg % 4), 120)
            ok = status == 200 and (not stream or b"data: [DONE]" in buf)
            return f"valid {status}", ok
        if kind == "disconnect":
            status, _ = exchange(port, valid_request(arg, True, 64), 120, hang_up_after_first_chunk=True)
            return f"disconnect {status}", status == 200
        m = MALFORMED[arg]
        name, data = m[0], m[1]
        half = len(m) > 2 and m[2] == "close"
        if data is None:
            body = m[3].replace("MODEL", model_id) if isinstance(m[3], str) else m[3].replace(b"MODEL", model_id.encode())
            data = post_bytes(m[2], body)
            half = False
        status, _ = exchange(port, data, 120, half_close=half)
        # a clean 4xx or a close without an answer; never a 5xx for a client's fault
        return f"malformed {status}", status == 0 or 400 <= status < 500

    def worker():
        while True:
            with lock:
                i = next_i[0]
                if i >= len(plan):
                    return
                next_i[0] += 1
            kind, arg = plan[i]
            try:
                key, ok = one(kind, arg)
            except OSError as e:
                key, ok = f"{kind} oserror {type(e).__name__}", False
            with lock:
                counts[key] = counts.get(key, 0) + 1
                if not ok and len(unexpected) < 20:
                    unexpected.append((i, kind, key, MALFORMED[arg][0] if kind == "malformed" else ""))
                done[0] += 1

    t0 = time.time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    after_warmup = None
    marks = [int(a.requests * k / 10) for k in range(1, 10)]
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if srv.poll() is not None:
            break
        if after_warmup is None and done[0] >= warmup:
            after_warmup = proc_stats(srv.pid)
            after_warmup["at"] = done[0]
        while marks and done[0] >= marks[0]:
            st = proc_stats(srv.pid)
            st["at"] = done[0]
            samples.append(st)
            marks.pop(0)
            print(f"soak: {done[0]}/{a.requests} requests, RSS {st['rss_kib']} KiB, fds {st['fds']}", flush=True)
    elapsed = time.time() - t0
    crashed = srv.poll() is not None
    end = settle(srv.pid, baseline["fds"]) if not crashed else None
    if after_warmup is None and not crashed:
        after_warmup = end
    srv.send_signal(signal.SIGTERM)
    try:
        code = srv.wait(timeout=120)
    except subprocess.TimeoutExpired:
        srv.kill()
        code = "killed after 120 s"
    text = open(log.name, errors="replace").read()
    reports = [l for l in text.splitlines()
               if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l or "runtime error:" in l]
    report = {
        "requests": a.requests, "concurrency": a.concurrency, "elapsed_s": round(elapsed, 1),
        "outcomes": dict(sorted(counts.items())), "unexpected": unexpected,
        "server": {"baseline": baseline, "after_warmup": after_warmup, "samples": samples, "end": end,
                   "exit": code, "crashed_during_run": crashed, "sanitizer_reports": reports[:10]},
    }
    if end and after_warmup:
        report["rss_change_after_warmup_pct"] = round(100.0 * (end["rss_kib"] - after_warmup["rss_kib"])
                                                      / after_warmup["rss_kib"], 1)
        report["fds_back_to_baseline"] = end["fds"] <= baseline["fds"]
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    if reports or crashed or code != 0:
        print(f"soak: server log kept in {log.name}", file=sys.stderr)
        sys.exit(1)
    os.unlink(log.name)
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
