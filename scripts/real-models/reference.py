#!/usr/bin/env python3
"""An independent numpy forward pass of Llama and Gemma 3 (text) checkpoints in a
Hugging Face repository directory (safetensors + config.json), written from the
HF modelling code's definitions. It is the reference the engine's per-position
probabilities are compared against.

  reference.py logprobs REPO SEQS.json [--dtype float64|float32]
      SEQS.json (or - for stdin): [[token id, ...], ...] or {"sequences": [...]}.
      Prints {"model", "dtype", "logprobs", "argmax"}: for each sequence, the
      natural-log probability of each next token (entry i is position i
      predicting token i+1, so n-1 entries) and the greedy token at each of
      those positions.

  reference.py generate REPO --prompt TEXT [--max-new-tokens N] [--no-special]
      Greedy decoding with the repository's tokenizer.json (the `tokenizers`
      package); special tokens in TEXT such as <|im_start|> are recognised.
      Prints {"prompt_ids", "ids", "text"}.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

from hf_repo import safetensors_files

ST_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}


def read_safetensors(path, dtype):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = raw[base + start : base + end].view(ST_DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":
            # bfloat16 is the upper half of a float32.
            buf = (buf.astype(np.uint32) << 16).view(np.float32)
        out[name] = buf.astype(dtype).reshape(info["shape"])
    return out


def load_weights(repo, dtype):
    weights = {}
    for name in safetensors_files(repo):
        weights.update(read_safetensors(os.path.join(repo, name), dtype))
    return weights


def rope(x, positions, head_dim, base, factor=1.0):
    """HF rotary (rotate_half): x is (n, heads, head_dim)."""
    inv_freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)) / factor
    freqs = np.outer(positions.astype(np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos = np.cos(emb)[:, None, :].astype(x.dtype)
    sin = np.sin(emb)[:, None, :].astype(x.dtype)
    half = head_dim // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def attention(q, k, v, scale, window=None, softcap=None):
    """q: (n, H, D), k/v: (n, KV, D); causal, optionally a sliding window."""
    n, n_head, _ = q.shape
    groups = n_head // k.shape[1]
    k = np.repeat(k, groups, axis=1)
    v = np.repeat(v, groups, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) * scale
    if softcap is not None:
        scores = np.tanh(scores / softcap) * softcap
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= (i - j) < window
    scores = np.where(allowed[None], scores, -np.inf)
    return np.einsum("hqk,khd->qhd", softmax(scores), v).reshape(n, -1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


class Model:
    def __init__(self, repo, dtype):
        with open(os.path.join(repo, "config.json")) as f:
            self.cfg = json.load(f)
        self.dtype = dtype
        self.w = load_weights(repo, dtype)
        cfg = self.cfg
        self.kind = cfg["model_type"]
        if self.kind not in ("llama", "gemma3_text"):
            raise SystemExit(f"reference: unsupported model_type {self.kind!r}")
        self.n_head = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_head)
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.n_head
        self.eps = cfg["rms_norm_eps"]
        scaling = cfg.get("rope_scaling")
        self.rope_factor = 1.0
        if scaling:
            kind = scaling.get("rope_type", scaling.get("type"))
            if kind != "linear":
                raise SystemExit(f"reference: unsupported rope_scaling {scaling}")
            self.rope_factor = float(scaling["factor"])
        # Biases (attention_bias / mlp_bias) are not part of this forward pass;
        # refuse rather than silently ignore them.
        biases = [n for n in self.w if n.endswith(".bias")]
        if biases:
            raise SystemExit(f"reference: bias tensors are not supported ({biases[0]}, ...)")
        embed = self.w["model.embed_tokens.weight"]
        self.lm_head = self.w.get("lm_head.weight", embed)

    def norm(self, x, name):
        w = self.w[name]
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        # Gemma's RMSNorm scales by (1 + w), Llama's by w.
        return y * (1.0 + w) if self.kind == "gemma3_text" else y * w

    def hidden(self, ids):
        """Final normalised hidden states, (n, hidden)."""
        cfg, w = self.cfg, self.w
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        pos = np.arange(n)
        x = w["model.embed_tokens.weight"][ids]
        gemma = self.kind == "gemma3_text"
        if gemma:
            x = x * np.asarray(math.sqrt(cfg["hidden_size"]), dtype=self.dtype)
        layer_types = cfg.get("layer_types")
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = self.norm(x, p + "input_layernorm.weight")
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, self.n_head, self.head_dim)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, self.n_kv, self.head_dim)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, self.n_kv, self.head_dim)
            if gemma:
                q = self.norm(q, p + "self_attn.q_norm.weight")
                k = self.norm(k, p + "self_attn.k_norm.weight")
                sliding = layer_types[i] == "sliding_attention"
                if sliding:
                    base, factor, window = cfg["rope_local_base_freq"], 1.0, cfg["sliding_window"]
                else:
                    base, factor, window = cfg["rope_theta"], self.rope_factor, None
                scale = cfg["query_pre_attn_scalar"] ** -0.5
                softcap = cfg.get("attn_logit_softcapping")
            else:
                base, factor, window = cfg.get("rope_theta", 10000.0), self.rope_factor, None
                scale = self.head_dim**-0.5
                softcap = None
            q = rope(q, pos, self.head_dim, base, factor)
            k = rope(k, pos, self.head_dim, base, factor)
            a = attention(q, k, v, scale, window, softcap) @ w[p + "self_attn.o_proj.weight"].T
            if gemma:
                a = self.norm(a, p + "post_attention_layernorm.weight")
                x = x + a
                h = self.norm(x, p + "pre_feedforward_layernorm.weight")
                act = gelu_tanh
            else:
                x = x + a
                h = self.norm(x, p + "post_attention_layernorm.weight")
                act = silu
            m = (act(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[
                p + "mlp.down_proj.weight"
            ].T
            if gemma:
                m = self.norm(m, p + "post_feedforward_layernorm.weight")
            x = x + m
        return self.norm(x, "model.norm.weight")

    def logits(self, h):
        z = h @ self.lm_head.T
        cap = self.cfg.get("final_logit_softcapping")
        if cap:
            z = np.tanh(z / cap) * cap
        return z

    def next_logprobs(self, ids):
        """(log p(ids[i+1] | ids[..i]) for i < n-1, argmax at each of those positions)."""
        h = self.hidden(ids)
        lps, best = [], []
        for s in range(0, len(ids) - 1, 64):
            z = self.logits(h[s : min(s + 64, len(ids) - 1)]).astype(np.float64)
            mx = z.max(axis=-1, keepdims=True)
            lse = (mx + np.log(np.exp(z - mx).sum(axis=-1, keepdims=True)))[:, 0]
            tgt = np.asarray(ids[s + 1 : s + 1 + len(z)])
            lps.extend((z[np.arange(len(z)), tgt] - lse).tolist())
            best.extend(z.argmax(axis=-1).tolist())
        return lps, best

    def greedy(self, ids, max_new, stop):
        ids = list(ids)
        for _ in range(max_new):
            nxt = int(self.logits(self.hidden(ids)[-1:])[0].argmax())
            ids.append(nxt)
            if nxt in stop:
                break
        return ids


def main():
    ap = argparse.ArgumentParser(description="numpy reference forward pass of a HF Llama / Gemma 3 repository")
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("logprobs", help="per-position next-token log-probabilities")
    lp.add_argument("repo")
    lp.add_argument("sequences", help="JSON file of token-id sequences, or - for stdin")
    lp.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    gen = sub.add_parser("generate", help="greedy decoding from a text prompt")
    gen.add_argument("repo")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--max-new-tokens", type=int, default=16)
    gen.add_argument("--dtype", choices=["float64", "float32"], default="float32")
    gen.add_argument("--no-special", action="store_true", help="do not add the tokenizer's BOS")
    args = ap.parse_args()

    model = Model(args.repo, np.dtype(args.dtype))
    if args.cmd == "logprobs":
        src = sys.stdin if args.sequences == "-" else open(args.sequences)
        with src:
            data = json.load(src)
        seqs = data["sequences"] if isinstance(data, dict) else data
        vocab = model.cfg["vocab_size"]
        for s in seqs:
            if len(s) < 2 or not all(isinstance(t, int) and 0 <= t < vocab for t in s):
                raise SystemExit(f"reference: each sequence needs >= 2 token ids in [0, {vocab})")
        out = [model.next_logprobs(s) for s in seqs]
        json.dump(
            {
                "model": os.path.basename(os.path.normpath(args.repo)),
                "dtype": args.dtype,
                "logprobs": [o[0] for o in out],
                "argmax": [o[1] for o in out],
            },
            sys.stdout,
        )
        print()
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(os.path.join(args.repo, "tokenizer.json"))
        prompt = tok.encode(args.prompt, add_special_tokens=not args.no_special).ids
        eos = model.cfg.get("eos_token_id")
        stop = set(eos if isinstance(eos, list) else [eos])
        gc = os.path.join(args.repo, "generation_config.json")
        if os.path.exists(gc):
            with open(gc) as f:
                e = json.load(f).get("eos_token_id")
            stop |= set(e if isinstance(e, list) else [e])
        ids = model.greedy(prompt, args.max_new_tokens, stop)
        json.dump(
            {"prompt_ids": prompt, "ids": ids[len(prompt) :], "text": tok.decode(ids[len(prompt) :])},
            sys.stdout,
            ensure_ascii=False,
        )
        print()


if __name__ == "__main__":
    main()
