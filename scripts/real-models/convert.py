#!/usr/bin/env python3
"""Turns a GGUF file of a small real LLM into a Hugging Face repository directory
laid out as miners upload them: sharded safetensors with their index, config.json,
generation_config.json, tokenizer.json and tokenizer_config.json.

Supported GGUF architectures: `llama` (SmolLM2) and `gemma3` (Gemma 3 text).

Quantized GGUF tensors are dequantized with the `gguf` package (numpy only), so
the written checkpoint holds exactly the quantized model's weights, widened to
F32 or rounded to BF16. What llama.cpp's HF-to-GGUF converter changed is undone:
- llama Q/K projections were permuted for llama.cpp's interleaved rotary; they
  are permuted back so HF's rotate_half rotary is correct;
- Gemma norm weights had 1 added (llama.cpp stores the effective RMSNorm scale,
  HF Gemma computes x * (1 + w)); 1 is subtracted again.

Usage: convert.py MODEL.gguf OUT_DIR [--dtype bf16|f32] [--shard-size 200MB]
"""

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

TRANSFORMERS_VERSION = "4.55.0"

# Gemma's standard chat template (as in the instruction-tuned Gemma 3
# tokenizer_config.json). Gemma 3 270M *base* ships no chat template in its GGUF;
# we write this one anyway so tests can exercise the tokenizer's template path.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)

# GGUF token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class Gguf:
    def __init__(self, path):
        self.reader = gguf.GGUFReader(path)
        self.arch = self.get("general.architecture")

    def get(self, key, default=None):
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def hp(self, key, default=None):
        return self.get(f"{self.arch}.{key}", default)

    def tensors(self):
        for t in self.reader.tensors:
            if t.tensor_type in (Q.F32, Q.F16, Q.BF16):
                data = np.asarray(t.data).astype(np.float32)
            else:
                data = gguf.quants.dequantize(t.data, t.tensor_type)
            # GGUF shapes are innermost-first; numpy's are outermost-first, which
            # is the HF (out_features, in_features) order.
            shape = tuple(int(d) for d in reversed(t.shape))
            yield t.name, data.reshape(shape).astype(np.float32, copy=False)


def unpermute(w, n_head):
    """Inverse of llama.cpp convert_hf_to_gguf's `permute` of Q/K rows."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# The attention and MLP projections: the same names in both architectures.
PROJECTION_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
LLAMA_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    **PROJECTION_NAMES,
}
GEMMA3_NAMES = {
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    **PROJECTION_NAMES,
}


def hf_tensors(g, config):
    """Yields (HF name, float32 array) in the HF convention."""
    names = LLAMA_NAMES if g.arch == "llama" else GEMMA3_NAMES
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    for name, w in g.tensors():
        if name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf = "model.norm.weight"
        elif name == "output.weight":
            hf = "lm_head.weight"
        else:
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
            if not m or m.group(2) not in names:
                raise SystemExit(f"convert: unexpected GGUF tensor {name} for {g.arch}")
            hf = f"model.layers.{m.group(1)}.{names[m.group(2)]}.weight"
            if g.arch == "llama" and m.group(2) == "attn_q":
                w = unpermute(w, n_head)
            elif g.arch == "llama" and m.group(2) == "attn_k":
                w = unpermute(w, n_kv)
        if g.arch == "gemma3" and name.endswith("norm.weight"):
            w = w - 1.0
        yield hf, w


def f32(x):
    """A GGUF float32 as the decimal it was written from (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(x)))


