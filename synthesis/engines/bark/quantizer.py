"""The HuBERT quantizer: HuBERT features in, one of Bark's 10,000 semantic tokens per frame out, read from the
checkpoint files Bark's community publishes.

The architecture and the file format are those of gitmylo/bark-voice-cloning-HuBERT-quantizer (its
`CustomTokenizer`; docs/hubert-cloning.md has the details and where they come from): a 2-layer LSTM over the 768-dim
features (hidden size 1024), in version 1 a linear layer to 4096, then a linear layer to the 10,000 tokens. The
published model ends in a log-softmax, which leaves the argmax taken here unchanged, so it is left out. A checkpoint
is `torch.save` of the state dict, to which files saved since the format had it add a zip member `<file stem>/.info`
holding {"input_size", "hidden_size", "output_size", "version"}. Sizes are read from the weights themselves, so the
first published file (no `.info`) loads too, and the `.info`, where present, must agree with them. Files are read
with `weights_only=True`: tensors only, never pickled code.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthesis.engines.bark.prompts import SEMANTIC_VOCAB

LSTM_LAYERS = 2
_LSTM_KEYS = tuple(
    f"lstm.{kind}_{part}_l{layer}"
    for layer in range(LSTM_LAYERS)
    for kind in ("weight", "bias")
    for part in ("ih", "hh")
)


class QuantizerError(ValueError):
    """The file is not a quantizer checkpoint this code can use; the message says why."""


class Quantizer(nn.Module):  # type: ignore[misc]  # torch is read as untyped (pyproject.toml)
    """HuBERT features (batch, frames, input_size) -> Bark semantic token logits (batch, frames, output_size)."""

    def __init__(
        self,
        input_size: int = 768,
        hidden_size: int = 1024,
        output_size: int = SEMANTIC_VOCAB,
        intermediate_size: int | None = None,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=LSTM_LAYERS, batch_first=True)
        # Version 1 only; the published one is 4096 wide, and any width loads (random test checkpoints are small).
        self.intermediate = nn.Linear(hidden_size, intermediate_size) if intermediate_size else None
        self.fc = nn.Linear(intermediate_size or hidden_size, output_size)

    @property
    def version(self) -> int:
        return 0 if self.intermediate is None else 1

    @property
    def input_size(self) -> int:
        return int(self.lstm.input_size)

    def info(self) -> dict[str, int]:
        """What the published format's `.info` member says about this model."""
        return {
            "input_size": self.lstm.input_size,
            "hidden_size": self.lstm.hidden_size,
            "output_size": self.fc.out_features,
            "version": self.version,
        }

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(features)
        if self.intermediate is not None:
            hidden = self.intermediate(hidden)  # no activation between the two linear layers, as published
        return self.fc(hidden)

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """The most likely semantic token of each frame (batch, frames)."""
        return self(features).argmax(dim=-1)


def save_quantizer(quantizer: Quantizer, path: Path) -> None:
    """Write `quantizer` in the published format: its state dict by `torch.save`, plus the `.info` member."""
    torch.save(quantizer.state_dict(), path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{path.stem}/.info", json.dumps(quantizer.info()))


def load_quantizer(path: Path) -> Quantizer:
    """The quantizer in a published-format checkpoint, on the CPU in eval mode; QuantizerError says what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith("/.info")]
            info = json.loads(archive.read(members[0])) if members else None
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:
        raise QuantizerError(f"it is not a quantizer checkpoint (torch.save of its weights): {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise QuantizerError("it holds no state dict of tensors.")
    sizes = _sizes(state)
    if info is not None:
        _check_info(info, sizes)
    if sizes["output_size"] != SEMANTIC_VOCAB:
        raise QuantizerError(
            f"it outputs {sizes['output_size']} tokens; Bark's semantic vocabulary has {SEMANTIC_VOCAB}."
        )
    quantizer = Quantizer(**sizes)
    try:
        quantizer.load_state_dict(state)  # strict: a missing or extra tensor is an error, not a random weight
    except RuntimeError as exc:
        raise QuantizerError(f"its weights do not fit the quantizer's architecture: {exc}") from exc
    quantizer.eval()
    return quantizer


def _sizes(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    missing = [key for key in (*_LSTM_KEYS, "fc.weight", "fc.bias") if key not in state]
    if missing:
        raise QuantizerError(f"it lacks {', '.join(missing)} (a HuBERT quantizer has a 2-layer LSTM and fc).")
    intermediate = state.get("intermediate.weight")
    return {
        "input_size": state["lstm.weight_ih_l0"].shape[1],
        "hidden_size": state["lstm.weight_hh_l0"].shape[1],
        "output_size": state["fc.weight"].shape[0],
        "intermediate_size": None if intermediate is None else intermediate.shape[0],
    }


def _check_info(info: Any, sizes: dict[str, Any]) -> None:
    if not isinstance(info, dict):
        raise QuantizerError("its .info member is not a JSON object.")
    actual = {**sizes, "version": 0 if sizes["intermediate_size"] is None else 1}
    for key in ("input_size", "hidden_size", "output_size", "version"):
        if key in info and info[key] != actual[key]:
            raise QuantizerError(f"its .info says {key}={info[key]!r} but its weights have {actual[key]}.")
