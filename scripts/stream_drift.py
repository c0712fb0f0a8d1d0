#!/usr/bin/env python3
"""The test experiments/proxy_drift.exp states, computed from its evals.csv.

For each model evaluated along the online streams (a classifier evaluation
with `data: online`, one stream per seed): d = mean over the streams of
(accuracy in the first window - accuracy in the last), each accuracy a
proportion of n pairs with binomial variance p(1 - p)/n, the windows
independent; SE(d) = sqrt(sum of the variances) / (number of streams); the
95% interval d +- 1.96 SE. The file's tested models are the proxies; the
others are printed for reference. Holm's correction is over the tested ones.

    python3 scripts/stream_drift.py results/proxy_drift/evals.csv [tested ...]
"""

import csv
import math
import sys
from collections import defaultdict

TESTED_DEFAULT = ["proxy_pm", "weak_proxy"]


def main(path, tested):
    # model -> stream (eval instance) -> [(data_step, value, n)]
    windows = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["metric"] != "accuracy" or not row["data_step"]:
                continue
            model = row["target"].split("[")[0].split("@")[0]
            windows[model][row["eval"]].append((int(row["data_step"]), float(row["value"]), int(row["n"])))
    if not windows:
        sys.exit(f"{path}: no accuracy along a data stream")
    results = []
    for model, streams in sorted(windows.items()):
        diffs, var = [], 0.0
        firsts, lasts = [], []
        for rows in streams.values():
            rows.sort()
            (_, p0, n0), (_, p1, n1) = rows[0], rows[-1]
            diffs.append(p0 - p1)
            firsts.append(p0)
            lasts.append(p1)
            var += p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1
        k = len(diffs)
        d = sum(diffs) / k
        se = math.sqrt(var) / k
        z = d / se if se > 0 else float("inf")
        p = math.erfc(abs(z) / math.sqrt(2))
        results.append((model, k, sum(firsts) / k, sum(lasts) / k, d, se, p))
    # Holm over the tested models.
    tested_rows = sorted((r for r in results if r[0] in tested), key=lambda r: r[6])
    holm = {}
    m = len(tested_rows)
    running = 0.0
    for i, r in enumerate(tested_rows):
        running = max(running, min(1.0, (m - i) * r[6]))
        holm[r[0]] = running
    print("model            streams  first window  last window  first - last [95%]           p      p (Holm)  verdict")
    for model, k, first, last, d, se, p in results:
        lo, hi = d - 1.96 * se, d + 1.96 * se
        if model in holm:
            ph = holm[model]
            verdict = ("decays" if lo > 0 else "rises") if ph < 0.05 else "not decided"
            holm_text = f"{ph:.4f}"
        else:
            verdict, holm_text = "(not tested)", "-"
        print(
            f"{model:<16} {k:>7}  {first:>12.3f}  {last:>11.3f}  {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  "
            f"{p:.4f}  {holm_text:>8}  {verdict}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:] or TESTED_DEFAULT)
