#!/usr/bin/env python3
"""Checks a tandem binary's pretrained-model path on one device, against
transformers, and times it: the checks of tests/pretrained.rs, from outside
the binary, for a machine that has a GPU but no Rust toolchain.

    python3 scripts/device_check.py --tandem BIN --numerics cuda --out DIR

--numerics cuda runs everything on the GPU (`--device cuda`); portable or
native runs it on the CPU, which is how this script is checked where there is
no GPU. It needs Python with torch, transformers and tokenizers: on a GPU
machine, the machine's own PyTorch, whose libtorch the binary must be built
for (scripts/build-device-binary.sh) and run on (LD_LIBRARY_PATH).

What it checks, each a line of DIR/device_check.json and of its output:
  1. `tandem env`: the libtorch, the CUDA backend, the devices it sees.
  2. For tiny random GPT-2, Llama and Qwen2 models (scripts/tiny_hf_models.py),
     the log-probability tandem gives each text equals transformers' (CPU)
     within 1e-3 (it prints four decimals), and greedy continuations match.
  3. A text study on the device (SFT, offline IPO, a PM from the SFT trunk,
     online IPO, its exact replay, a win rate): it runs to the end, the
     replay's checkpoint equals the online run's byte for byte, and the
     exported policy scores texts in transformers (on the device) as tandem
     does (within 1e-3). The study run a second time, into an empty cache,
     gives the same bytes for every model.
  4. A study of tandem's own models (a world, SFT, a PM, online IPO, its
     exact replay, offline IPO), whose attention is libtorch's fused kernel:
     it ends, repeats its bytes, and the replay equals the online run.
  5. With --precisions float32,bf16, studies 3 and 4 run in each precision;
     a bf16 study trains in mixed precision, keeps every model in float32
     and must pass the same checks.
  6. The wall time of each tandem command, so that a GPU's numbers sit beside
     a CPU's.
Nothing is downloaded. Exit status 0 only when every check passed.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = """\
model base = pretrained("model")
dataset prefs = jsonl("prefs.jsonl", tokenizer_of: base)
model sft = sft(prefs, base: base, steps: 20, batch: 8, lr: 1e-3{p})
run ipo_run = train(sft, loss: ipo(beta: 0.1), sampler: offline(prefs), lr: 1e-3, batch: 8, steps: 10, save_every: 10{p})
model judge = pm(prefs, base: sft, steps: 5, batch: 8, lr: 1e-3{p})
run online_run = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: judge), batch: 4, steps: 4, save_every: 4{p})
run replayed = online_run with {{ sampler: replay(online_run, shuffle: 0) }}
eval against_sft = winrate(policies: [online_run], baseline: sft, judge: judge, prompts: 8, at: [4])
"""

# tandem's own small transformers on a synthetic world: libtorch's fused
# attention rather than the pretrained families' written-out one.
OWN_STUDY = """\
world w = summarize(seed: 1, noise: 0.5)
dataset d = generate(w, pairs: 512, val_fraction: 0.1)
model sft = sft(d, layers: 1, width: 32, heads: 4, steps: 30, batch: 32, lr: 1e-3{p})
model judge = pm(d, layers: 1, width: 32, heads: 4, steps: 30, batch: 32, lr: 1e-3{p})
run online_run = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: judge), lr: 1e-4, batch: 16, steps: 6, save_every: 6{p})
run replayed = online_run with {{ sampler: replay(online_run, shuffle: 0) }}
run offline_run = online_run with {{ sampler: offline(d) }}
"""


class Checks:
    def __init__(self, out):
        self.out = out
        self.rows = []

    def record(self, name, ok, **facts):
        self.rows.append({"check": name, "ok": bool(ok), **facts})
        print(f"{'ok  ' if ok else 'FAIL'} {name} {json.dumps(facts)}", flush=True)

    def save(self, meta):
        with open(os.path.join(self.out, "device_check.json"), "w") as f:
            json.dump({**meta, "checks": self.rows}, f, indent=1)
        return all(r["ok"] for r in self.rows)


def tandem(args, cmd, cwd=None, timeout=900):
    """Runs the binary; gives (completed process, wall seconds)."""
    full = [args.tandem, "--numerics", args.numerics] + cmd
    start = time.monotonic()
    p = subprocess.run(full, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    with open(os.path.join(args.out, "commands.log"), "a") as log:
        log.write(f"$ {' '.join(full)}  ({wall:.2f} s, exit {p.returncode})\n{p.stdout}{p.stderr}\n")
    return p, wall


def run_flags(args):
    return ["--device", "cuda"] if args.numerics == "cuda" else []


def log_p(stdout):
    return [float(m) for m in re.findall(r"log p = (-?[0-9.]+)", stdout)]


def greedy_ids(stdout):
    return [[int(i) for i in m.split()] for m in re.findall(r"^\s*greedy ids ([0-9 ]*)$", stdout, re.M)]


def check_pretrained(args, checks, tiny):
    from tokenizers import Tokenizer

    expected = json.load(open(os.path.join(tiny, "expected.json")))
    for name, want in expected["models"].items():
        d = os.path.join(tiny, name)
        texts = [t["text"] for t in want["texts"]]
        cmd = ["pretrained", d]
        for t in texts:
            cmd += ["--text", t]
        p, wall = tandem(args, cmd)
        got = log_p(p.stdout)
        want_lp = [sum(t["logprobs"]) for t in want["texts"]]
        worst = max((abs(a - b) for a, b in zip(got, want_lp)), default=float("inf"))
        ok = p.returncode == 0 and len(got) == len(want_lp) and worst < 1e-3
        checks.record(f"{name}: log p of {len(texts)} texts equals transformers'", ok,
                      worst_abs_diff=worst, seconds=round(wall, 3), on=device_line(p.stdout))
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        prompt = tok.decode(want["prompt"])
        p, wall = tandem(args, ["pretrained", d, "--text", prompt, "--generate", str(len(want["greedy"]))])
        ours = greedy_ids(p.stdout)
        checks.record(f"{name}: greedy continuation equals transformers'",
                      p.returncode == 0 and ours == [want["greedy"]],
                      tandem=ours, transformers=want["greedy"], seconds=round(wall, 3))


def device_line(stdout):
    m = re.search(r"^device\s+(\S+)", stdout, re.M)
    return m.group(1) if m else None


def node_key(plan, name):
    for n in plan["nodes"]:
        if name in n["names"]:
            return n["key"]
    raise KeyError(name)


def float32_weights(path):
    """Whether every tensor of a safetensors file is float32 (its header says)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")


