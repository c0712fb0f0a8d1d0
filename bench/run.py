#!/usr/bin/env python3
"""`make bench`: tandem beside plain PyTorch and TRL, in one invocation.

    .venv/bin/python bench/run.py [--quick] [--steps N] [--threads 1,2]

Runs, one after the other so they never share the cores:
- workload W (one offline IPO step, see bench/tandem.rs) in tandem, in
  eager PyTorch (a hand-written model mirroring tandem's, and transformers'
  GPT-2) and in TRL's DPOTrainer (loss_type="ipo"), at each thread count;
- one online IPO step, and sampling 16 tokens with and without the KV cache;
- a float32 matmul through libtorch, whose rate gives the arithmetic floors;
- `tandem check` + `tandem plan` of a sweep of about 10,000 nodes;
- the quickstart study from an empty cache with --jobs 1 and --jobs 2, then a
  second `run` of the cached study (skipped with --quick).

Prints a table of ms/step and ratios against the targets of issue #7 and
writes bench/results.csv (one row per measurement, one per target).
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(ROOT, ".venv", "bin", "python")
TANDEM = os.path.join(ROOT, "target", "release", "tandem")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def json_lines(cmd, **kw):
    """Runs cmd; returns the JSON objects it printed on stdout."""
    log("$", " ".join(cmd))
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True, **kw).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def timed(cmd, reps, cwd=ROOT):
    """Median wall seconds of `reps` runs of cmd (output discarded)."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def sweep_file(path):
    """A study whose plan has about 10,000 nodes: 100 x 50 runs, each a run
    node plus its final checkpoint, over one shared world/data/SFT/PM."""
    betas = ", ".join(f"{0.01 * (i + 1):.2f}" for i in range(100))
    lrs = ", ".join(f"{1e-6 * (i + 1):.6g}" for i in range(50))
    with open(path, "w") as f:
        f.write(
            "world w = summarize(seed: 1)\n"
            "dataset d = generate(w, pairs: 1k)\n"
            "model sft = sft(d, steps: 10)\n"
            "model pm = pm(d, steps: 10)\n"
            f"run r = train(sft, loss: ipo(beta: sweep [{betas}]), lr: sweep [{lrs}], sampler: online(judge: pm), steps: 10, save_every: 10)\n"
        )


