#!/usr/bin/env python3
"""Side-by-side CPU benchmark of `worker eval` (mistral.rs) against `torch_eval.py` (PyTorch
eager) on the real-model fixtures. Run it through `scripts/real-models/bench`, which sets the
paths; see that script for the options.

Every process is started directly (no shell) and reaped with wait4, so its wall time and its
own peak RSS (ru_maxrss) are measured from outside. The worker's stderr is a pseudo-terminal,
so its per-phase progress bars (similarity n/N, vibe n/N, latency) and its "model loaded"
log line are drawn; each is time-stamped as it arrives, which splits the worker's wall time
into load, similarity, generation and latency phases without changing the worker. The torch
script times its own phases.
"""

import argparse
import bisect
import datetime
import fcntl
import json
import os
import platform
import pty
import re
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time

BAR = re.compile(rb"(similarity|vibe|latency)\s+\[[^\]\r\n]*\]\s+(\d+)/(\d+)")
LOADED = re.compile(rb"model loaded")


def reap(proc):
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024  # KiB on Linux


def run_worker(cmd, env, log):
    """Runs `worker eval ... --json` with stderr on a pty; returns its JSON, wall time, peak
    RSS and the phase marks (seconds after start)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    chunks, offsets = [], []
    size = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    reader.start()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        now = time.perf_counter() - start
        chunks.append(data)
        size += len(data)
        offsets.append((size, now))
    rss = reap(proc)
    wall = time.perf_counter() - start
    reader.join()
    os.close(master)
    raw = b"".join(chunks)
    with open(log, "wb") as f:
        f.write(raw)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}); stderr in {log}")
    ends = [o for o, _ in offsets]

    def when(end):
        return offsets[bisect.bisect_left(ends, end)][1]

    marks = {}
    m = LOADED.search(raw)
    if m:
        marks["loaded"] = when(m.end())
    for m in BAR.finditer(raw):
        phase, pos, total = m.group(1).decode(), int(m.group(2)), int(m.group(3))
        key = f"{phase}_done" if pos == total else f"{phase}_{pos}"
        marks.setdefault(key, when(m.end()))
    result = json.loads(out[0])
    return dict(result=result, wall_s=wall, peak_rss=rss, marks=marks)


def run_plain(cmd, env):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = [], []
    threads = [
        threading.Thread(target=lambda: out.append(proc.stdout.read())),
        threading.Thread(target=lambda: err.append(proc.stderr.read())),
    ]
    for t in threads:
        t.start()
    rss = reap(proc)
    wall = time.perf_counter() - start
    for t in threads:
        t.join()
    if proc.returncode != 0:
        sys.stderr.write(err[0].decode(errors="replace"))
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode})")
    return dict(result=json.loads(out[0]), wall_s=wall, peak_rss=rss)


def worker_phases(run):
    """Seconds of each phase from the marks, or None where a mark is missing."""
    m = run["marks"]
    get = m.get
    phases = dict(load_s=get("loaded"))
    if get("loaded") is not None and get("similarity_done") is not None:
        phases["similarity_s"] = m["similarity_done"] - m["loaded"]
    if get("similarity_done") is not None and get("vibe_done") is not None:
        phases["generation_s"] = m["vibe_done"] - m["similarity_done"]
    if get("vibe_done") is not None and get("latency_done") is not None:
        phases["latency_s"] = m["latency_done"] - m["vibe_done"]
    if get("loaded") is not None and get("latency_done") is not None:
        phases["eval_s"] = m["latency_done"] - m["loaded"]
    return phases


def worker_generated_tokens(worker, torch_run, tokenizer):
    """Tokens the worker generated: the torch run's count for each reply that is identical
    (same greedy tokens), else the reply re-tokenized plus one for the EOS when it stopped
    short of its budget (an estimate, flagged)."""
    by_id = {s["conversation_id"]: s for s in torch_run["samples"]}
    total, same, estimated = 0, 0, 0
    for s in worker["samples"]:
        if s.get("reply") is None:
            continue
        t = by_id.get(s["conversation_id"])
        if t is not None and t.get("reply") == s["reply"]:
            total += t["generated_tokens"]
            same += 1
        else:
            n = len(tokenizer.encode(s["reply"], add_special_tokens=False).ids) if tokenizer else 0
            total += n + 1
            estimated += 1
    return total, same, estimated


def spread(values):
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else float("nan")


def fmt_mb(b):
    return f"{b / 1e6:,.0f} MB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--torch-python", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4, help="torch runs, alternating with worker runs")
    ap.add_argument("--worker-runs", type=int, default=5, help="worker evaluations of SmolLM2 F32 (>= rounds)")
    ap.add_argument("--samples", type=int, help="conversations (default: the profile's, all 12 built-in)")
    ap.add_argument("--budget-s", type=float, default=840.0,
                    help="skip the optional runs (full logits, other models) that would end after this")
    ap.add_argument("--others", default="gemma3-270m:gemma:2.5,smollm2-135m-instruct:chatml:1",
                    help="other repositories for one worker run each, NAME:TEMPLATE:COST,... where COST is the "
                         "expected time relative to the SmolLM2 F32 run ('' for none)")
    ap.add_argument("--full-logits-run", action="store_true", default=True)
    ap.add_argument("--no-full-logits-run", dest="full_logits_run", action="store_false")
    ap.add_argument("--out", required=True, help="directory for raw results and logs")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    torch_eval = os.path.join(here, "torch_eval.py")
    repos = os.path.join(args.models_dir, "repos")
    f32 = os.path.join(repos, "smollm2-135m-instruct-f32")
    os.makedirs(args.out, exist_ok=True)
    n = args.threads

    help_text = subprocess.run([args.worker, "eval", "--help"], capture_output=True, text=True).stdout
    has_threads_flag = "--threads" in help_text
    env = dict(os.environ, RAYON_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
    env.pop("RUST_LOG", None)

    def worker_cmd(repo, template):
        cmd = [args.worker, "eval", repo, "--chat-template", template, "--json"]
        if has_threads_flag:
            cmd += ["--threads", str(n)]
        if args.samples:
            cmd += ["--samples", str(args.samples)]
        return cmd

    def torch_cmd(order_file, extra=()):
        cmd = [args.torch_python, torch_eval, f32, "--threads", str(n), "--order-from", order_file, *extra]
        if args.samples:
            cmd += ["--samples", str(args.samples)]
        return cmd

    runs_w, runs_t = [], []
    order_file = os.path.join(args.out, "worker-order.json")
    started = time.time()
    log = lambda msg: print(f"[bench {time.time() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    worker_runs = max(args.worker_runs, args.rounds)
    schedule = []
    for i in range(worker_runs):
        schedule.append("w")
        if i < args.rounds:
            schedule.append("t")
    for i, kind in enumerate(schedule):
        if kind == "w":
            r = run_worker(worker_cmd(f32, "chatml"), env, os.path.join(args.out, f"worker-{len(runs_w) + 1}.stderr"))
            runs_w.append(r)
            if len(runs_w) == 1:
                with open(order_file, "w") as f:
                    json.dump(r["result"], f)
            log(f"worker run {len(runs_w)}: {r['wall_s']:.1f} s, peak RSS {fmt_mb(r['peak_rss'])}, total {r['result']['total']:.6f}")
        else:
            r = run_plain(torch_cmd(order_file), env)
            runs_t.append(r)
            log(f"torch run {len(runs_t)}: {r['wall_s']:.1f} s, peak RSS {fmt_mb(r['peak_rss'])}, total {r['result']['total']:.6f}")

    def fits(expected_s, what):
        elapsed = time.time() - started
        if elapsed + expected_s > args.budget_s:
            log(f"skipping {what}: {elapsed:.0f} s + about {expected_s:.0f} s is over the budget of {args.budget_s:.0f} s")
            return False
        return True

    w_med = statistics.median(r["wall_s"] for r in runs_w)
    t_med = statistics.median(r["wall_s"] for r in runs_t) if runs_t else w_med
    full = None
    if args.full_logits_run and fits(t_med * 1.2, "the torch --full-logits run"):
        full = run_plain(torch_cmd(order_file, ["--full-logits"]), env)
        log(f"torch --full-logits: {full['wall_s']:.1f} s")

    others = []
    for spec in filter(None, args.others.split(",")):
        name, template, cost = (spec.split(":") + ["1"])[:3]
        repo = os.path.join(repos, name)
        if not os.path.isdir(repo):
            log(f"skipping {name}: {repo} is missing")
            continue
        if not fits(w_med * float(cost), f"the worker run on {name}"):
            continue
        r = run_worker(worker_cmd(repo, template), env, os.path.join(args.out, f"worker-{name}.stderr"))
        r["name"], r["template"] = name, template
        others.append(r)
        log(f"worker {name}: {r['wall_s']:.1f} s, peak RSS {fmt_mb(r['peak_rss'])}")

    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(os.path.join(f32, "tokenizer.json"))
    except Exception:  # noqa: BLE001
        tokenizer = None

    # --- agreement of the two implementations on SmolLM2 F32
    w0, t0 = runs_w[0]["result"], runs_t[0]["result"] if runs_t else None
    agreement = {}
    if t0:
        tw = {s["conversation_id"]: s for s in t0["samples"]}
        diffs = [abs(s["similarity"] - tw[s["conversation_id"]]["similarity"]) for s in w0["samples"]]
        same_reply = sum(1 for s in w0["samples"] if s.get("reply") == tw[s["conversation_id"]].get("reply"))
        agreement = dict(
            max_similarity_diff=max(diffs),
            similarity_component_diff=abs(w0["components"]["similarity"] - t0["components"]["similarity"]),
            vibe_component_diff=abs(w0["components"]["vibe"] - t0["components"]["vibe"]),
            identical_replies=same_reply,
            samples=len(diffs),
            tokens_worker=w0["tokens"],
            tokens_torch=t0["tokens"],
        )

    counts = t0["counts"] if t0 else {}
    scoring_tokens = counts.get("scoring_tokens")
    gen_w, same, est = worker_generated_tokens(w0, t0, tokenizer) if t0 else (None, 0, 0)

    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    wp = [worker_phases(r) for r in runs_w]
    w_phase = {k: med([p.get(k) for p in wp]) for k in ("load_s", "similarity_s", "generation_s", "latency_s", "eval_s")}
    t_phase = {k: med([r["result"]["timings"][k] for r in runs_t]) for k in ("import_s", "load_s", "similarity_s", "generation_s", "generation_prefill_s", "latency_s", "eval_s")}
    w_wall = med([r["wall_s"] for r in runs_w])
    w_wall_all = [r["wall_s"] for r in runs_w]
    t_wall = med([r["wall_s"] for r in runs_t])
    w_rss = max(r["peak_rss"] for r in runs_w)
    t_rss = max(r["peak_rss"] for r in runs_t) if runs_t else None
    totals = [r["result"]["total"] for r in runs_w]
    lat_ms = [r["result"]["latency"]["median_ms"] for r in runs_w]

    def rate(tokens, secs):
        return f"{tokens / secs:,.0f}" if tokens and secs else "n/a"

    import_torch = subprocess.run(
        [args.torch_python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except Exception:  # noqa: BLE001
        pass

    L = []
    p = L.append
    p(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs ({cpu}), "
      f"{n} threads each (worker: RAYON_NUM_THREADS={n}{' and --threads ' + str(n) if has_threads_flag else ''}; "
      f"torch: torch.set_num_threads({n})), torch {import_torch}, Python {platform.python_version()}.")
    p(f"Samples: {len(w0['samples'])} conversations of the built-in set, all scored for similarity and generated for vibe. "
      f"Load average before the run: {os.getloadavg()[0]:.2f}.")
    p("")
    p(f"SmolLM2-135M-Instruct F32, {len(runs_w)} worker runs and {len(runs_t)} torch runs alternating (medians; peak RSS is the largest):")
    p("")
    p("| | mistral.rs `worker eval` | PyTorch eager `torch_eval.py` | worker / torch |")
    p("|---|---|---|---|")
    p(f"| whole process, wall | {w_wall:.1f} s | {t_wall:.1f} s | {w_wall / t_wall:.2f}× |")
    p(f"| evaluation after loading (similarity + generation + latency) | {w_phase['eval_s'] or float('nan'):.1f} s | {t_phase['eval_s']:.1f} s | {(w_phase['eval_s'] or float('nan')) / t_phase['eval_s']:.2f}× |")
    p(f"| load (process start to weights ready) | {w_phase['load_s'] or float('nan'):.1f} s | {t_phase['import_s'] + t_phase['load_s']:.1f} s (import torch {t_phase['import_s']:.1f} s) | |")
    p(f"| similarity phase | {w_phase['similarity_s'] or float('nan'):.1f} s | {t_phase['similarity_s']:.1f} s | {(w_phase['similarity_s'] or float('nan')) / t_phase['similarity_s']:.2f}× |")
    p(f"| scoring throughput ({scoring_tokens} tokens teacher-forced) | {rate(scoring_tokens, w_phase['similarity_s'])} tokens/s | {rate(scoring_tokens, t_phase['similarity_s'])} tokens/s | |")
    p(f"| generation phase (prefill + greedy decode) | {w_phase['generation_s'] or float('nan'):.1f} s | {t_phase['generation_s']:.1f} s | {(w_phase['generation_s'] or float('nan')) / t_phase['generation_s']:.2f}× |")
    p(f"| generation throughput (generated tokens / phase time) | {rate(gen_w, w_phase['generation_s'])} tokens/s ({gen_w} tokens) | {rate(counts.get('generated_tokens'), t_phase['generation_s'])} tokens/s ({counts.get('generated_tokens')} tokens) | |")
    if t0:
        decode = [r["result"]["throughput"]["decode_tokens_per_s"] for r in runs_t]
        prefill = [r["result"]["throughput"]["prefill_tokens_per_s"] for r in runs_t]
        p(f"| torch generation split | | prefill {med(prefill):,.0f} tokens/s ({counts.get('generation_prompt_tokens')} prompt tokens), decode {med(decode):,.1f} tokens/s | |")
    p(f"| latency phase (2 + 9 passes of 256 tokens) | {w_phase['latency_s'] or float('nan'):.1f} s | {t_phase['latency_s']:.1f} s | |")
    p(f"| latency probe median | {med(lat_ms):.1f} ms | {med([r['result']['latency']['median_ms'] for r in runs_t]):.1f} ms | |")
    p(f"| peak RSS | {fmt_mb(w_rss)} | {fmt_mb(t_rss)} | {w_rss / t_rss:.2f}× |")
    p(f"| total score | {statistics.median(totals):.6f} | {statistics.median([r['result']['total'] for r in runs_t]):.6f} | |")
    p("")
    speedup = t_wall / w_wall
    p(f"Target (whole `worker eval` ≥ 1.5× as fast as torch, lower peak RSS): speed {speedup:.2f}× "
      f"({'met' if speedup >= 1.5 else 'NOT met'}), peak RSS {'lower' if w_rss < t_rss else 'NOT lower'}.")
    if full:
        ft = full["result"]["timings"]
        p(f"torch with the full-vocabulary logits of every position (`--full-logits`, as the raw-logits request computes): "
          f"similarity phase {ft['similarity_s']:.1f} s against {t_phase['similarity_s']:.1f} s, peak RSS {fmt_mb(full['peak_rss'])}.")
    if agreement:
        p(f"Agreement: per-sample similarity max |worker - torch| = {agreement['max_similarity_diff']:.2e} over {agreement['samples']} samples; "
          f"vibe component differs by {agreement['vibe_component_diff']:.2e}; {agreement['identical_replies']}/{agreement['samples']} greedy replies identical; "
          f"`tokens` {agreement['tokens_worker']} (worker) vs {agreement['tokens_torch']} (torch). "
          f"Worker generated tokens: {same} replies counted from torch's identical ones, {est} re-tokenized (+1 EOS).")
    p("")
    p(f"Five-evaluation spread, worker on SmolLM2 F32 ({len(totals)} runs):")
    p("")
    p("| run | total | latency median | latency component | wall |")
    p("|---|---|---|---|---|")
    for i, r in enumerate(runs_w, 1):
        res = r["result"]
        p(f"| {i} | {res['total']:.6f} | {res['latency']['median_ms']:.1f} ms (min {res['latency']['min_ms']:.1f}, max {res['latency']['max_ms']:.1f}) | {res['components']['latency']:.6f} | {r['wall_s']:.1f} s |")
    p("")
    sp = spread(totals)
    p(f"Spread of the total, (max - min) / median: {sp * 100:.4f} % ({'within' if sp <= 0.005 else 'NOT within'} 0.5 %); "
      f"of the latency median: {spread(lat_ms) * 100:.2f} %; similarity identical in all runs: "
      f"{len({r['result']['components']['similarity'] for r in runs_w}) == 1}; vibe identical: "
      f"{len({r['result']['components']['vibe'] for r in runs_w}) == 1}; wall spread {spread(w_wall_all) * 100:.1f} %.")
    if others:
        p("")
        p("Other real models, one `worker eval` each:")
        p("")
        p("| model | template | wall | load | similarity phase | generation phase | latency median | peak RSS | tokens (worker) | total |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        for r in others:
            ph = worker_phases(r)
            res = r["result"]
            f = lambda x: f"{x:.1f} s" if x is not None else "n/a"
            p(f"| {r['name']} | {r['template']} | {r['wall_s']:.1f} s | {f(ph.get('load_s'))} | {f(ph.get('similarity_s'))} | {f(ph.get('generation_s'))} | "
              f"{res['latency']['median_ms']:.1f} ms | {fmt_mb(r['peak_rss'])} | {res['tokens']} | {res['total']:.4f} |")
    text = "\n".join(L)
    print(text)
    with open(os.path.join(args.out, "raw.json"), "w") as f:
        json.dump(dict(worker=runs_w, torch=runs_t, full_logits=full, others=others, agreement=agreement,
                       worker_phases=wp), f, indent=1, default=str)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
