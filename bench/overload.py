#!/usr/bin/env python3
"""Overload and slow-client benchmark (not a test). Starts `hearth serve` with a small
capacity (default --slots 2 --max-queue 2) and measures, in milliseconds:

  1. unloaded: time to first token (TTFT) of streamed completions sent one at a time,
     and GET /health latency;
  2. loaded: `--clients` processes (default 2x capacity, slots + queue) sending streamed
     completions back to back for `--seconds`, while a probe GETs /health every 50 ms:
     latency of the rejections (429/503, checked for Retry-After), TTFT of the admitted
     requests, /health latency; with --rounds N, steps 1 and 2 alternate N times and
     the samples are pooled (each round's figures are kept in the report);
  3. with --slowloris N: rounds of a moderate load (clients = slots) alone, while
     slowhttptest (Debian package `slowhttptest`) holds N slowloris connections on a
     sink of the benchmark's own (the control: the tool's own CPU cost), and while it
     holds them on the server; compares the requests' TTFT p99 pooled over the rounds.

Each client is a process of its own: as threads of one interpreter, a client whose
answer had arrived could wait up to the interpreter's 5 ms switch interval for the lock
another client held, which the TTFT would count. TTFT is also reported as the server
logs it (from the request's arrival to its first token), next to the client's view.

    python3 bench/overload.py --hearth build/hearth --model ../shared/fixtures/models/llama-spm-f16.gguf
    python3 bench/overload.py ... --slowloris 500 --serve-env HEARTH_MAX_CONNECTIONS=1024

Standard library only (plus slowhttptest for step 3)."""
import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


WARM_UP = 5  # completions sent once before measuring
SOURCE = "127.0.0.1"  # the clients' address (--source): slowhttptest always comes from 127.0.0.1


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return round(v[k], 2)


def summary(values):
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99), "max": round(max(values), 2) if values else None}


def summed(counts):
    """Per-key sums of count dicts (the rounds' status codes)."""
    total = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total


