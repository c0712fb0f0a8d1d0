"""Shared pieces of the workload-W reference benchmarks (see README.md here).

Workload W: one offline IPO training step of a 2-layer, width-64, 4-head,
vocabulary-63 decoder-only transformer on 32 preference pairs, prompt 12
tokens (left-padded) + response 12 tokens (right-padded, ending with EOS).

Token conventions follow tandem (src/ml/tokens.rs): PAD=0, BOS=1, EOS=2,
SEP=3, ordinary tokens 4..62; a prompt starts with BOS.
"""

import json
import statistics
import sys

import torch

PAD, BOS, EOS, SEP = 0, 1, 2, 3
FIRST_CONTENT = 4
VOCAB = 63
LAYERS, WIDTH, HEADS = 2, 64, 4
PROMPT_LEN, RESPONSE_LEN = 12, 12
PAIRS = 32
BETA = 0.1
LR = 1e-4


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def random_pair_rows(n_pairs, seed):
    """Python lists of token ids: (prompts, chosen, rejected), unpadded.

    A prompt is BOS + 2..11 ordinary tokens (3..12 in all); a response is
    1..11 ordinary tokens + EOS (2..12 in all). Row 0 has full lengths so that
    every batch that contains it uses all 24 positions.
    """
    g = torch.Generator().manual_seed(seed)

    def content(k):
        return torch.randint(FIRST_CONTENT, VOCAB, (k,), generator=g).tolist()

    def rint(lo, hi):  # inclusive
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    prompts, chosen, rejected = [], [], []
    for i in range(n_pairs):
        full = i == 0
        lp = PROMPT_LEN if full else rint(3, PROMPT_LEN)
        prompts.append([BOS] + content(lp - 1))
        for out in (chosen, rejected):
            lr = RESPONSE_LEN if full else rint(2, RESPONSE_LEN)
            out.append(content(lr - 1) + [EOS])
    return prompts, chosen, rejected


def left_pad(rows, width):
    return torch.tensor([[PAD] * (width - len(r)) + r for r in rows], dtype=torch.long)


def right_pad(rows, width):
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def summary(name, impl, threads, times_s, params, extra=None):
    ms = sorted(t * 1e3 for t in times_s)
    n = len(ms)

    def pct(p):  # nearest-rank percentile on the sorted sample
        return ms[min(n - 1, max(0, round(p / 100 * (n - 1))))]

    out = {
        "name": name,
        "impl": impl,
        "threads": threads,
        "steps": n,
        "ms_per_step_median": round(statistics.median(ms), 4),
        "ms_per_step_mean": round(statistics.fmean(ms), 4),
        "ms_per_step_p10": round(pct(10), 4),
        "ms_per_step_p90": round(pct(90), 4),
        "params": params,
        "torch": torch.__version__,
    }
    if extra:
        out.update(extra)
    return json.dumps(out)


def gpt2_config(vocab=VOCAB, layers=LAYERS, width=WIDTH, heads=HEADS, context=PROMPT_LEN + RESPONSE_LEN):
    """transformers' GPT-2 config of workload W: exact GELU, no dropout, SDPA."""
    from transformers import GPT2Config

    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=context,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        n_inner=None,  # 4 * n_embd
        activation_function="gelu_new",  # tanh-approximated GELU, as in W and GPT-2
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        use_cache=False,
    )
    cfg._attn_implementation = "sdpa"
    return cfg