# The bench binary's benches a full run measures under `native`, in order
# (`portable_product` is measured under `portable` below).
BENCHES = ["matmul", "offline", "shared_reference", "phases", "breakdown", "online", "sampling",
           "winrate", "winrate_phases", "pm", "pm_prefix", "sft", "portable_sizes", "precision"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the quickstart study timings (about 8 minutes)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per step benchmark")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", default="1,2", help="thread counts for workload W")
    ap.add_argument("--no-trl", action="store_true", help="leave TRL out (e.g. when bench/setup.sh cannot run)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    steps = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    rows = []  # measurements
    # Every measurement goes to bench/results.csv as it completes, so that a
    # failure (or a kill) later in the run loses nothing measured before it.
    csv_path = os.path.join(ROOT, "bench", "results.csv")
    header = ["kind", "name", "impl", "threads", "ms_median", "ms_p10", "ms_p90", "value", "goal", "met", "note"]
    csv_file = open(csv_path, "w", newline="")
    writer = csv.writer(csv_file)
    writer.writerow(header)
    csv_file.flush()

    def add(m, name=None, impl=None):
        m = dict(m)
        if name:
            m["name"] = name
        if impl:
            m["impl"] = impl
        rows.append(m)
        writer.writerow(["measurement", m["name"], m["impl"], m.get("threads", ""), f"{m['ms_per_step_median']:.4f}", m.get("ms_per_step_p10", ""), m.get("ms_per_step_p90", ""), "", "", "", ""])
        csv_file.flush()
        log(f"  {m['name']:<22} {m['impl']:<22} threads {m.get('threads', '-')}: {m.get('ms_per_step_median', float('nan')):.2f} ms")
        return m

    failures = []

    def attempt(what, fn):
        # One measurement failing is recorded and the run goes on.
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any failure is reported, not fatal
            failures.append(what)
            log(f"  FAILED {what}: {e}")
            writer.writerow(["failed", what, "", "", "", "", "", "", "", "", str(e)[:200]])
            csv_file.flush()

    env = dict(os.environ, LIBTORCH_USE_PYTORCH="1")
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env.get("PATH", "")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bench", "tandem", "--bin", "tandem"], cwd=ROOT, env=env, check=True)
    bench_bin = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", "tandem", "--no-run", "--message-format", "json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    exe = [json.loads(l)["executable"] for l in bench_bin.splitlines() if '"executable":"' in l and '"name":"tandem"' in l and '"bench"' in l]
    exe = [e for e in exe if e]
    if not exe:
        sys.exit("bench/run.py: could not find the tandem bench executable")
    bench = exe[-1]

    def bench_rows(cmd):
        for m in json_lines(cmd, env=env):
            add(m)

    for t in threads:
        log(f"== workload W and friends, {t} thread(s)")
        # The bench binary runs its benches under `native` here, one by one,
        # so that one failing loses only itself.
        for name in BENCHES:
            attempt(f"{name} ({t} thr)", lambda: bench_rows([bench, "--threads", str(t), "--numerics", "native", "--only", name] + steps))
        attempt(f"pytorch_eager_handwritten ({t} thr)", lambda: add(json_lines([PY, "bench/reference/pytorch_eager.py", "--impl", "handwritten", "--threads", str(t)] + steps)[0], name="offline_ipo_step_W", impl="pytorch_eager_handwritten"))
        attempt(f"pytorch_eager_gpt2 ({t} thr)", lambda: add(json_lines([PY, "bench/reference/pytorch_eager.py", "--impl", "gpt2", "--threads", str(t)] + steps)[0], name="offline_ipo_step_W", impl="pytorch_eager_gpt2"))
        if not args.no_trl:
            trl_steps = ["--steps", str(max(20, args.steps // 4)), "--warmup", str(max(5, args.warmup // 4))]
            attempt(f"trl_dpo_ipo ({t} thr)", lambda: add(json_lines([PY, "bench/reference/trl_dpo_ipo.py", "--threads", str(t)] + trl_steps)[0], name="offline_ipo_step_W", impl="trl_dpo_ipo"))

    # The cost of the `portable` numerics profile (the default of `tandem run`)
    # against `native` (the host's kernels; the rows above): W and the matmul
    # rate at one thread, measured in the same invocation, and the portable
    # product against MKL's COMPATIBLE branch (a portable-only bench).
    log("== workload W under the portable numerics profile, 1 thread")
    for name in ("offline", "matmul", "portable_product"):
        attempt(f"{name} (portable)", lambda: bench_rows([bench, "--threads", "1", "--numerics", "portable", "--only", name] + steps))

    log("== check + plan of a 10,000-node sweep")
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "sweep.exp")
        sweep_file(f)
        out = subprocess.run([TANDEM, "plan", "--json", f], cwd=tmp, stdout=subprocess.PIPE, check=True, text=True).stdout
        nodes = len(json.loads(out)["nodes"])
        med, lo, hi = timed([TANDEM, "check", f], 5, cwd=tmp)
        add({"name": "check_10k_sweep", "impl": "tandem", "ms_per_step_median": med * 1e3, "ms_per_step_p10": lo * 1e3, "ms_per_step_p90": hi * 1e3, "nodes": nodes})
        med, lo, hi = timed([TANDEM, "plan", f], 5, cwd=tmp)
        add({"name": "plan_10k_sweep", "impl": "tandem", "ms_per_step_median": med * 1e3, "ms_per_step_p10": lo * 1e3, "ms_per_step_p90": hi * 1e3, "nodes": nodes})

    if not args.quick:
        study = os.path.join(ROOT, "experiments", "quickstart.exp")
        # native: the host's kernels, intra-op threads as asked; portable (the
        # default) computes each node on one thread, so --jobs 2 is its best.
        for numerics, jobs in (("native", 1), ("native", 2), ("portable", 2)):
            log(f"== quickstart from an empty cache, --numerics {numerics} --jobs {jobs}")
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [TANDEM, "--numerics", numerics, "--cache", os.path.join(tmp, "cache"), "run", study, "--jobs", str(jobs), "--threads", str(3 - jobs), "--results", os.path.join(tmp, "results")]
                def quickstart():
                    med, _, _ = timed(cmd, 1)
                    add({"name": "quickstart_study", "impl": f"tandem {numerics} --jobs {jobs} --threads {3 - jobs}", "ms_per_step_median": med * 1e3, "steps": 1})
                    if numerics == "portable":
                        med, lo, hi = timed(cmd, 5)
                        add({"name": "cached_rerun", "impl": "tandem", "ms_per_step_median": med * 1e3, "ms_per_step_p10": lo * 1e3, "ms_per_step_p90": hi * 1e3, "steps": 5})
                attempt(f"quickstart --numerics {numerics} --jobs {jobs}", quickstart)

    # ---- ratios against the targets
    def get(name, impl, t=None):
        for r in rows:
            if r["name"] == name and r["impl"] == impl and (t is None or r.get("threads") == t):
                return r
        return None

    targets = []

    def target(what, value, goal, ok, note=""):
        targets.append({"target": what, "value": value, "goal": goal, "met": ok, "note": note})

    for t in threads:
        w = get("offline_ipo_step_W", "tandem", t)
        mm = get("matmul_1024_f32", "tandem", t)
        if not w:
            continue
        ms = w["ms_per_step_median"]
        for impl, goal in (("pytorch_eager_handwritten", 1.5), ("pytorch_eager_gpt2", 1.5), ("trl_dpo_ipo", 10.0)):
            r = get("offline_ipo_step_W", impl, t)
            if r:
                ratio = r["ms_per_step_median"] / ms
                target(f"W offline step: {impl} / tandem ({t} thr)", ratio, f">= {goal}", ratio >= goal)
        if mm:
            rate = mm["flops_per_step"] / (mm["ms_per_step_median"] / 1e3)
            floor_ms = w["flops_per_step"] / rate * 1e3
            target(f"W offline step: tandem / floor ({t} thr)", ms / floor_ms, "<= 1.5", ms / floor_ms <= 1.5, f"floor {floor_ms:.1f} ms = {w['flops_per_step'] / 1e9:.2f} GFLOP at {rate / 1e9:.1f} GFLOP/s")
            o = get("online_ipo_step", "tandem", t)
            if o:
                ofloor = o["flops_per_step"] / rate * 1e3
                target(f"online step: tandem / floor ({t} thr)", o["ms_per_step_median"] / ofloor, "<= 3", o["ms_per_step_median"] / ofloor <= 3, f"floor {ofloor:.1f} ms")
        kv, nokv = get("sample_16_kv_cache", "tandem", t), get("sample_16_no_cache", "tandem", t)
        if kv and nokv:
            ratio = nokv["ms_per_step_median"] / kv["ms_per_step_median"]
            tps = kv["tokens_per_call"] / (kv["ms_per_step_median"] / 1e3)
            target(f"KV-cache sampling speed-up, 16 tokens ({t} thr)", ratio, ">= 5", ratio >= 5, f"{tps:.0f} tokens/s with the cache")
        # Mixed precision against float32, alternating in one process: the
        # ratio depends on the host (AVX-512 BF16 or emulation; a GPU).
        for size in ("2x64", "4x256"):
            f32, b16 = get(f"ipo_step_{size}_float32", "tandem", t), get(f"ipo_step_{size}_bf16", "tandem", t)
            if f32 and b16:
                target(f"IPO step {size}: bf16 / float32 ({t} thr)", b16["ms_per_step_median"] / f32["ms_per_step_median"], "report", True, "precision: \"bf16\" on this CPU")
    c, p = get("check_10k_sweep", "tandem"), get("plan_10k_sweep", "tandem")
    if c and p:
        # `plan` checks the file first, so its time includes check's.
        target(f"check + plan of a {p['nodes']}-node sweep (s)", p["ms_per_step_median"] / 1e3, "< 1", p["ms_per_step_median"] < 1000, "plan includes the check")
    # The price of portable: its time over native's, side by side.
    wn, wp = get("offline_ipo_step_W", "tandem", 1), get("offline_ipo_step_W", "tandem portable", 1)
    if wn and wp:
        target("W offline step: portable / native (1 thr)", wp["ms_per_step_median"] / wn["ms_per_step_median"], "report", True, "the cost of bytes that match on every host")
    mn, mp = get("matmul_1024_f32", "tandem", 1), get("matmul_1024_f32", "tandem portable", 1)
    if mn and mp:
        target("matmul 1024: portable / native (1 thr)", mp["ms_per_step_median"] / mn["ms_per_step_median"], "report", True, "MKL's COMPATIBLE branch against the host's")
    # The portable product against native at larger models' layer shapes
    # (#38 item 5): the sum of each model's layers, forward and backward.
    layers = {"policy_4x128": ("qkv", "mlp_up", "mlp_down", "head"),
              "model_10M": ("qkv", "attn_out", "mlp_up", "mlp_down", "head")}
    for t in threads:
        for model, names in layers.items():
            pp = [get(f"{model}_{n}_portable_product", "tandem", t) for n in names]
            nn = [get(f"{model}_{n}_native", "tandem", t) for n in names]
            if all(pp) and all(nn):
                ratio = sum(r["ms_per_step_median"] for r in pp) / sum(r["ms_per_step_median"] for r in nn)
                target(f"{model} layers: portable product / native ({t} thr)", ratio, "<= 1.5", ratio <= 1.5, "#38: close the gap if above")
            # On an AVX-512 host: tandem's AVX-512 kernel against the AVX2
            # one (the same bytes; bench/NOTES.md section 17).
            a2 = [get(f"{model}_{n}_portable_avx2", "tandem", t) for n in names]
            a5 = [get(f"{model}_{n}_portable_avx512", "tandem", t) for n in names]
            if all(a2) and all(a5):
                speedup = sum(r["ms_per_step_median"] for r in a2) / sum(r["ms_per_step_median"] for r in a5)
                target(f"{model} layers: AVX2 kernel / AVX-512 kernel ({t} thr)", speedup, "report", True, "the same bytes, twice the width")
    qn, qp = get("quickstart_study", "tandem native --jobs 2 --threads 1"), get("quickstart_study", "tandem portable --jobs 2 --threads 1")
    if qn and qp:
        target("quickstart wall time: portable / native (--jobs 2)", qp["ms_per_step_median"] / qn["ms_per_step_median"], "report", True)
    r = get("cached_rerun", "tandem")
    if r:
        target("second run of the cached quickstart (s)", r["ms_per_step_median"] / 1e3, "< 1", r["ms_per_step_median"] < 1000)

    # ---- print and write
    print()
    print(f"{'measurement':<22} {'implementation':<30} {'thr':>3} {'median ms':>11} {'p10':>9} {'p90':>9}")
    for r in rows:
        print(f"{r['name']:<22} {r['impl']:<30} {str(r.get('threads', '-')):>3} {r['ms_per_step_median']:>11.2f} {r.get('ms_per_step_p10', float('nan')):>9.2f} {r.get('ms_per_step_p90', float('nan')):>9.2f}")
    print()
    print(f"{'target':<52} {'value':>8} {'goal':>7}  met  note")
    for t in targets:
        print(f"{t['target']:<52} {t['value']:>8.2f} {t['goal']:>7}  {'yes' if t['met'] else 'NO ':<4} {t['note']}")
    for t in targets:
        writer.writerow(["target", t["target"], "", "", "", "", "", f"{t['value']:.4f}", t["goal"], t["met"], t["note"]])
    csv_file.close()
    print(f"\nwrote {os.path.relpath(csv_path, ROOT)}; machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    if failures:
        print(f"{len(failures)} measurement(s) failed: {', '.join(failures)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