def precision_args(precision):
    """The study's training arguments for `precision`."""
    return "" if precision == "float32" else f', precision: "{precision}"'


def run_study(args, checks, label, root, models, online, replay):
    """Runs root/study.exp on the device, twice into empty caches, and
    checks that it ends, that every model in `models` is saved in float32,
    that the second run computes the same bytes, and that the checkpoint
    `replay` of an exact replay equals the online run's `online`. Gives
    (plan, cache) when the study ran."""
    cache = os.path.join(root, "cache")
    p, wall = tandem(args, ["run", "study.exp", "--cache", cache, "--results", "results"] + run_flags(args), cwd=root)
    checks.record(f"{label}: the study runs to the end", p.returncode == 0,
                  seconds=round(wall, 2), tail=p.stderr.strip().splitlines()[-3:])
    if p.returncode != 0:
        return None
    plan = json.loads(tandem(args, ["plan", "study.exp", "--json"], cwd=root)[0].stdout)

    def weights(name, cache=cache):
        return os.path.join(cache, "objects", node_key(plan, name), "model.safetensors")

    def checkpoint(name, cache=cache):
        with open(weights(name, cache), "rb") as f:
            return hashlib.blake2b(f.read()).hexdigest()

    # Mixed precision keeps float32 weights: a bf16 study passes every check
    # a float32 one does.
    try:
        kept = all(float32_weights(weights(n)) for n in models)
        checks.record(f"{label}: every model is saved in float32", kept, models=models)
    except (KeyError, OSError, ValueError) as e:
        checks.record(f"{label}: every model is saved in float32", False, error=str(e))

    # The same study again, into an empty cache: the same bytes, or one key
    # names two results on this device.
    again = os.path.join(root, "cache-again")
    p, wall = tandem(args, ["run", "study.exp", "--cache", again, "--results", "results-again"] + run_flags(args),
                     cwd=root)
    try:
        differ = [n for n in models if checkpoint(n) != checkpoint(n, again)]
        checks.record(f"{label}: a second run computes the same bytes", p.returncode == 0 and not differ,
                      compared=models, differ=differ, seconds=round(wall, 2))
    except (KeyError, OSError) as e:
        checks.record(f"{label}: a second run computes the same bytes", False, error=str(e))

    try:
        same = checkpoint(online) == checkpoint(replay)
        moved = checkpoint(online) != checkpoint("sft")
        checks.record(f"{label}: the exact replay's checkpoint equals the online run's", same and moved,
                      replay_equal=same, online_moved_from_sft=moved)
    except (KeyError, OSError) as e:
        checks.record(f"{label}: the exact replay's checkpoint equals the online run's", False, error=str(e))
    return plan, cache


def new_project(label):
    root = tempfile.mkdtemp(prefix=f"tandem-{label.replace(' ', '-')}-")
    os.mkdir(os.path.join(root, ".git"))  # the project's root, for relative paths
    return root


def check_own_study(args, checks, precision):
    """tandem's own trunk (libtorch's fused attention, not the pretrained
    families' written-out one) on the device."""
    label = "own models" + ("" if precision == "float32" else f" {precision}")
    root = new_project(label)
    with open(os.path.join(root, "study.exp"), "w") as f:
        f.write(OWN_STUDY.format(p=precision_args(precision)))
    run_study(args, checks, label, root, ["sft", "judge", "online_run@6", "offline_run@6"], "online_run@6",
              "replayed@6")