def llama_config(g, dtype):
    n_head = int(g.hp("attention.head_count"))
    hidden = int(g.hp("embedding_length"))
    vocab = len(g.get("tokenizer.ggml.tokens"))
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": int(g.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(g.get("tokenizer.ggml.eos_token_id")),
        "head_dim": int(g.hp("rope.dimension_count", hidden // n_head)),
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": int(g.hp("feed_forward_length")),
        "max_position_embeddings": int(g.hp("context_length")),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": n_head,
        "num_hidden_layers": int(g.hp("block_count")),
        "num_key_value_heads": int(g.hp("attention.head_count_kv", n_head)),
        "pretraining_tp": 1,
        "rms_norm_eps": f32(g.hp("attention.layer_norm_rms_epsilon")),
        "rope_scaling": None,
        "rope_theta": f32(g.hp("rope.freq_base", 10000.0)),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in g.reader.tensors),
        "torch_dtype": dtype,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": vocab,
    }
    pad = g.get("tokenizer.ggml.padding_token_id")
    if pad is not None:
        cfg["pad_token_id"] = int(pad)
    return cfg


def gemma3_config(g, dtype):
    n_layers = int(g.hp("block_count"))
    head_dim = int(g.hp("attention.key_length"))
    # llama.cpp hard-codes Gemma 3's pattern (5 sliding-window layers, then one
    # global) and the local rope base 10000; the GGUF carries neither.
    pattern = 6
    cfg = {
        "_sliding_window_pattern": pattern,
        "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": g.hp("attn_logit_softcapping"),
        "bos_token_id": int(g.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(g.get("tokenizer.ggml.eos_token_id")),
        "final_logit_softcapping": g.hp("final_logit_softcapping"),
        "head_dim": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": int(g.hp("embedding_length")),
        "initializer_range": 0.02,
        "intermediate_size": int(g.hp("feed_forward_length")),
        "layer_types": [
            "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n_layers)
        ],
        "max_position_embeddings": int(g.hp("context_length")),
        "model_type": "gemma3_text",
        "num_attention_heads": int(g.hp("attention.head_count")),
        "num_hidden_layers": n_layers,
        "num_key_value_heads": int(g.hp("attention.head_count_kv")),
        "pad_token_id": int(g.get("tokenizer.ggml.padding_token_id", 0)),
        "query_pre_attn_scalar": head_dim,
        "rms_norm_eps": f32(g.hp("attention.layer_norm_rms_epsilon")),
        "rope_local_base_freq": 10000.0,
        "rope_scaling": None,
        "rope_theta": f32(g.hp("rope.freq_base")),
        "sliding_window": int(g.hp("attention.sliding_window")),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in g.reader.tensors),
        "torch_dtype": dtype,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_bidirectional_attention": False,
        "use_cache": True,
        "vocab_size": len(g.get("tokenizer.ggml.tokens")),
    }
    for k in ("attn_logit_softcapping", "final_logit_softcapping"):
        if cfg[k] is not None:
            cfg[k] = float(cfg[k])
    return cfg


def added_token(i, content, special):
    return {
        "id": i,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def gpt2_tokenizer(g):
    """GPT-2 byte-level BPE (SmolLM2): the GGUF holds the byte-level vocab and merges."""
    tokens = g.get("tokenizer.ggml.tokens")
    types = g.get("tokenizer.ggml.token_type")
    pre = g.get("tokenizer.ggml.pre", "default")
    # llama.cpp's "smollm" pre-tokenizer (StarCoder's) splits digits one by one
    # before the GPT-2 regex; "gpt2"/"default" is the GPT-2 regex alone.
    if pre in ("smollm", "starcoder", "refact", "codeshell"):
        pre_tok = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        }
    elif pre in ("gpt2", "default"):
        pre_tok = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    else:
        raise SystemExit(f"convert: unsupported GPT-2 pre-tokenizer {pre!r}")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(i, t, True) for i, t in enumerate(tokens) if types[i] == CONTROL],
        "normalizer": None,
        "pre_tokenizer": pre_tok,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": list(g.get("tokenizer.ggml.merges")),
        },
    }


