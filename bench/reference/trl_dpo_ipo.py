#!/usr/bin/env python3
"""Workload W through TRL: DPOTrainer with loss_type="ipo" on a W-sized GPT-2, CPU only.

    bash bench/setup.sh      # installs the pinned trl/transformers/datasets/accelerate
    .venv/bin/python bench/reference/trl_dpo_ipo.py --threads 1 --steps 200 --warmup 20

Nothing is downloaded: the tokenizer is a WordLevel model over tandem's 63
tokens built in code, the dataset is built in memory, the model from a config.
Per optimizer step is timed with a TrainerCallback (on_step_begin ->
on_step_end); the warmup steps are discarded. Prints one JSON line on stdout;
TRL/transformers' own output goes to stderr.

How TRL's step differs from W (TRL 1.16 / transformers 5.24):
- prompt and response are concatenated and right-padded (no left-padded
  prompt); --pad-to 24 pads every batch to 24 tokens so the shape is W's
  64 x 24. chosen and rejected do go through one forward ([chosen; rejected]).
- the reference model is a separate frozen copy, run every step under
  no_grad (precompute_ref_log_probs=False, ref_model passed explicitly).
- log-probs come from TRL's fused LM head: the head runs only on completion
  positions (in tiles), not on all 24.
- TRL's IPO loss is length-normalised: ((h_c/n_c - h_r/n_r) - 1/(2 beta))^2
  with n = completion tokens, where W's is (beta*h - 1/2)^2. Same cost.
- the Trainer computes the global grad norm every step even with clipping
  off (max_grad_norm=0), and uses AdamW (weight_decay 0 = Adam).
TRL defaults overridden to match W: bf16=False (fp32),
gradient_checkpointing=False, constant lr 1e-4, no warmup, no clipping.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("WANDB_DISABLED", "true")

sys.dont_write_bytecode = True  # no __pycache__ for common.py in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": C.PAD, "<bos>": C.BOS, "<eos>": C.EOS, "<unk>": C.SEP}
    vocab.update({f"t{i}": i for i in range(C.FIRST_CONTENT, C.VOCAB)})
    assert len(vocab) == C.VOCAB
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        model_max_length=C.PROMPT_LEN + C.RESPONSE_LEN,
    )


def build_dataset(n_pairs, seed):
    """prompt: '<bos> t.. t..' (3..12 tokens); chosen/rejected: ' t.. t.. <eos>' (2..12 tokens).

    TRL joins prompt + completion as plain strings and appends eos_token only
    when the completion does not already end with it, so completions start
    with a space and end with ' <eos>' to keep whitespace tokenisation exact.
    """
    from datasets import Dataset

    p, c, r = C.random_pair_rows(n_pairs, seed)

    def text(ids):
        names = {C.BOS: "<bos>", C.EOS: "<eos>"}
        return " ".join(names.get(i, f"t{i}") for i in ids)

    return Dataset.from_dict(
        {
            "prompt": [text(x) for x in p],
            "chosen": [" " + text(x) for x in c],
            "rejected": [" " + text(x) for x in r],
        }
    )


def build_model():
    from transformers import GPT2LMHeadModel

    cfg = C.gpt2_config()
    return GPT2LMHeadModel(cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--steps", type=int, default=200, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=20, help="untimed optimizer steps first")
    ap.add_argument("--pairs", type=int, default=256, help="dataset size (pairs), cycled over epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=C.LR)
    ap.add_argument("--beta", type=float, default=C.BETA)
    ap.add_argument("--clip", type=float, default=0.0, help="max_grad_norm (0 = off, as in W)")
    ap.add_argument("--optim", default="adamw_torch", help="Trainer optim name (adamw_torch, adamw_torch_fused, ...)")
    ap.add_argument("--pad-to", type=int, default=C.PROMPT_LEN + C.RESPONSE_LEN,
                    help="pad_to_multiple_of (24: every batch is 64 x 24 like W; 0: dynamic padding)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import copy

    import transformers
    import trl
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig, DPOTrainer

    hf_logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()

    tok = build_tokenizer()
    ds = build_dataset(args.pairs, args.seed)
    torch.manual_seed(args.seed)
    model = build_model()
    ref_model = copy.deepcopy(model)
    params = sum(p.numel() for p in model.parameters())  # tied head counted once

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.times = []
            self.ends = []

        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            t = time.perf_counter()
            self.times.append(t - self.t0)
            self.ends.append(t)

    timer = StepTimer()
    total = args.warmup + args.steps
    # TRL defaults to activation (gradient) checkpointing; transformers 5 renamed the flag.
    ckpt_flag = "activation_checkpointing" if "activation_checkpointing" in DPOConfig.__dataclass_fields__ else "gradient_checkpointing"
    no_ckpt = {ckpt_flag: False}
    # The Trainer prints its final metrics with print(): keep stdout for the JSON line only.
    with tempfile.TemporaryDirectory(prefix="trl-ipo-") as out_dir, contextlib.redirect_stdout(sys.stderr):
        cfg = DPOConfig(
            output_dir=out_dir,
            loss_type="ipo",
            beta=args.beta,
            per_device_train_batch_size=C.PAIRS,
            gradient_accumulation_steps=1,
            max_length=C.PROMPT_LEN + C.RESPONSE_LEN,
            pad_to_multiple_of=args.pad_to or None,
            precompute_ref_log_probs=False,
            max_steps=total,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            optim=args.optim,
            max_grad_norm=args.clip,
            bf16=False,
            fp16=False,
            **no_ckpt,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_drop_last=True,
            seed=args.seed,
        )
        trainer = DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            callbacks=[timer],
        )
        assert trainer.ref_model is not None, "TRL dropped the reference model"
        m = trainer.model
        assert not trainer.args.gradient_checkpointing
        ckpt_on = m.is_activation_checkpointing if hasattr(type(m), "is_activation_checkpointing") else m.is_gradient_checkpointing
        assert not ckpt_on, "activation checkpointing is on"
        # Count reference-model forwards: W computes the reference log-probs every step.
        ref_calls = [0]
        trainer.ref_model.register_forward_hook(lambda *_: ref_calls.__setitem__(0, ref_calls[0] + 1))
        assert not trainer.args.bf16 and next(trainer.model.parameters()).dtype == torch.float32
        trainer.remove_callback(PrinterCallback)
        C.log(
            f"trl={trl.__version__} transformers={transformers.__version__} params={params} "
            f"threads={torch.get_num_threads()} device={trainer.args.device} optim={trainer.args.optim}"
        )
        ex = trainer.train_dataset[0]
        C.log(f"example 0: prompt {len(ex['prompt_ids'])} chosen {len(ex['chosen_ids'])} rejected {len(ex['rejected_ids'])} tokens")
        # Shape of one collated batch, as the trainer will see it.
        batch = next(iter(trainer.get_train_dataloader()))
        C.log("batch: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items() if hasattr(v, "shape")))
        result = trainer.train()
        C.log(f"train: {result.metrics}")
        C.log(f"reference-model forwards: {ref_calls[0]} in {total} steps")
        if ref_calls[0] != total:
            C.log("expected one reference forward per step")
            sys.exit(1)

    if len(timer.times) != total:
        C.log(f"expected {total} steps, timed {len(timer.times)}")
        sys.exit(1)
    times = timer.times[args.warmup:]
    # Wall time between consecutive step ends: also counts collation and the
    # Trainer's bookkeeping between steps.
    ends = timer.ends[args.warmup - 1:] if args.warmup > 0 else timer.ends
    wall = [b - a for a, b in zip(ends, ends[1:])]
    extra = {
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "optim": args.optim,
        "clip": args.clip,
        "pad_to": args.pad_to,
    }
    if wall:
        wall_ms = sorted(w * 1e3 for w in wall)
        extra["ms_per_step_incl_data_median"] = round(wall_ms[len(wall_ms) // 2], 4)
    print(C.summary("trl_dpo_ipo", "trl", args.threads, times, params, extra))


if __name__ == "__main__":
    main()
