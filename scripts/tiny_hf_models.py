#!/usr/bin/env python3
"""Makes tiny, randomly initialised Hugging Face models and a small tokenizer,
offline, and records what transformers computes with them.

    .venv/bin/python scripts/tiny_hf_models.py OUT_DIR

OUT_DIR/<name>/ is a model directory as `save_pretrained` writes it
(config.json, model.safetensors, tokenizer.json) for each of gpt2, llama
(grouped-query attention, untied head) and qwen2 (biases on q/k/v, tied head),
each with a chat template in tokenizer_config.json,
and OUT_DIR/<name>-rm/ a reward model (`*ForSequenceClassification` with one
label: a score head on the last token) for each of the three, with the
same tokenizer. OUT_DIR/expected.json holds, per model, the token ids of a few
texts, the per-token log-probs transformers gives them, and its greedy
continuation of a prompt; per reward model, each text's score: what
tandem's own implementation must reproduce (tests/pretrained.rs).
Nothing is downloaded: the tokenizer is trained here on the text below.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
import transformers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A summary should be short, faithful to the post, and easy to read.",
    "Online preference optimisation samples from the policy it trains.",
    "Offline methods learn from a fixed dataset of preferred and rejected responses.",
    "The reward model was trained on human comparisons of two responses.",
    "Please summarise the following post in one or two sentences.",
    "I asked my landlord to fix the heating three times this winter.",
    "Helpful and harmless answers are what the raters asked for.",
] * 4

TEXTS = [
    "The reward model prefers short summaries.",
    "Online methods sample from the policy.",
    "Please fix the heating.",
]
PROMPT = "A summary should be"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
NEW_TOKENS = 10


def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


def configs(vocab, eos):
    common = dict(vocab_size=vocab, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    # A larger initialiser than the default 0.02 makes the distributions peaked
    # enough that greedy decoding is never decided by rounding.
    return {
        "gpt2": transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                        initializer_range=0.2, **common),
        "llama": transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=64, rope_theta=10000.0,
                                          tie_word_embeddings=False, initializer_range=0.2, **common),
        "qwen2": transformers.Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=1,
                                          max_position_embeddings=64, rope_theta=1000000.0,
                                          tie_word_embeddings=True, initializer_range=0.2, **common),
    }


def main(out):
    torch.manual_seed(0)
    os.makedirs(out, exist_ok=True)
    tok = tokenizer()
    eos = tok.token_to_id("<|endoftext|>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    # A chat template, as instruction-tuned models ship one in
    # tokenizer_config.json: conversational data is rendered with it.
    fast.chat_template = CHAT_TEMPLATE
    expected = {"transformers": transformers.__version__, "models": {}}
    for name, cfg in configs(tok.get_vocab_size(), eos).items():
        model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
        d = os.path.join(out, name)
        model.save_pretrained(d, safe_serialization=True)
        fast.save_pretrained(d)
        # Reload from disk, as any user of the directory would.
        model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
        texts = []
        with torch.no_grad():
            for t in TEXTS:
                ids = tok.encode(t).ids
                x = torch.tensor([ids])
                lp = model(x).logits[0, :-1].float().log_softmax(-1)
                lp = lp.gather(1, x[0, 1:].unsqueeze(1)).squeeze(1)
                texts.append({"text": t, "ids": ids, "logprobs": lp.tolist()})
            prompt = tok.encode(PROMPT).ids
            x = torch.tensor([prompt])
            gen = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                 eos_token_id=None, pad_token_id=eos)
            greedy = gen[0, len(prompt):].tolist()
            # The same by hand: generate() must not have stopped or masked anything.
            manual = list(prompt)
            for _ in range(NEW_TOKENS):
                manual.append(int(model(torch.tensor([manual])).logits[0, -1].argmax()))
            assert manual[len(prompt):] == greedy, (name, manual, greedy)
        expected["models"][name] = {"texts": texts, "prompt": prompt, "greedy": greedy}
    # Reward models: the same trunks with a one-label score head, as TRL's
    # reward models ship. Made after the language models, so their draws
    # leave the language models' weights as they were.
    expected["reward_models"] = {}
    for name, cfg in configs(tok.get_vocab_size(), eos).items():
        cfg.num_labels = 1
        model = transformers.AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager")
        d = os.path.join(out, name + "-rm")
        model.save_pretrained(d, safe_serialization=True)
        fast.save_pretrained(d)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(d, attn_implementation="eager").eval()
        texts = []
        with torch.no_grad():
            for t in TEXTS:
                ids = tok.encode(t).ids
                texts.append({"text": t, "ids": ids, "score": model(torch.tensor([ids])).logits[0, 0].item()})
        expected["reward_models"][name + "-rm"] = {"texts": texts}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