def spm_merges(tokens, types, scores):
    """BPE merges from a SentencePiece BPE vocabulary, as transformers'
    SentencePieceExtractor derives them: every split of a piece into two vocabulary
    pieces is a merge, ranked by the merged piece's score (higher first)."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, piece in enumerate(tokens):
        if types[i] != NORMAL:
            continue
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((vocab[left], vocab[right]))
        local.sort()
        merges.extend((-scores[i], i, a, b) for a, b in local)
    merges.sort(key=lambda m: (m[0], m[1]))
    return [[tokens[a], tokens[b]] for _, _, a, b in merges]


def spm_tokenizer(g):
    """SentencePiece BPE with byte fallback (Gemma), in HF tokenizers' form."""
    tokens = g.get("tokenizer.ggml.tokens")
    types = g.get("tokenizer.ggml.token_type")
    scores = g.get("tokenizer.ggml.scores")
    if g.get("tokenizer.ggml.add_space_prefix", True):
        normalizer = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            ],
        }
    else:
        normalizer = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    bos = tokens[int(g.get("tokenizer.ggml.bos_token_id"))]
    bos_id = int(g.get("tokenizer.ggml.bos_token_id"))
    post = None
    if g.get("tokenizer.ggml.add_bos_token", False):
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
        }
    # Control tokens (<bos>, <start_of_turn>, ...) are special; user-defined ones
    # (newline and tab runs, HTML tags) are matched whole as SentencePiece does,
    # but are ordinary text.
    added = [
        added_token(i, t, types[i] == CONTROL) for i, t in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": tokens[int(g.get("tokenizer.ggml.unknown_token_id"))],
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": spm_merges(tokens, types, scores),
        },
    }


def tokenizer_files(g, config):
    tokens = g.get("tokenizer.ggml.tokens")
    types = g.get("tokenizer.ggml.token_type")
    model = g.get("tokenizer.ggml.model")
    if model == "gpt2":
        tok = gpt2_tokenizer(g)
    elif model == "llama":
        tok = spm_tokenizer(g)
    else:
        raise SystemExit(f"convert: unsupported GGUF tokenizer model {model!r}")

    def tok_of(key):
        i = g.get(key)
        return None if i is None else tokens[int(i)]

    template = g.get("tokenizer.chat_template")
    if template is None and g.arch == "gemma3":
        template = GEMMA_CHAT_TEMPLATE
    tcfg = {
        "add_bos_token": bool(g.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(g.get("tokenizer.ggml.add_eos_token", False)),
        "added_tokens_decoder": {
            str(t["id"]): {k: v for k, v in t.items() if k not in ("id",)} for t in tok["added_tokens"]
        },
        "bos_token": tok_of("tokenizer.ggml.bos_token_id"),
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": tok_of("tokenizer.ggml.eos_token_id"),
        "model_max_length": config["max_position_embeddings"],
        "pad_token": tok_of("tokenizer.ggml.padding_token_id"),
        "tokenizer_class": "GPT2Tokenizer" if model == "gpt2" else "GemmaTokenizer",
        "unk_token": tok_of("tokenizer.ggml.unknown_token_id"),
    }
    if model == "gpt2":
        tcfg["additional_special_tokens"] = [t for t in ("<|im_start|>", "<|im_end|>") if t in tokens]
    else:
        tcfg["spaces_between_special_tokens"] = False
    return tok, tcfg


def generation_config(g, config):
    gen = {
        "_from_model_config": True,
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "transformers_version": TRANSFORMERS_VERSION,
    }
    if "pad_token_id" in config:
        gen["pad_token_id"] = config["pad_token_id"]
    if g.arch == "gemma3":
        # Gemma also stops at <end_of_turn> (as Google's generation_config does).
        tokens = g.get("tokenizer.ggml.tokens")
        if "<end_of_turn>" in tokens:
            gen["eos_token_id"] = [config["eos_token_id"], tokens.index("<end_of_turn>")]
        gen["cache_implementation"] = "hybrid"
    return gen


def to_storage(w, dtype):
    """The little-endian array written for float32 array w: F32 as is, BF16 as the
    upper 16 bits rounded to nearest even, as torch's float32 -> bfloat16 cast."""
    w = np.ascontiguousarray(w, dtype="<f4")
    if dtype == "F32":
        return w
    bits = w.view(np.uint32).copy()
    # In place, to keep the peak memory of the 170M-element Gemma embedding low.
    # Overflow is only possible for NaN payloads, which weights do not hold.
    carry = bits >> 16
    carry &= 1
    bits += 0x7FFF
    bits += carry
    bits >>= 16
    return bits.astype("<u2")


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, storage array). Writes the safetensors format by
    hand: 8-byte little-endian header length, JSON header, then the raw data."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    tensors = sorted(tensors, key=lambda t: t[0])
    for name, a in tensors:
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for _, a in tensors:
            a.tofile(f)