class Server:
    def __init__(self, a):
        self.log = tempfile.NamedTemporaryFile(prefix="hearth-overload-", suffix=".log", delete=False)
        env = dict(os.environ, HEARTH_DATA=tempfile.mkdtemp(prefix="hearth-overload-data-"))
        for kv in a.serve_env:
            k, v = kv.split("=", 1)
            env[k] = v
        cmd = [a.hearth, "serve", "-m", a.model, "--port", "0", "--slots", str(a.slots), "--max-queue",
               str(a.max_queue)] + (["--max-queue-wait", str(a.max_queue_wait)] if a.max_queue_wait else []) + \
              a.serve_args.split()
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.port = 0
        for _ in range(600):
            time.sleep(0.1)
            text = open(self.log.name, errors="replace").read()
            if '"msg":"listening"' in text and not self.port:
                self.port = int(text.split('"msg":"listening"')[1].split('"port":')[1].split(",")[0].split("}")[0])
            if self.port and request(self.port, "GET", "/ready")[0] == 200:
                return
            if self.p.poll() is not None:
                sys.exit("overload: hearth serve exited early:\n" + text)
        sys.exit("overload: the server did not become ready")

    def log_mark(self):
        return os.path.getsize(self.log.name)

    def ttfts_since(self, mark):
        """The server's own TTFT (its request log, from the request's arrival) of the
        completions answered 200 since log_mark()."""
        with open(self.log.name, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            if '"msg":"request"' not in line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("path") == "/v1/completions" and r.get("status") == 200 and r.get("ttft_ms") is not None:
                out.append(r["ttft_ms"])
        return out

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
        os.unlink(self.log.name)


def request(port, method, path, body=None, first_chunk=False, timeout=120, info=None):
    """One request on a new connection. Returns (status, ms to the answer's status line
    (or to the first SSE data when first_chunk), headers text, ms to the end); with info
    (a dict), a refusal's error code goes into info["code"]."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(SOURCE, 0))
    except OSError:
        return 0, None, "", None
    try:
        data = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
        if body is not None:
            b = json.dumps(body).encode()
            data += b"Content-Type: application/json\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b
        else:
            data += b"\r\n"
        s.sendall(data)
        buf, first = b"", None
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if first is None:
                if first_chunk and b"data: " in buf and buf.startswith(b"HTTP/1.1 200"):
                    first = (time.perf_counter() - t0) * 1000
                elif not first_chunk and b"\r\n" in buf:
                    first = (time.perf_counter() - t0) * 1000
                elif first_chunk and b"\r\n\r\n" in buf and not buf.startswith(b"HTTP/1.1 200"):
                    first = (time.perf_counter() - t0) * 1000  # a refusal: its answer
    except OSError:
        return 0, None, "", None
    finally:
        s.close()
    end = (time.perf_counter() - t0) * 1000
    status = int(buf[9:12]) if buf[:7] == b"HTTP/1." and buf[9:12].isdigit() else 0
    head = buf.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    if info is not None and status >= 400:
        try:
            info["code"] = json.loads(buf.split(b"\r\n\r\n", 1)[1])["error"]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            info["code"] = None
    return status, first, head, end


def completion(model_id, max_tokens):
    return {"model": model_id, "prompt": "Once upon a time there was a small robot who", "max_tokens": max_tokens,
            "stream": True, "ignore_eos": True, "temperature": 0}


def unloaded(srv, model_id, a, raw):
    """Completions one at a time, each followed by GET /health; adds the samples to raw
    (ttft, server_ttft, health) and returns the summaries."""
    port, mark = srv.port, srv.log_mark()
    ttft, health = [], []
    for _ in range(a.unloaded_requests):
        st, first, _, _ = request(port, "POST", "/v1/completions", completion(model_id, a.max_tokens), first_chunk=True)
        if st == 200 and first is not None:
            ttft.append(first)
        st, ms, _, _ = request(port, "GET", "/health")
        if st == 200:
            health.append(ms)
    server_ttft = srv.ttfts_since(mark)
    for k, v in (("ttft", ttft), ("server_ttft", server_ttft), ("health", health)):
        raw.setdefault(k, []).extend(v)
    return {"ttft_ms": summary(ttft), "server_ttft_ms": summary(server_ttft), "health_ms": summary(health)}


def client_loop(port, model_id, a, deadline, out):
    """One load client (its own process, so that no client waits on another's
    interpreter lock to read its socket): completions back to back until the deadline."""
    r = {"ttft": [], "rejected": [], "no_retry_after": 0, "codes": {}, "other": {}}
    while time.monotonic() < deadline:
        info = {}
        st, first, head, end = request(port, "POST", "/v1/completions", completion(model_id, a.max_tokens),
                                       first_chunk=True, info=info)
        if st == 200 and first is not None:
            r["ttft"].append(first)
        elif st in (429, 503):
            r["rejected"].append(first if first is not None else end)
            code = str(info.get("code"))
            r["codes"][code] = r["codes"].get(code, 0) + 1
            if "retry-after:" not in head.lower():
                r["no_retry_after"] += 1
            time.sleep(a.retry_pause)
        else:
            r["other"][str(st)] = r["other"].get(str(st), 0) + 1
    out.put(r)


def probe_loop(port, deadline, out):
    """GET /health every 50 ms until the deadline."""
    r = {"health": [], "other": {}}
    while time.monotonic() < deadline:
        st, ms, _, _ = request(port, "GET", "/health", timeout=30)
        if st == 200:
            r["health"].append(ms)
        else:
            r["other"]["health " + str(st)] = r["other"].get("health " + str(st), 0) + 1
        time.sleep(0.05)
    out.put(r)


def loaded(srv, model_id, a, label, n_clients, seconds=None, raw=None):
    """Runs the clients and the /health probe; returns the summaries, and with raw (a
    dict) adds the samples to raw (ttft, server_ttft, rejected, health, no_retry_after)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    deadline = time.monotonic() + (seconds or a.seconds)
    mark = srv.log_mark()
    procs = [ctx.Process(target=client_loop, args=(srv.port, model_id, a, deadline, out)) for _ in range(n_clients)]
    procs.append(ctx.Process(target=probe_loop, args=(srv.port, deadline, out)))
    for p in procs:
        p.start()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    ttft, rejected, health, codes, other, no_retry_after = [], [], [], {}, {}, 0
    for r in parts:
        ttft += r.get("ttft", [])
        rejected += r.get("rejected", [])
        health += r.get("health", [])
        no_retry_after += r.get("no_retry_after", 0)
        for dst, src in ((codes, r.get("codes", {})), (other, r["other"])):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
    server_ttft = srv.ttfts_since(mark)
    if raw is not None:
        for k, v in (("ttft", ttft), ("server_ttft", server_ttft), ("rejected", rejected), ("health", health)):
            raw.setdefault(k, []).extend(v)
        raw["no_retry_after"] = raw.get("no_retry_after", 0) + no_retry_after
    print(f"overload: {label}: {len(ttft)} admitted, {len(rejected)} rejected {codes}, other {other}", flush=True)
    return {"admitted_ttft_ms": summary(ttft), "server_ttft_ms": summary(server_ttft),
            "rejection_ms": summary(rejected), "rejection_codes": codes,
            "rejections_without_retry_after": no_retry_after, "health_ms": summary(health), "other": other}


class Sink:
    """A listener that holds the first `keep` connections without reading and closes the
    rest at once, as the server's per-address cap does: the control target, so that
    slowhttptest's own cost on a machine shared with the server and the clients can be
    told from the server's (with refused connections it polls in a loop, a whole core)."""

    def __init__(self, keep):
        self.keep = keep
        self.s = socket.socket()
        self.s.bind(("127.0.0.3", 0))
        self.s.listen(1024)
        self.port = self.s.getsockname()[1]
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c = self.s.accept()[0]
            except OSError:
                return
            if len(self.held) < self.keep:
                self.held.append(c)
            else:
                c.close()

    def close(self):
        self.s.close()
        for c in self.held:
            c.close()


def attack(tool, a, url):
    return subprocess.Popen(
        [tool, "-H", "-c", str(a.slowloris), "-r", str(max(50, a.slowloris)), "-i", "5", "-s", "8192",
         "-l", str(int(a.slowloris_seconds + 30)), "-t", "GET", "-u", url, "-p", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(a.slowloris_nice))


def stop_attack(slow):
    slow.send_signal(signal.SIGINT)
    try:
        slow.wait(timeout=30)
    except subprocess.TimeoutExpired:
        slow.kill()
    time.sleep(2)


def slowloris(srv, model_id, a, tool):
    """Rounds of `slots` clients: alone; while slowhttptest holds N slowloris connections
    on a sink of the benchmark's own (control: the tool's cost alone); while it holds
    them on the server (measured from 3 s after it starts, while the server's header
    deadline still lets them live). Compares TTFT p99 pooled over the rounds."""
    pools = {"alone": {}, "control": {}, "attacked": {}}
    rounds = []
    for i in range(a.slowloris_rounds):
        rd = {"alone": loaded(srv, model_id, a, f"round {i + 1}: alone", a.slots, a.slowloris_seconds,
                              pools["alone"])}
        sink = Sink(a.sink_keep)
        slow = attack(tool, a, f"http://127.0.0.3:{sink.port}/health")
        time.sleep(3)  # it opens its connections in the first second
        rd["control"] = loaded(srv, model_id, a, f"round {i + 1}: slowhttptest on a sink", a.slots,
                               a.slowloris_seconds, pools["control"])
        rd["control"]["sink_connections_held"] = len(sink.held)
        stop_attack(slow)
        sink.close()
        slow = attack(tool, a, f"http://127.0.0.1:{srv.port}/health")
        time.sleep(3)
        fds = [len(os.listdir(f"/proc/{srv.p.pid}/fd"))]
        rd["attacked"] = loaded(srv, model_id, a, f"round {i + 1}: {a.slowloris} slowloris connections on the server",
                                a.slots, a.slowloris_seconds, pools["attacked"])
        fds.append(len(os.listdir(f"/proc/{srv.p.pid}/fd")))
        rd["attacked"]["server_fds_at_start_and_end"] = fds
        stop_attack(slow)
        rounds.append(rd)
    rep = {"slowhttptest_nice": a.slowloris_nice, "rounds": rounds}
    for key, name in (("ttft", "admitted_ttft_ms"), ("server_ttft", "server_ttft_ms")):
        m = {k: summary(v.get(key, [])) for k, v in pools.items()}
        for k in ("control", "attacked"):
            if m["alone"]["p99"] and m[k]["p99"]:
                m[f"p99_{k}_vs_alone"] = round(m[k]["p99"] / m["alone"]["p99"], 2)
        if m["control"]["p99"] and m["attacked"]["p99"]:
            m["p99_attacked_vs_control"] = round(m["attacked"]["p99"] / m["control"]["p99"], 2)
        rep[name] = m
    return rep


def metrics_text(port):
    """The server's /metrics page."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return buf.decode(errors="replace")


def refused_by_reason(text):
    """hearth_requests_refused_total by reason (the server's own count)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("hearth_requests_refused_total{") and 'reason="' in line:
            out[line.split('reason="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


def counter_total(text, name):
    """A counter summed over its labels."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--max-queue", type=int, default=2)
    ap.add_argument("--max-queue-wait", type=int, default=0, help="ms: hearth serve --max-queue-wait (default 0: off)")
    ap.add_argument("--clients", type=int, default=0, help="default: 2 x (slots + max-queue)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--retry-pause", type=float, default=0.05, help="seconds a refused client waits before its next try")
    ap.add_argument("--unloaded-requests", type=int, default=30, help="per round")
    ap.add_argument("--rounds", type=int, default=1,
                    help="unloaded-then-loaded rounds, pooled: spreads both over the machine's drifting noise")
    ap.add_argument("--serve-args", default="--ctx 256 -t 1")
    ap.add_argument("--serve-env", action="append", default=[], help="VAR=VALUE for the server (repeatable)")
    ap.add_argument("--slowloris", type=int, default=0, help="connections slowhttptest holds in step 3")
    ap.add_argument("--slowloris-rounds", type=int, default=2, help="alone / attacked rounds in step 3")
    ap.add_argument("--slowloris-nice", type=int, default=19,
                    help="niceness of slowhttptest: it spins a whole core, which on a small machine shared with "
                         "the server and clients would measure the tool, not the server (0: compete equally)")
    ap.add_argument("--sink-keep", type=int, default=64,
                    help="connections the control sink holds (the server's limits.connections_per_ip)")
    ap.add_argument("--slowloris-seconds", type=float, default=25,
                    help="length of each step-3 run (the server's header deadline, 30 s, ends the attack)")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--source", default="127.0.0.1",
                    help="client address, e.g. 127.0.0.2 so that the per-address connection cap tells them from slowhttptest")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    global SOURCE
    SOURCE = a.source
    a.clients = a.clients or 2 * (a.slots + a.max_queue)
    model_id = os.path.splitext(os.path.basename(a.model))[0]
    srv = Server(a)
    report = {"slots": a.slots, "max_queue": a.max_queue, "max_queue_wait_ms": a.max_queue_wait, "clients": a.clients,
              "max_tokens": a.max_tokens}
    try:
        for _ in range(WARM_UP):  # not counted: the first requests after start meet cold caches
            request(srv.port, "POST", "/v1/completions", completion(model_id, a.max_tokens), first_chunk=True)
        raw_u, raw_l, rounds = {}, {}, []
        for i in range(a.rounds):
            rd = {"unloaded": unloaded(srv, model_id, a, raw_u)}
            rd["loaded"] = loaded(srv, model_id, a, f"round {i + 1}: loaded", a.clients, raw=raw_l)
            rounds.append(rd)
        if a.rounds == 1:
            report.update(rounds[0])
        else:  # pooled over the rounds, each round's own figures kept beside
            report["unloaded"] = {"ttft_ms": summary(raw_u["ttft"]), "server_ttft_ms": summary(raw_u["server_ttft"]),
                                  "health_ms": summary(raw_u["health"])}
            report["loaded"] = {"admitted_ttft_ms": summary(raw_l["ttft"]),
                                "server_ttft_ms": summary(raw_l["server_ttft"]),
                                "rejection_ms": summary(raw_l["rejected"]),
                                "rejection_codes": summed(r["loaded"]["rejection_codes"] for r in rounds),
                                "rejections_without_retry_after": raw_l["no_retry_after"],
                                "health_ms": summary(raw_l["health"]),
                                "other": summed(r["loaded"]["other"] for r in rounds)}
            report["rounds"] = rounds
        metrics = metrics_text(srv.port)
        report["refused_by_reason"] = refused_by_reason(metrics)
        report["steps_interrupted"] = counter_total(metrics, "hearth_steps_interrupted_total")
        u, l = report["unloaded"]["ttft_ms"]["p99"], report["loaded"]["admitted_ttft_ms"]["p99"]
        if u and l:
            report["loaded_ttft_p99_vs_unloaded"] = round(l / u, 2)
        u, l = report["unloaded"]["server_ttft_ms"]["p99"], report["loaded"]["server_ttft_ms"]["p99"]
        if u and l:
            report["server_loaded_ttft_p99_vs_unloaded"] = round(l / u, 2)
        if a.slowloris:
            tool = shutil.which("slowhttptest")
            if not tool:
                print("overload: slowhttptest not found: apt-get install slowhttptest", file=sys.stderr)
            else:
                report["slowloris"] = slowloris(srv, model_id, a, tool)
    finally:
        srv.stop()
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
