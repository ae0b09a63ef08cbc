"""What reference.py and torch_eval.py both read of a Hugging Face repository directory.
Each script runs as a file, so this directory is first on its import path."""

import json
import os


def safetensors_files(repo):
    """The repository's safetensors files, as names relative to `repo`: the shards its
    index names (each once, in order), else the single `model.safetensors`."""
    index = os.path.join(repo, "model.safetensors.index.json")
    if not os.path.exists(index):
        return ["model.safetensors"]
    with open(index) as f:
        return sorted(set(json.load(f)["weight_map"].values()))
