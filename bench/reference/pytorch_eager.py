#!/usr/bin/env python3
"""Workload W in eager PyTorch: one offline IPO training step per iteration.

    .venv/bin/python bench/reference/pytorch_eager.py --impl handwritten --threads 1 --steps 200 --warmup 20
    .venv/bin/python bench/reference/pytorch_eager.py --impl gpt2 --threads 2

One step = reference log-probs under no_grad (frozen copy, same 64x24 batch)
+ policy forward of chosen and rejected together (64 sequences x 24 tokens)
+ IPO loss + zero_grad + backward + Adam step. Prints one JSON line on stdout;
diagnostics go to stderr.

--impl handwritten mirrors tandem's model (src/ml/transformer.rs, policy.rs):
pre-LN blocks with a fused qkv Linear, SDPA with a causal & key-padding mask
(self always allowed), exact GELU, untied head without bias, positions counted
over real tokens, logits only at the 12 positions that predict response
tokens, PAD/BOS/SEP logits pushed to -1e9.

--impl gpt2 is transformers' GPT2LMHeadModel (tied head, Conv1D layers) with
the same inputs: attention_mask, the same position_ids, and logits_to_keep so
the head runs on the last 13 positions only.
"""

import argparse
import copy
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ for common.py in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# --------------------------------------------------------------------------- models


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))  # tanh-approximated GELU, as W


class HandwrittenPolicy(nn.Module):
    def __init__(self, vocab, layers, width, heads, context):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        forbid = torch.zeros(vocab)
        forbid[[C.PAD, C.BOS, C.SEP]] = -1e9
        self.register_buffer("forbid", forbid, persistent=False)
        self._init(layers)

    def _init(self, layers):
        # tandem's scheme: N(0, 0.02^2) weights, 0 biases, LN gains 1,
        # output projections scaled by 1/sqrt(2 layers).
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "ln" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif name.endswith("bias"):
                    p.zero_()
                else:
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                    p.normal_(0.0, std)

    def response_logits(self, seq, key_mask, positions, lp, lr):
        """Logits [B, lr, V]; row j is the distribution of response token j."""
        x = self.tok(seq) + self.pos(positions)
        t = seq.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=seq.device)
        mask = (causal & key_mask[:, None, None, :]) | eye  # [B,1,T,T]
        for blk in self.blocks:
            x = blk(x, mask)
        h = self.ln_f(x).narrow(1, lp - 1, lr)
        return self.head(h) + self.forbid


class GPT2Policy(nn.Module):
    def __init__(self, vocab, layers, width, heads, context):
        super().__init__()
        from transformers import GPT2LMHeadModel

        cfg = C.gpt2_config(vocab, layers, width, heads, context)
        self.model = GPT2LMHeadModel(cfg)
        forbid = torch.zeros(vocab)
        forbid[[C.PAD, C.BOS, C.SEP]] = -1e9
        self.register_buffer("forbid", forbid, persistent=False)

    def response_logits(self, seq, key_mask, positions, lp, lr):
        t = seq.shape[1]
        out = self.model(
            input_ids=seq,
            attention_mask=key_mask.long(),
            position_ids=positions,
            use_cache=False,
            logits_to_keep=t - (lp - 1),  # positions lp-1 .. t-1
        )
        return out.logits[:, :lr] + self.forbid


# --------------------------------------------------------------------------- step


def make_batches(n_batches, seed):
    """n_batches of (seq [2B, Lp+Lr], key_mask, positions, responses [2B, Lr])."""
    out = []
    for i in range(n_batches):
        p, c, r = C.random_pair_rows(C.PAIRS, seed + i)
        prompts = C.left_pad(p, C.PROMPT_LEN)
        responses = torch.cat([C.right_pad(c, C.RESPONSE_LEN), C.right_pad(r, C.RESPONSE_LEN)], 0)
        seq = torch.cat([prompts.repeat(2, 1), responses], 1)  # [chosen; rejected]
        key_mask = seq.ne(C.PAD)
        positions = (key_mask.long().cumsum(1) - 1).clamp_min(0)
        out.append((seq, key_mask, positions, responses))
    return out


def seq_logprobs(model, seq, key_mask, positions, responses):
    logits = model.response_logits(seq, key_mask, positions, C.PROMPT_LEN, C.RESPONSE_LEN)
    logp = logits.log_softmax(-1).gather(2, responses.unsqueeze(2)).squeeze(2)
    return (logp * responses.ne(C.PAD)).sum(1)  # [2B]


def ipo_step(policy, reference, opt, batch, beta, clip):
    seq, key_mask, positions, responses = batch
    with torch.no_grad():
        ref = seq_logprobs(reference, seq, key_mask, positions, responses)
    pol = seq_logprobs(policy, seq, key_mask, positions, responses)
    lw, ll = pol.chunk(2)
    rw, rl = ref.chunk(2)
    h = (lw - rw) - (ll - rl)
    loss = (beta * h - 0.5).square().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), clip)
    opt.step()
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", choices=["handwritten", "gpt2"], default="handwritten")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--batches", type=int, default=8, help="distinct random batches, cycled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=C.LR)
    ap.add_argument("--beta", type=float, default=C.BETA)
    ap.add_argument("--clip", type=float, default=0.0, help="global grad-norm clip (0 = off, as in W)")
    ap.add_argument(
        "--adam",
        choices=["default", "foreach", "fused"],
        default="default",
        help="torch.optim.Adam implementation (default: torch's choice, the per-tensor loop on CPU)",
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    context = C.PROMPT_LEN + C.RESPONSE_LEN
    cls = HandwrittenPolicy if args.impl == "handwritten" else GPT2Policy
    policy = cls(C.VOCAB, C.LAYERS, C.WIDTH, C.HEADS, context)
    policy.train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    params = sum(p.numel() for p in policy.parameters())
    adam_kw = {"foreach": True} if args.adam == "foreach" else {"fused": True} if args.adam == "fused" else {}
    opt = torch.optim.Adam(policy.parameters(), lr=args.lr, **adam_kw)
    batches = make_batches(args.batches, args.seed)
    C.log(f"impl={args.impl} params={params} threads={torch.get_num_threads()} torch={torch.__version__}")

    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = ipo_step(policy, reference, opt, batches[i % len(batches)], args.beta, args.clip)
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
        if i == 0 or i == args.warmup + args.steps - 1:
            C.log(f"step {i}: loss {loss.item():.6f}")
    if not math.isfinite(loss.item()):
        C.log("non-finite loss")
        sys.exit(1)
    print(C.summary("pytorch_eager", args.impl, args.threads, times, params, {"adam": args.adam, "clip": args.clip}))


if __name__ == "__main__":
    main()
