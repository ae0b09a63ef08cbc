#!/usr/bin/env python3
"""A PyTorch eager implementation of `worker eval` (profile v1) for Llama checkpoints, the
baseline of the real-model CPU benchmark (`scripts/real-models/bench`). Not used in CI.

Same samples, same formulas as the worker (common/src/scoring.rs, worker/src/engine/mod.rs):

- similarity: the context rendered with the chat template (built-in `chatml`, the worker's
  sandboxed template; or a repository's own ChatML-shaped template is not rendered here),
  tokenized without special tokens, the oldest user/assistant pairs dropped until it fits
  window - min(max_reference_tokens, window / 2); the reference reply followed by the EOS
  token, tokenized without special tokens, cut to max_reference_tokens; one teacher-forced
  forward pass over context ++ reference; for each reference token its full-vocabulary
  softmax probability (f64 from the f32 logits) if fewer than top_k logits are strictly
  larger, else floor_probability; the sample's similarity is the mean over n = 1..=max_ngram
  of (sum of products of n consecutive probabilities) / reference length.
- vibe: greedy decoding (KV cache, stop at the EOS ids) of min(floor(1.5 x characters of the
  last user message), 200) tokens at most; the reply is decoded without special tokens and
  left-trimmed (as mistral.rs returns it); exp(-2 |reply chars - user chars| / user chars).
- latency: a fixed prompt of 256 ids ((i * 7919 + 17) % vocab) run as a one-token greedy
  completion, 2 untimed passes, then the median of 9 timed ones; 1 - median_ms / 10000.
- size: bytes of the files of the model directory against 18e9.

Only the logits rows that are needed are computed (the reference rows for similarity, the
last row for generation and the probe); `--full-logits` computes the full-vocabulary logits
of every position instead, as mistral.rs's raw-logits request does, to measure that cost.

  torch_eval.py REPO [--threads N] [--dataset FILE.jsonl] [--order-from WORKER.json]
                     [--samples N] [--full-logits] [--json]

The worker draws its samples with a seeded ChaCha8 shuffle; this script does not reimplement
it: `--order-from` takes the conversation ids (and order) from a `worker eval --json`
output. Without it every conversation of the dataset is scored in file order (the built-in
set has 12 conversations and profile v1 scores 64, so the worker scores all 12 as well; the
components are means, so the order does not change them).

Prints JSON shaped like `worker eval --json` (components, total, tokens, latency, samples)
plus `timings` (seconds per phase) and `throughput` (tokens/s).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
T_START = time.perf_counter()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from hf_repo import safetensors_files  # noqa: E402

T_IMPORTED = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
BUILTIN_DATASET = os.path.join(HERE, "..", "..", "worker", "data", "roleplay-mini.jsonl")

# Profile v1 (common/src/scoring.rs, ScoringProfile::v1).
V1 = dict(
    weights=dict(similarity=0.82, vibe=0.06, latency=0.06, size=0.06),
    similarity_samples=64,
    vibe_samples=16,
    max_reference_tokens=200,
    top_k=10,
    floor_probability=1e-9,
    max_ngram=4,
    vibe_budget_factor=1.5,
    vibe_max_tokens=200,
    latency_input_tokens=256,
    latency_repeats=9,
    latency_warmup=2,
    latency_reference_ms=10_000.0,
    max_model_bytes=18_000_000_000,
)

ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


# ---------------------------------------------------------------------------------------
# Loading


def load_weights(repo):
    """All tensors of the repository's safetensors files, as owned float32 tensors. Each
    tensor is read straight into its own buffer (no whole-file copy, no mmap kept)."""
    out = {}
    for name in safetensors_files(repo):
        with open(os.path.join(repo, name), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            base = 8 + n
            header.pop("__metadata__", None)
            for key, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                start, end = info["data_offsets"]
                buf = bytearray(end - start)
                f.seek(base + start)
                f.readinto(buf)
                t = torch.frombuffer(buf, dtype=ST_DTYPES[info["dtype"]]).reshape(info["shape"])
                out[key] = t if t.dtype == torch.float32 else t.float()
    return out


LAYER_TENSORS = dict(
    attn_norm="input_layernorm.weight",
    q="self_attn.q_proj.weight",
    k="self_attn.k_proj.weight",
    v="self_attn.v_proj.weight",
    o="self_attn.o_proj.weight",
    mlp_norm="post_attention_layernorm.weight",
    gate="mlp.gate_proj.weight",
    up="mlp.up_proj.weight",
    down="mlp.down_proj.weight",
)


class Llama:
    """A Llama decoder (HF LlamaForCausalLM semantics) in plain torch ops, F32, with a
    preallocated KV cache."""

    def __init__(self, repo):
        with open(os.path.join(repo, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("model_type") not in ("llama", "mistral"):
            raise SystemExit(f"torch_eval: unsupported model_type {cfg.get('model_type')!r} (Llama only)")
        if cfg.get("rope_scaling"):
            raise SystemExit(f"torch_eval: rope_scaling {cfg['rope_scaling']} is not supported")
        self.cfg = cfg
        w = load_weights(repo)
        if any(k.endswith(".bias") for k in w):
            raise SystemExit("torch_eval: bias tensors are not supported")
        self.n_layers = cfg["num_hidden_layers"]
        self.n_head = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_head)
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.n_head
        self.eps = cfg["rms_norm_eps"]
        self.vocab_size = cfg["vocab_size"]
        self.max_seq_len = cfg["max_position_embeddings"]
        theta = cfg.get("rope_theta", 10000.0)
        self.embed = w["model.embed_tokens.weight"]
        self.lm_head = w.get("lm_head.weight", self.embed)
        self.final_norm = w["model.norm.weight"]
        self.layers = []
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            self.layers.append(
                {name: w[p + key] for name, key in LAYER_TENSORS.items()}
            )
        del w
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim))
        self.inv_freq = inv_freq
        self._rope_len = 0
        self._ensure_rope(512)
        self.cache_k = self.cache_v = None

    def _ensure_rope(self, n):
        if n <= self._rope_len:
            return
        n = max(n, 2 * self._rope_len)
        freqs = torch.outer(torch.arange(n, dtype=torch.float64), self.inv_freq)
        emb = torch.cat([freqs, freqs], -1)
        self.cos = emb.cos().float()
        self.sin = emb.sin().float()
        self._rope_len = n

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, cos, sin):
        # x: (heads, T, D); rotate_half as HF.
        half = self.head_dim // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    def reset(self, capacity):
        """A KV cache for `capacity` positions."""
        shape = (self.n_layers, self.n_kv, capacity, self.head_dim)
        if self.cache_k is None or self.cache_k.shape[2] < capacity:
            self.cache_k = torch.empty(shape)
            self.cache_v = torch.empty(shape)

    def forward(self, ids, start):
        """Hidden states (after the final norm) of `ids` at positions start.., (T, hidden);
        keys and values go into the KV cache (call `reset` first)."""
        t = len(ids)
        end = start + t
        self._ensure_rope(end)
        cos, sin = self.cos[start:end], self.sin[start:end]
        x = self.embed[torch.tensor(ids, dtype=torch.long)]
        nq, nkv, d = self.n_head, self.n_kv, self.head_dim
        for i, L in enumerate(self.layers):
            h = self.rms(x, L["attn_norm"])
            q = F.linear(h, L["q"]).view(t, nq, d).transpose(0, 1)
            k = F.linear(h, L["k"]).view(t, nkv, d).transpose(0, 1)
            v = F.linear(h, L["v"]).view(t, nkv, d).transpose(0, 1)
            q = self.rope(q, cos, sin)
            self.cache_k[i, :, start:end] = self.rope(k, cos, sin)
            self.cache_v[i, :, start:end] = v
            keys = self.cache_k[i, :, :end]
            values = self.cache_v[i, :, :end]
            if t == 1:
                a = F.scaled_dot_product_attention(q, keys, values, enable_gqa=True)
            elif start == 0:
                a = F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=True)
            else:
                mask = torch.ones(t, end, dtype=torch.bool).tril(diagonal=start)
                a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
            x = x + F.linear(a.transpose(0, 1).reshape(t, nq * d), L["o"])
            h = self.rms(x, L["mlp_norm"])
            x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
        return self.rms(x, self.final_norm)

    def logits(self, h):
        return F.linear(h, self.lm_head)


# ---------------------------------------------------------------------------------------
# Scoring (common/src/scoring.rs)


def top_k_probability(row, target, k, floor):
    """row: (vocab,) float32 logits."""
    if not bool(torch.isfinite(row).all()):
        raise SystemExit("torch_eval: non-finite logits")
    if target >= row.shape[0]:
        return floor
    t = row[target]
    if int((row > t).sum()) >= k:
        return floor
    mx = row.max()
    s = (row - mx).double().exp().sum()
    return float((t - mx).double().exp() / s)


def sample_similarity(probs, max_ngram):
    n_tok = len(probs)
    if n_tok == 0:
        return 0.0
    total = 0.0
    for n in range(1, max_ngram + 1):
        s = 0.0
        for i in range(0, n_tok - n + 1):
            p = 1.0
            for x in probs[i : i + n]:
                p *= x
            s += p
        total += s / n_tok
    return total / max_ngram


def sample_vibe(reply_chars, user_chars):
    if user_chars == 0:
        return 0.0
    return math.exp(-2.0 * abs(reply_chars - user_chars) / user_chars)


def vibe_budget(user_chars):
    b = math.floor(user_chars * V1["vibe_budget_factor"])
    return max(1, min(b, V1["vibe_max_tokens"]))


def clamp01(x):
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


# ---------------------------------------------------------------------------------------
# Templates and contexts (worker/src/template.rs, context.rs)


def render_chatml(messages, add_generation_prompt=True):
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    if add_generation_prompt:
        out += "<|im_start|>assistant\n"
    return out


def fit_context(context, budget, render):
    budget = max(budget, 1)
    system = 1 if context and context[0]["role"] == "system" else 0
    tokens = render(context)
    if len(tokens) <= budget:
        return tokens, False
    turns = max(len(context) - (system + 1), 0)
    dropped = 0
    while dropped + 2 <= turns:
        dropped += 2
        tokens = render(context[:system] + context[system + dropped :])
        if len(tokens) <= budget:
            return tokens, True
    return tokens[len(tokens) - budget :], True


def latency_prompt(n, vocab):
    return [(i * 7919 + 17) % max(vocab, 1) for i in range(n)]


# ---------------------------------------------------------------------------------------


def eos_ids(repo, cfg, tok):
    """The ids generation stops at (config.json, generation_config.json and the tokenizer's
    eos_token) and the eos_token string appended to the reference."""
    sources = [cfg]
    gc = os.path.join(repo, "generation_config.json")
    if os.path.exists(gc):
        with open(gc) as f:
            sources.append(json.load(f))
    ids = set()
    for source in sources:
        e = source.get("eos_token_id")
        if e is not None:
            ids |= set(e if isinstance(e, list) else [e])
    eos_token = ""
    tc = os.path.join(repo, "tokenizer_config.json")
    if os.path.exists(tc):
        with open(tc) as f:
            e = json.load(f).get("eos_token")
        eos_token = e["content"] if isinstance(e, dict) else (e or "")
        if eos_token and tok.token_to_id(eos_token) is not None:
            ids.add(tok.token_to_id(eos_token))
    return ids, eos_token


def dir_size(repo):
    total = 0
    for root, _, files in os.walk(repo):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def main():
    ap = argparse.ArgumentParser(description="PyTorch eager baseline of `worker eval` (profile v1, Llama)")
    ap.add_argument("repo")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--dataset", default=BUILTIN_DATASET)
    ap.add_argument("--order-from", help="a `worker eval --json` output: score its samples in its order")
    ap.add_argument("--samples", type=int, help="conversations to score (overrides the profile's counts)")
    ap.add_argument("--chat-template", default="chatml", choices=["chatml"])
    ap.add_argument("--full-logits", action="store_true", help="compute the full-vocabulary logits of every position")
    ap.add_argument("--json", action="store_true", help="(accepted for symmetry; output is always JSON)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
    torch.set_grad_enabled(False)
    timings = {"import_s": T_IMPORTED - T_START}

    with open(args.dataset) as f:
        conversations = [json.loads(line) for line in f if line.strip()]
    by_id = {c["id"]: c for c in conversations}
    sim_n, vibe_n = V1["similarity_samples"], V1["vibe_samples"]
    if args.samples is not None:
        sim_n = vibe_n = args.samples
    if args.order_from:
        with open(args.order_from) as f:
            order = [s["conversation_id"] for s in json.load(f)["samples"]]
        samples = [by_id[i] for i in order][:sim_n]
    else:
        if sim_n < len(conversations):
            raise SystemExit("torch_eval: a subset needs the worker's seeded order: pass --order-from")
        samples = conversations
    vibe_n = min(vibe_n, len(samples))

    t0 = time.perf_counter()
    model = Llama(args.repo)
    tok = Tokenizer.from_file(os.path.join(args.repo, "tokenizer.json"))
    stop, eos_token = eos_ids(args.repo, model.cfg, tok)
    model.reset(min(model.max_seq_len, 4096))
    timings["load_s"] = time.perf_counter() - t0

    def encode(text):
        return tok.encode(text, add_special_tokens=False).ids

    def render_tokens(messages):
        return encode(render_chatml(messages))

    window = model.max_seq_len
    ref_budget = max(1, min(V1["max_reference_tokens"], window // 2))
    records = []
    sim_tokens = 0

    # Similarity: teacher-forced, one forward pass per sample.
    t0 = time.perf_counter()
    for conv in samples:
        msgs = conv["messages"]
        context, cut = fit_context(msgs[:-1], max(window - ref_budget, 1), render_tokens)
        reference = encode(msgs[-1]["content"] + eos_token)
        reference = reference[: min(V1["max_reference_tokens"], window - len(context))]
        ids = context + reference
        model.reset(len(ids))
        h = model.forward(ids, 0)
        first = len(context) - 1
        if args.full_logits:
            z = model.logits(h)[first : first + len(reference)]
        else:
            z = model.logits(h[first : first + len(reference)])
        probs = [
            top_k_probability(z[j], reference[j], V1["top_k"], V1["floor_probability"]) for j in range(len(reference))
        ]
        sim_tokens += len(ids)
        records.append(
            dict(
                conversation_id=conv["id"],
                similarity=sample_similarity(probs, V1["max_ngram"]),
                context_cut=cut,
                reference_tokens=len(reference),
            )
        )
    timings["similarity_s"] = time.perf_counter() - t0

    # Vibe: greedy generation with a KV cache.
    t0 = time.perf_counter()
    vibe_tokens = 0
    generated = 0
    prompt_total = 0
    prefill_s = 0.0
    for conv, rec in list(zip(samples, records))[:vibe_n]:
        msgs = conv["messages"]
        user = msgs[-2]["content"]
        user_chars = len(user)
        budget = max(1, min(vibe_budget(user_chars), window // 2))
        prompt, cut = fit_context(msgs[:-1], max(window - budget, 1), render_tokens)
        max_new = min(budget, window - len(prompt))
        model.reset(len(prompt) + max_new)
        tp = time.perf_counter()
        h = model.forward(prompt, 0)
        nxt = int(model.logits(h[-1:]).argmax(-1))
        prefill_s += time.perf_counter() - tp
        out = []
        pos = len(prompt)
        while True:
            out.append(nxt)
            if nxt in stop or len(out) >= max_new:
                break
            h = model.forward([nxt], pos)
            pos += 1
            nxt = int(model.logits(h).argmax(-1))
        generated += len(out)
        prompt_total += len(prompt)
        vibe_tokens += len(prompt) + budget
        reply = tok.decode(out, skip_special_tokens=True).lstrip()
        rec["vibe"] = sample_vibe(len(reply), user_chars)
        rec["reply"] = reply[:500]
        rec["generated_tokens"] = len(out)
        rec["context_cut"] = rec["context_cut"] or cut
    timings["generation_s"] = time.perf_counter() - t0
    timings["generation_prefill_s"] = prefill_s

    # Latency probe: a one-token greedy completion of a fixed 256-id prompt.
    t0 = time.perf_counter()
    probe = latency_prompt(max(1, min(V1["latency_input_tokens"], window - 1)), model.vocab_size)

    def one_pass():
        model.reset(len(probe) + 1)
        h = model.forward(probe, 0)
        return int(model.logits(h[-1:]).argmax(-1))

    for _ in range(V1["latency_warmup"]):
        one_pass()
    times = []
    for _ in range(V1["latency_repeats"]):
        s = time.perf_counter()
        one_pass()
        times.append((time.perf_counter() - s) * 1000.0)
    timings["latency_s"] = time.perf_counter() - t0
    median_ms = statistics.median(times)

    sims = [r["similarity"] for r in records]
    vibes = [r["vibe"] for r in records if "vibe" in r]
    size_bytes = dir_size(args.repo)
    components = dict(
        similarity=sum(sims) / len(sims) if sims else 0.0,
        vibe=sum(vibes) / len(vibes) if vibes else 0.0,
        latency=clamp01(1.0 - median_ms / V1["latency_reference_ms"]),
        size=clamp01(1.0 - size_bytes / V1["max_model_bytes"]),
    )
    total = sum(V1["weights"][k] * v for k, v in components.items())
    timings["eval_s"] = timings["similarity_s"] + timings["generation_s"] + timings["latency_s"]
    timings["process_s"] = time.perf_counter() - T_START
    decode_s = timings["generation_s"] - prefill_s
    out = dict(
        implementation=f"torch {torch.__version__} eager, F32, CPU",
        threads=torch.get_num_threads(),
        full_logits=args.full_logits,
        components=components,
        total=total,
        profile="v1",
        tokens=sim_tokens + vibe_tokens,
        samples_context_cut=sum(1 for r in records if r["context_cut"]),
        latency=dict(median_ms=median_ms, min_ms=min(times), max_ms=max(times), repeats=len(times)),
        samples=records,
        timings=timings,
        counts=dict(
            scoring_tokens=sim_tokens,
            generation_prompt_tokens=prompt_total,
            generated_tokens=generated,
            size_bytes=size_bytes,
        ),
        throughput=dict(
            scoring_tokens_per_s=sim_tokens / timings["similarity_s"],
            generated_tokens_per_s=generated / timings["generation_s"],
            decode_tokens_per_s=(generated - vibe_n) / decode_s if decode_s > 0 else None,
            prefill_tokens_per_s=prompt_total / prefill_s if prefill_s > 0 else None,
        ),
    )
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