def parse_size(s):
    m = re.fullmatch(r"(\d+)\s*([KMG]?)B?", s.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (e.g. 64MB)")
    return int(m.group(1)) * {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}[m.group(2)]


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def convert(gguf_path, out_dir, dtype, shard_size):
    g = Gguf(gguf_path)
    torch_dtype = {"bf16": "bfloat16", "f32": "float32"}[dtype]
    st_dtype = {"bf16": "BF16", "f32": "F32"}[dtype]
    if g.arch == "llama":
        config = llama_config(g, torch_dtype)
    elif g.arch == "gemma3":
        config = gemma3_config(g, torch_dtype)
    else:
        raise SystemExit(f"convert: unsupported GGUF architecture {g.arch!r}")

    tensors = [(name, to_storage(w, st_dtype)) for name, w in hf_tensors(g, config)]
    total = sum(a.nbytes for _, a in tensors)
    # Always at least two shards, so the sharded-loading path is exercised.
    limit = min(shard_size, math.ceil(total / 2))
    shards, cur, cur_size = [], [], 0
    for name, w in sorted(tensors, key=lambda t: t[0]):
        size = w.nbytes
        if cur and cur_size + size > limit:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append((name, w))
        cur_size += size
    shards.append(cur)
    if len(shards) < 2:
        raise SystemExit("convert: the model has too few tensors to shard")

    tmp = tempfile.mkdtemp(prefix=".convert-", dir=os.path.dirname(os.path.abspath(out_dir)))
    os.chmod(tmp, 0o755)
    try:
        weight_map = {}
        for k, shard in enumerate(shards):
            fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(os.path.join(tmp, fname), shard, st_dtype)
            weight_map.update({name: fname for name, _ in shard})
        write_json(
            os.path.join(tmp, "model.safetensors.index.json"),
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
        )
        write_json(os.path.join(tmp, "config.json"), config)
        write_json(os.path.join(tmp, "generation_config.json"), generation_config(g, config))
        tok, tcfg = tokenizer_files(g, config)
        with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)
        write_json(os.path.join(tmp, "tokenizer_config.json"), tcfg)
        check_tokenizer(os.path.join(tmp, "tokenizer.json"), tok)
        # Replace the output directory whole, so a failed run leaves no half repo.
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


SAMPLES = [
    "Hello, world!",
    "What is the capital of France? Paris, of course.",
    "Numbers 12345 and 3.14159; symbols: <tag> & 'quotes' \"double\"",
    "  leading spaces,\ttabs\nnewlines\n\nand trailing  ",
    "Unicode: café, naïve, 東京, emoji \U0001f600, Ω≈ç√∫",
]


def check_tokenizer(path, tok):
    """The `tokenizers` package loads the file and decodes what it encodes back to
    the original text."""
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(path)
    if t.get_vocab_size() != len(tok["model"]["vocab"]):
        raise SystemExit(f"convert: tokenizer vocab size {t.get_vocab_size()} != {len(tok['model']['vocab'])}")
    for s in SAMPLES:
        ids = t.encode(s, add_special_tokens=False).ids
        back = t.decode(ids, skip_special_tokens=False)
        if back != s:
            raise SystemExit(f"convert: tokenizer does not round-trip {s!r}: {ids} -> {back!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", help="input .gguf file")
    ap.add_argument("out", help="output repository directory (replaced)")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument(
        "--shard-size", type=parse_size, default=parse_size("200MB"), help="largest shard (at least 2 shards)"
    )
    args = ap.parse_args()
    convert(args.gguf, args.out, args.dtype, args.shard_size)
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
