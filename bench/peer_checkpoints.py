"""One transformers Bark checkpoint in the formats of the peers bench/peers.py measures: Suno's `.pt` files, and the
input of bark.cpp's converter (which the benchmark then runs, with bark.cpp's quantizer, in the peers' environment).

Suno's format (suno-ai/bark, bark/generation.py `_load_model`): one file per model (text.pt, coarse.pt, fine.pt), each
`{"model_args": {...}, "model": state_dict, "best_val_loss": tensor}`, with nanoGPT's parameter names. transformers'
converter (src/transformers/models/bark/convert_suno_to_hf.py) renames c_attn -> att_proj, c_proj -> out_proj,
c_fc -> in_proj, drops "transformer." and turns "h." into "layers."; transformers' modules also name wte
input_embeds_layer(s), wpe position_embeds_layer, ln_1/ln_2 layernorm_1/layernorm_2 and ln_f layernorm_final. SUNO_NAMES
inverts all of it (docs/bark-peers.md has the table). The fine model ties each codebook's embedding to the head that
predicts it (wtes[i + 1] is lm_heads[i], in both libraries), so a transformers checkpoint stores them once.

bark.cpp's converter (its convert.py) reads a transformers checkpoint as `pytorch_model.bin` + `config.json` +
`vocab.txt`, with the codec's convolutions under weight-norm's old names (weight_g, weight_v; transformers now stores
them as parametrizations.weight.original0/original1) and the fine heads under their own names.

Only torch, safetensors and the standard library: it runs in either environment.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

MODELS = {"text": "semantic", "coarse": "coarse_acoustics", "fine": "fine_acoustics"}  # Suno's file -> prefix
CONFIGS = {"semantic": "semantic_config", "coarse_acoustics": "coarse_acoustics_config",
           "fine_acoustics": "fine_acoustics_config"}  # fmt: skip
# transformers' name (after the model's prefix) -> Suno's; \1 is a layer or codebook number.
SUNO_NAMES = [
    (r"input_embeds_layer\.weight", r"transformer.wte.weight"),
    (r"input_embeds_layers\.(\d+)\.weight", r"transformer.wtes.\1.weight"),
    (r"position_embeds_layer\.weight", r"transformer.wpe.weight"),
    (r"layers\.(\d+)\.layernorm_1\.(weight|bias)", r"transformer.h.\1.ln_1.\2"),
    (r"layers\.(\d+)\.layernorm_2\.(weight|bias)", r"transformer.h.\1.ln_2.\2"),
    (r"layers\.(\d+)\.attn\.att_proj\.(weight|bias)", r"transformer.h.\1.attn.c_attn.\2"),
    (r"layers\.(\d+)\.attn\.out_proj\.(weight|bias)", r"transformer.h.\1.attn.c_proj.\2"),
    (r"layers\.(\d+)\.mlp\.in_proj\.(weight|bias)", r"transformer.h.\1.mlp.c_fc.\2"),
    (r"layers\.(\d+)\.mlp\.out_proj\.(weight|bias)", r"transformer.h.\1.mlp.c_proj.\2"),
    (r"layernorm_final\.(weight|bias)", r"transformer.ln_f.\1"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"lm_heads\.(\d+)\.weight", r"lm_heads.\1.weight"),
]
CAUSAL_MASK = re.compile(r"layers\.\d+\.attn\.bias")  # a buffer (the causal mask), not a weight


def transformers_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by transformers' names, with the fine heads that the file stores once (tied)."""
    state = load_file(str(checkpoint / "model.safetensors"))
    config = json.loads((checkpoint / "config.json").read_text())["fine_acoustics_config"]
    for head in range(config["n_codes_total"] - config["n_codes_given"]):
        tied = state[f"fine_acoustics.input_embeds_layers.{head + 1}.weight"]
        state.setdefault(f"fine_acoustics.lm_heads.{head}.weight", tied)
    return state


def suno_name(name: str) -> str | None:
    """Suno's name for one tensor of a model (its prefix removed); None for the causal mask; KeyError if unknown."""
    if CAUSAL_MASK.fullmatch(name):
        return None
    for pattern, replacement in SUNO_NAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    raise KeyError(f"no Suno name for transformers' {name!r}")


def suno_model_args(config: dict) -> dict:
    """GPTConfig's (or FineGPTConfig's) arguments, from transformers' sub-config."""
    args = {
        "block_size": config["block_size"], "input_vocab_size": config["input_vocab_size"],
        "output_vocab_size": config["output_vocab_size"], "n_layer": config["num_layers"],
        "n_head": config["num_heads"], "n_embd": config["hidden_size"], "dropout": 0.0, "bias": config["bias"],
    }  # fmt: skip
    if "n_codes_total" in config:
        args.update(n_codes_total=config["n_codes_total"], n_codes_given=config["n_codes_given"])
    return args


def write_suno(checkpoint: Path, out: Path) -> dict[str, Path]:
    """text.pt, coarse.pt and fine.pt in `out` (written once: a file already there is kept); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{kind}.pt" for kind in MODELS}
    if all(path.is_file() for path in paths.values()):
        return paths
    state = transformers_state(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    for kind, prefix in MODELS.items():
        model: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            if name.startswith(prefix + ".") and (renamed := suno_name(name[len(prefix) + 1 :])) is not None:
                model[renamed] = tensor.clone()
        payload = {"model_args": suno_model_args(config[CONFIGS[prefix]]), "model": model,
                   "best_val_loss": torch.tensor(0.0)}  # fmt: skip
        partial = paths[kind].with_suffix(".partial")
        torch.save(payload, partial)
        partial.rename(paths[kind])
    return paths


def barkcpp_name(name: str) -> str:
    """The codec's weight-norm tensors under the names bark.cpp's converter reads (weight_g, weight_v)."""
    return name.replace("parametrizations.weight.original0", "weight_g").replace(
        "parametrizations.weight.original1", "weight_v"
    )


def write_barkcpp_input(checkpoint: Path, out: Path) -> Path:
    """`out` holding pytorch_model.bin, config.json and vocab.txt, as bark.cpp's converter reads a checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "pytorch_model.bin").is_file():
        return out
    state = {barkcpp_name(name): tensor.contiguous() for name, tensor in transformers_state(checkpoint).items()}
    shutil.copyfile(checkpoint / "config.json", out / "config.json")
    vocab = json.loads((checkpoint / "tokenizer.json").read_text())["model"]["vocab"]
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [index for _, index in by_id] != list(range(len(by_id))):
        raise SystemExit(f"{checkpoint}/tokenizer.json: its vocabulary's ids are not 0..{len(by_id) - 1}")
    (out / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in by_id), encoding="utf-8")
    partial = out / "pytorch_model.partial"
    torch.save(state, partial)
    partial.rename(out / "pytorch_model.bin")
    return out