def check_study(args, checks, tiny, family, precision):
    import torch
    import transformers

    if precision != "float32":
        family = f"{family} {precision}"
    root = new_project(family)
    shutil.copytree(os.path.join(tiny, family.split()[0]), os.path.join(root, "model"))
    shutil.copy(os.path.join(ROOT, "tests/data/real_text.jsonl"), os.path.join(root, "prefs.jsonl"))
    with open(os.path.join(root, "study.exp"), "w") as f:
        f.write(STUDY.format(p=precision_args(precision)))
    ran = run_study(args, checks, f"{family} text", root, ["sft", "judge", "ipo_run@10", "online_run@4"],
                    "online_run@4", "replayed@4")
    if ran is None:
        return
    plan, cache = ran

    exported = os.path.join(root, "exported")
    p, _ = tandem(args, ["export", node_key(plan, "ipo_run@10"), exported, "--cache", cache])
    if p.returncode != 0:
        checks.record(f"{family}: the trained policy exports", False, stderr=p.stderr[-500:])
        return
    texts = [json.loads(line)["prompt"] + " " + json.loads(line)["chosen"]
             for line in open(os.path.join(ROOT, "tests/data/real_text.jsonl")).read().splitlines()[:4]]
    device = "cuda" if args.numerics == "cuda" else "cpu"
    model = transformers.AutoModelForCausalLM.from_pretrained(exported, attn_implementation="eager").eval().to(device)
    tok = transformers.AutoTokenizer.from_pretrained(exported)
    theirs = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"]], device=device)
            lp = model(ids).logits[0, :-1].float().log_softmax(-1).gather(1, ids[0, 1:].unsqueeze(1))
            theirs.append(float(lp.sum()))
    cmd = ["pretrained", exported]
    for t in texts:
        cmd += ["--text", t]
    p, _ = tandem(args, cmd)
    ours = log_p(p.stdout)
    worst = max((abs(a - b) for a, b in zip(ours, theirs)), default=float("inf"))
    checks.record(f"{family}: the exported policy scores texts in transformers ({device}) as in tandem",
                  p.returncode == 0 and len(ours) == len(theirs) and worst < 1e-3, worst_abs_diff=worst)


def time_study(args, checks, exp):
    """Runs a whole study from an empty cache on the device, for its times."""
    root = tempfile.mkdtemp(prefix="tandem-timed-")
    cmd = ["run", os.path.join(ROOT, exp), "--cache", os.path.join(root, "cache"),
           "--results", os.path.join(root, "results")] + run_flags(args)
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    p, wall = tandem(args, cmd, timeout=3600)
    m = re.search(r"^computed\s+(\d+)\s+\(([0-9.]+)s of node time\)", p.stdout + p.stderr, re.M)
    facts = {"wall_seconds": round(wall, 1)}
    if m:
        facts.update(nodes=int(m.group(1)), node_seconds=float(m.group(2)))
    checks.record(f"{exp} runs to the end", p.returncode == 0 and m is not None, **facts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", required=True, help="the tandem binary to check")
    ap.add_argument("--numerics", default="cuda", choices=["cuda", "portable", "native"])
    ap.add_argument("--out", required=True, help="folder for device_check.json and commands.log")
    ap.add_argument("--families", default="gpt2,llama", help="model families for the text study")
    ap.add_argument("--precisions", default="float32",
                    help="training precisions of the text study, e.g. float32,bf16 (bf16: not under portable)")
    ap.add_argument("--time-study", metavar="EXP", action="append", default=[],
                    help="also run this study (e.g. experiments/quickstart.exp) from an empty cache and record "
                         "its wall and node time; repeatable")
    ap.add_argument("--jobs", type=int, default=None, help="--jobs for the timed studies")
    args = ap.parse_args()
    args.tandem = os.path.abspath(args.tandem)
    os.makedirs(args.out, exist_ok=True)
    checks = Checks(args.out)

    p, _ = tandem(args, ["env"])
    env = dict(re.findall(r"^(libtorch|cuda backend|deterministic|cuda available|cuda devices|cpu) {2,}(.*)$",
                          p.stdout, re.M))
    checks.record("tandem env honours the profile", p.returncode == 0, **env)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        return checks.save({"numerics": args.numerics})

    tiny = tempfile.mkdtemp(prefix="tandem-tiny-")
    made = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/tiny_hf_models.py"), tiny],
                          capture_output=True, text=True)
    checks.record("tiny models made by transformers", made.returncode == 0,
                  **({} if made.returncode == 0 else {"stderr": made.stderr[-500:]}))
    if made.returncode == 0:
        check_pretrained(args, checks, tiny)
        for precision in args.precisions.split(","):
            for family in args.families.split(","):
                check_study(args, checks, tiny, family, precision)
    for precision in args.precisions.split(","):
        check_own_study(args, checks, precision)

    for exp in args.time_study:
        time_study(args, checks, exp)

    import torch
    import transformers
    meta = {"numerics": args.numerics, "env": env, "python_torch": torch.__version__,
            "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return checks.save(meta)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
