#!/usr/bin/env python3
"""The product on a GPU: `canary-stt hwinfo`, `transcribe`, `serve` and `bench` as a user runs
them, driven by tests/cuda/service-gpu-check.sh (which unpacks the bundle and builds the plugin).
Python's standard library only (the GPU machine has none of our Debian tools: no curl, no jq).

    service_gpu_check.py BUNDLE OUT_DIR WORK_DIR FULL_NEMO BUDGET_S

Steps (each records its checks in OUT_DIR/service.json, rewritten after every step; a step that
no longer fits the budget is skipped with the reason):
  hwinfo      `hwinfo --json` sees the GPU, `hwinfo --check --model` matches the CPU
  cli_fp32    `transcribe --device cuda --precision fp32` of every bundled file (wav, flac, an
              mp4 video, recorded speech) with the tiny model: the same tokens, segment times and
              log-probabilities as the CPU's fp32 transcript made where the bundle was built;
              `--device auto` picks the GPU
  serve_tiny  `serve --device cuda --precision fp32`: GET / and /health, a synchronous OpenAI
              transcription, concurrent async jobs of every file (all with the CPU's transcript,
              all on cuda:0), /metrics (batches done, none failed), bad input answered 4xx
  serve_full  `serve` with the full-size canary-1b-flash (random weights) and every setting
              automatic: what the hardware profile chose, and the throughput of one job per file;
              again with CANARY_EQUAL_LENGTH_BATCHES=1 (the batching before 27 Nov 2026) as an A/B
  cli_full    `transcribe` of the 4.7-minute file with the full model (auto settings), and of the
              12 files of distinct lengths in one command (A/B as serve_full)
  bench_full  `canary-stt bench --device cuda` on the full model, bf16, batch 1 and 64
Random weights: the tiny model is EOS-calibrated (short, meaningless but deterministic text); the
full one is not, so it decodes every chunk to the token limit (the decoder's worst case).
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

BUNDLE, OUT, WORK, FULL, BUDGET = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
T0 = time.time()
BIN = os.path.join(BUNDLE, "bin", "canary-stt")
TINY = os.path.join(BUNDLE, "models", "canary-1b-flash-tiny.nemo")
AUDIO = sorted(glob.glob(os.path.join(BUNDLE, "audio", "*")))
LOGS = os.path.join(WORK, "logs")
os.makedirs(LOGS, exist_ok=True)
RESULTS = {"steps": [], "checks": [], "skipped": []}


def left():
    return BUDGET - (time.time() - T0)


def save():
    with open(os.path.join(OUT, "service.json"), "w") as f:
        json.dump(RESULTS, f, indent=1)


def check(step, desc, ok, detail=None):
    RESULTS["checks"].append({"step": step, "check": desc, "ok": bool(ok), "detail": detail})
    print(("ok  " if ok else "BAD ") + step + ": " + desc + ("" if ok or detail is None else "  " + str(detail)[:600]),
          flush=True)
    return ok


def run(name, args, timeout, env=None):
    """Runs BIN with args; stdout returned, both streams logged."""
    t = time.time()
    e = dict(os.environ)
    e.update(env or {})
    try:
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=e)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as x:
        rc, out, err = 124, x.stdout or "", (x.stderr or "") + "\n(timed out)"
        out = out.decode() if isinstance(out, bytes) else out
        err = err.decode() if isinstance(err, bytes) else err
    with open(os.path.join(LOGS, name + ".log"), "a") as f:
        f.write("$ canary-stt %s\nrc=%d %.2fs\n--- stdout\n%s\n--- stderr\n%s\n" % (" ".join(args), rc, time.time() - t, out, err))
    return rc, out, err, time.time() - t


def same(got, want):
    """verbose_json transcripts: the same segments and tokens, times to the printed millisecond (the
    service and the CLI round differently), log-probabilities within 2e-3."""
    gs, ws = got.get("segments") or [], want.get("segments") or []
    if got.get("text") != want.get("text"):
        return False, "text %r vs the CPU's %r" % (got.get("text"), want.get("text"))
    if len(gs) != len(ws):
        return False, "%d segments vs the CPU's %d" % (len(gs), len(ws))
    for i, (g, w) in enumerate(zip(gs, ws)):
        if g.get("tokens") != w.get("tokens"):
            return False, "segment %d tokens %s vs %s" % (i, g.get("tokens"), w.get("tokens"))
        if abs(g["start"] - w["start"]) > 1.5e-3 or abs(g["end"] - w["end"]) > 1.5e-3:  # ms rounding
            return False, "segment %d times %s-%s vs %s-%s" % (i, g["start"], g["end"], w["start"], w["end"])
        if abs(g.get("avg_logprob", 0) - w.get("avg_logprob", 0)) > 2e-3:
            return False, "segment %d avg_logprob %s vs %s" % (i, g.get("avg_logprob"), w.get("avg_logprob"))
    return True, "%d segments, %d tokens" % (len(gs), sum(len(g.get("tokens") or []) for g in gs))


def expected(path):
    name = os.path.splitext(os.path.basename(path))[0]
    with open(os.path.join(BUNDLE, "expected", name + ".json")) as f:
        return json.load(f)


# --- HTTP ---------------------------------------------------------------------------------------
def http(method, url, body=None, headers=None, timeout=300):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def getj(url):
    code, body = http("GET", url)
    try:
        return code, json.loads(body)
    except ValueError:
        return code, body.decode(errors="replace")


def multipart(fields, files):
    b = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (b, k, v)).encode())
    for k, (name, data) in files.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n" % (b, k, name)).encode() + data + b"\r\n")
    parts.append(("--%s--\r\n" % b).encode())
    return b"".join(parts), {"Content-Type": "multipart/form-data; boundary=" + b}


def post_file(url, path, fields=None, timeout=300):
    with open(path, "rb") as f:
        body, hdr = multipart(fields or {}, {"file": (os.path.basename(path), f.read())})
    code, out = http("POST", url, body, hdr, timeout)
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out.decode(errors="replace")


class Server:
    def __init__(self, name, args, load_timeout, env=None):
        self.name = name
        data = os.path.join(WORK, name)
        port_file = os.path.join(WORK, name + ".port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(os.path.join(LOGS, name + ".log"), "w")
        t = time.time()
        self.p = subprocess.Popen([BIN, "serve", "--port", "0", "--port-file", port_file, "--data-dir", data] + args,
                                  stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        self.url = None
        while time.time() - t < load_timeout and self.p.poll() is None:
            if self.url is None and os.path.exists(port_file) and open(port_file).read().strip():
                self.url = "http://127.0.0.1:%s" % open(port_file).read().strip()
            if self.url and http("GET", self.url + "/health", timeout=5)[0] == 200:
                break
            time.sleep(0.1)
        self.load_s = time.time() - t
        self.ready = self.p.poll() is None and self.url is not None and http("GET", self.url + "/health", timeout=5)[0] == 200

    def metric(self, key):
        code, body = http("GET", self.url + "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def submit_and_wait(srv, files, timeout):
    """POST /v1/jobs for each file, then polls until none is pending; returns [(file, job)]."""
    jobs = []
    for f in files:
        code, j = post_file(srv.url + "/v1/jobs", f)
        jobs.append((f, j.get("id") if isinstance(j, dict) else None, code))
    t = time.time()
    final = {}
    while time.time() - t < timeout and len(final) < len(jobs):
        for f, jid, _ in jobs:
            if jid and jid not in final:
                _, j = getj(srv.url + "/v1/jobs/" + jid)
                if isinstance(j, dict) and j.get("status") in ("completed", "failed", "cancelled"):
                    final[jid] = j
        time.sleep(0.05)
    return [(f, final.get(jid) or {"id": jid, "status": "not finished", "submit_code": code}) for f, jid, code in jobs], \
        time.time() - t


# --- steps --------------------------------------------------------------------------------------
def step_hwinfo():
    rc, out, err, _ = run("hwinfo", ["hwinfo", "--json"], 60)
    try:
        hw = json.loads(out)
    except ValueError:
        hw = None
    RESULTS["hwinfo"] = hw
    gpus = (hw or {}).get("hardware", {}).get("gpus") if isinstance(hw, dict) else None
    check("hwinfo", "hwinfo --json sees a GPU", rc == 0 and gpus, err[-400:])
    rc, out, err, _ = run("hwinfo_check", ["hwinfo", "--check", "--model", TINY], 120)
    check("hwinfo", "hwinfo --check --model: every GPU matches the CPU", rc == 0, (out + err)[-600:])


def step_cli_fp32():
    for f in AUDIO:
        rc, out, err, secs = run("cli_fp32", ["transcribe", "--model", TINY, "--device", "cuda", "--precision", "fp32",
                                              "--format", "verbose_json", f], 120)
        try:
            got = json.loads(out)
        except ValueError:
            got = None
        ok, why = same(got, expected(f)) if rc == 0 and got else (False, "rc=%d %s" % (rc, err[-400:]))
        check("cli_fp32", "%s: the CPU's fp32 transcript (%.1f s)" % (os.path.basename(f), secs), ok, why)
    rc, out, err, _ = run("cli_auto", ["transcribe", "--model", TINY, "--format", "json", AUDIO[0]], 120)
    check("cli_fp32", "--device auto runs on the GPU", rc == 0 and "cuda:0" in err, err[-600:])
    RESULTS["cli_auto_log"] = [l for l in err.splitlines() if "cuda" in l or "device" in l][:10]


def step_serve_tiny():
    s = Server("serve_tiny", ["--model", TINY, "--device", "cuda", "--precision", "fp32"], 120)
    try:
        if not check("serve_tiny", "the server loads the model on the GPU (%.1f s)" % s.load_s, s.ready):
            return
        code, root = getj(s.url + "/")
        RESULTS["serve_tiny_root"] = root
        check("serve_tiny", "GET /: model on cuda:0, hardware lists the GPU", code == 200 and
              root["model"]["device"] == "cuda:0" and root["hardware"]["gpus"] >= 1, json.dumps(root)[:600])
        speech = [f for f in AUDIO if "speech" in f][0]
        code, r = post_file(s.url + "/v1/audio/transcriptions", speech, {"model": "whisper-1", "response_format": "verbose_json"})
        ok, why = same(r, expected(speech)) if code == 200 else (False, "HTTP %d %s" % (code, r))
        check("serve_tiny", "synchronous OpenAI transcription: the CPU's transcript", ok, why)
        jobs, secs = submit_and_wait(s, AUDIO * 2, 240)
        good = 0
        for f, j in jobs:
            if j.get("status") != "completed":
                check("serve_tiny", "job of %s completed" % os.path.basename(f), False, j)
                continue
            code, r = getj(s.url + "/v1/jobs/%s/result?format=verbose_json" % j["id"])
            ok, why = same(r, expected(f)) if code == 200 else (False, "HTTP %d" % code)
            ok = ok and j.get("devices") == ["cuda:0"]
            good += ok
            if not ok:
                check("serve_tiny", "job of %s" % os.path.basename(f), False, "%s devices %s" % (why, j.get("devices")))
        check("serve_tiny", "%d concurrent jobs: %d completed on cuda:0 with the CPU's transcripts (%.1f s)" %
              (len(jobs), good, secs), good == len(jobs))
        done = s.metric('canary_device_batches_total{device="cuda:0",outcome="done"}')
        failed = s.metric('canary_device_batches_total{device="cuda:0",outcome="failed"}')
        check("serve_tiny", "/metrics: %s batches done on cuda:0, %s failed" % (done, failed), done and failed == 0)
        bad = os.path.join(WORK, "not-audio.wav")
        with open(bad, "wb") as f:
            f.write(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(4000))
        code, r = post_file(s.url + "/v1/audio/transcriptions", bad)
        check("serve_tiny", "bad audio: 4xx with a JSON error", 400 <= code < 500 and isinstance(r, dict) and "error" in r,
              "HTTP %d %s" % (code, str(r)[:300]))
        code, _ = http("GET", s.url + "/health")
        check("serve_tiny", "/health 200 after it all", code == 200)
    finally:
        check("serve_tiny", "SIGTERM: the server exits 0", s.stop() == 0)


def wait_full(limit):
    t = time.time()
    while not os.path.exists(FULL + ".done") and time.time() - t < limit:
        time.sleep(1)
    return os.path.exists(FULL + ".done")


def step_serve_full():
    # A/B in one run: chunks of any lengths batched (now), then CANARY_EQUAL_LENGTH_BATCHES=1 (NeMo's
    # batch semantics, equal lengths only under 2.4 features: the batching before 27 Nov 2026)
    for tag, env in (("", None), ("_equal_length", {"CANARY_EQUAL_LENGTH_BATCHES": "1"})):
        serve_full_once(tag, env)


def serve_full_once(tag, env):
    name = "serve_full" + tag
    s = Server(name, ["--model", FULL], 240, env)
    try:
        if not check(name, "the full model loads, every setting automatic (%.1f s)" % s.load_s, s.ready):
            return
        code, root = getj(s.url + "/")
        RESULTS[name + "_root"] = root
        devs = root["hardware"].get("devices", [])
        check(name, "GET /: model on cuda:0", root["model"]["device"] == "cuda:0", json.dumps(root["model"])[:400])
        files = list(AUDIO)  # one job per file: 16 lengths
        jobs, secs = submit_and_wait(s, files, max(60, left() - 60))
        audio = sum(j.get("audio_seconds") or 0 for _, j in jobs)
        done = sum(j.get("status") == "completed" for _, j in jobs)
        batches = s.metric("canary_batches_total")
        chunks = s.metric("canary_batch_chunks_total")
        RESULTS[name] = {"jobs": len(jobs), "completed": done, "audio_s": audio, "wall_s": round(secs, 2),
                                 "rtfx": round(audio / secs, 1) if secs else None, "batches": batches,
                                 "chunks": chunks, "devices": devs, "model": root.get("model")}
        check(name, "%d concurrent jobs, %.0f s of audio: %d completed in %.1f s (RTFx %.0f; %s chunks in %s batches)"
              % (len(jobs), audio, done, secs, audio / secs if secs else 0, chunks, batches), done == len(jobs),
              [j for _, j in jobs if j.get("status") != "completed"][:2])
        failed = s.metric('canary_device_batches_total{device="cuda:0",outcome="failed"}')
        check(name, "no failed batch", failed == 0, failed)
    finally:
        check(name, "SIGTERM: the server exits 0", s.stop() == 0)


def step_cli_full():
    long = [f for f in AUDIO if "long" in f][0]
    rc, out, err, secs = run("cli_full", ["transcribe", "--model", FULL, "--format", "json", long], max(60, left() - 30))
    RESULTS["cli_full"] = {"rc": rc, "wall_s": round(secs, 2), "log": [l for l in err.splitlines() if "cuda" in l][:8]}
    check("cli_full", "transcribe of %s with the full model, auto settings: %.1f s" % (os.path.basename(long), secs),
          rc == 0, err[-600:])
    # the 12 files of distinct lengths in one command, chunks batched across files; A/B as serve_full
    mix = [f for f in AUDIO if os.path.basename(f).startswith("mix")]
    for tag, env in (("", None), ("_equal_length", {"CANARY_EQUAL_LENGTH_BATCHES": "1"})):
        rc, out, err, secs = run("cli_full_mix" + tag, ["transcribe", "--model", FULL, "--format", "json"] + mix,
                                 max(60, left() - 30), env)
        RESULTS["cli_full_mix" + tag] = {"rc": rc, "wall_s": round(secs, 2), "files": len(mix)}
        check("cli_full", "transcribe of %d files of distinct lengths%s: %.1f s" % (len(mix), tag.replace("_", " "), secs),
              rc == 0, err[-600:])


def step_bench_full():
    rows = []
    for batch in ("1", "64"):
        rc, out, err, _ = run("bench_full", ["bench", "--model", FULL, "--device", "cuda", "--precision", "bf16",
                                             "--batch", batch, "--format", "json"], max(60, left() - 20))
        try:
            rows.append(json.loads(out))
        except ValueError:
            rows.append({"rc": rc, "out": out[-300:], "err": err[-300:]})
        check("bench_full", "canary-stt bench --device cuda --batch %s" % batch, rc == 0, err[-400:])
    RESULTS["bench_full"] = rows


STEPS = [("hwinfo", step_hwinfo, 20), ("cli_fp32", step_cli_fp32, 40), ("serve_tiny", step_serve_tiny, 60),
         ("serve_full", step_serve_full, 90), ("cli_full", step_cli_full, 40), ("bench_full", step_bench_full, 40)]
for name, fn, need in STEPS:
    if name in ("serve_full", "cli_full", "bench_full") and not wait_full(max(0, left() - need)):
        RESULTS["skipped"].append("%s: the full model is not ready (%s.log)" % (name, FULL))
        continue
    if left() < need:
        RESULTS["skipped"].append("%s: %.0f s left, needs %d" % (name, left(), need))
        print("skipped " + RESULTS["skipped"][-1], flush=True)
        continue
    t = time.time()
    try:
        fn()
        err = None
    except Exception as e:  # a crash of this script is a result too
        err = "%s: %s" % (type(e).__name__, e)
        check(name, "the step ran", False, err)
    RESULTS["steps"].append({"step": name, "seconds": round(time.time() - t, 1), "error": err})
    save()
bad = [c for c in RESULTS["checks"] if not c["ok"]]
RESULTS["summary"] = "%d checks, %d bad, %d steps skipped, %.0f s" % (len(RESULTS["checks"]), len(bad),
                                                                        len(RESULTS["skipped"]), time.time() - T0)
save()
print(RESULTS["summary"])
sys.exit(1 if bad else 0)
