"""Cloning from the audio: where HuBERT and its quantizer are (BARK_HUBERT_MODEL, BARK_HUBERT_QUANTIZER), loading
them, and the Bark semantic tokens they read from a clip.

HuBERT base (transformers' `HubertModel`) turns 16 kHz audio into 768-dim features, 50 frames a second (a 320-sample
hop); the output of its 9th transformer layer goes through the quantizer (quantizer.py), which picks one of Bark's
semantic tokens per frame: the speaker's own rhythm, pauses and accent, where a transcript gives only the words. This
is the method of gitmylo/bark-voice-cloning-HuBERT-quantizer, which Bark's community clones voices with; the facts
and where they come from are in docs/hubert-cloning.md.

The models resolve the way Bark's weights do (loading.py): a directory or file, or a hub id already in the Hugging
Face cache; only BARK_MODELS_AVAILABLE=true lets a hub id download on first use. `plan_hubert` answers without torch
(the web process asks it on every clip upload); the models load on the first clip and stay loaded.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthesis.engines import EngineFault, EngineUnavailable
from synthesis.engines.bark import loading
from synthesis.engines.bark.loading import is_hub_id, local_checkpoint, one_torch_thread

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # HuBERT's
OUTPUT_LAYER = 9  # the transformer layer whose output the quantizer was trained on (1-based: hidden_states[9])
DEFAULT_MODEL = "facebook/hubert-base-ls960"
DEFAULT_QUANTIZER = "GitMylo/bark-voice-cloning/quantifier_hubert_base_ls960_14.pth"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HubertPlan:
    """Where the two models will be read from, decided before either is loaded."""

    model: str  # a directory (a hub cache snapshot included), or a hub id to download
    model_local: bool
    quantizer: str  # a file, or a hub file (owner/name/file) to download
    quantizer_local: bool

    def describe(self) -> str:
        if self.model_local and self.quantizer_local:
            return f"HuBERT found in {self.model}, its quantizer in {self.quantizer}"
        return f"HuBERT ({self.model}) and its quantizer ({self.quantizer}) will be downloaded on first use"


def plan_hubert(model: str, quantizer: str, mode: str) -> HubertPlan:
    """Where BARK_HUBERT_MODEL and BARK_HUBERT_QUANTIZER are, or EngineUnavailable saying what to set or download."""
    if mode == "false":
        raise EngineUnavailable("Bark is disabled by BARK_MODELS_AVAILABLE=false")
    if not model.strip() or not quantizer.strip():
        raise EngineUnavailable("it is turned off (BARK_HUBERT_MODEL or BARK_HUBERT_QUANTIZER is empty)")
    model_dir, quantizer_file = _model_directory(model), _quantizer_file(quantizer)
    downloads = mode == "true"
    problems = []
    if model_dir is None and not (downloads and is_hub_id(model)):
        problems.append(_missing_model(model))
    if quantizer_file is None and not (downloads and _hub_file(quantizer) is not None):
        problems.append(_missing_quantizer(quantizer))
    if problems:
        raise EngineUnavailable("; ".join(problems))
    return HubertPlan(
        model=str(model_dir or model),
        model_local=model_dir is not None,
        quantizer=str(quantizer_file or quantizer),
        quantizer_local=quantizer_file is not None,
    )


def _model_directory(model: str) -> Path | None:
    """BARK_HUBERT_MODEL's directory (or hub cache snapshot) when it holds a config and weights."""
    directory = local_checkpoint(model)
    if directory is None or not any((directory / name).is_file() for name in WEIGHT_FILES):
        return None
    return directory


def _hub_file(spec: str) -> tuple[str, str] | None:
    """("owner/name", "path/in/repo") for a hub file spec `owner/name/path/in/repo`, else None."""
    parts = spec.split("/")
    if spec.startswith((".", "~", "/")) or len(parts) < 3 or not all(parts):
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def _quantizer_file(spec: str) -> Path | None:
    """BARK_HUBERT_QUANTIZER as a file: the path itself, or the hub file's copy in the Hugging Face cache."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    hub = _hub_file(spec)
    if hub is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(*hub)
    except Exception:  # not a valid repo id or file name, or no huggingface_hub: not resolvable
        return None
    return Path(cached) if isinstance(cached, str) else None


def _missing_model(model: str) -> str:
    if Path(model).expanduser().is_dir():
        return f"the directory {model} has no config.json with {' or '.join(WEIGHT_FILES)} (BARK_HUBERT_MODEL)"
    if not is_hub_id(model):
        return f"the directory {model} does not exist (BARK_HUBERT_MODEL)"
    return (
        f"{model} is not in the Hugging Face cache (BARK_HUBERT_MODEL; download it with "
        f"`.venv/bin/hf download {model}`)"
    )


def _missing_quantizer(spec: str) -> str:
    hub = _hub_file(spec)
    if hub is not None:
        return (
            f"{spec} is not in the Hugging Face cache (BARK_HUBERT_QUANTIZER; download it with "
            f"`.venv/bin/hf download {hub[0]} {hub[1]}`)"
        )
    if spec.startswith((".", "~", "/")) or len(spec.split("/")) < 3:
        return f"the file {spec} does not exist (BARK_HUBERT_QUANTIZER: a .pth file, or owner/name/file.pth on the hub)"
    return f"BARK_HUBERT_QUANTIZER={spec!r} is neither a file nor a hub file (owner/name/file.pth)"


class HubertTokenizer:
    """HuBERT and its quantizer for one Bark engine: found again on every `plan()` (files may appear while the
    service runs), loaded on the first clip, then kept for the process's life (0.48 GB for the published pair)."""

    def __init__(self, model: str, quantizer: str, mode: str, run_lock: threading.Lock) -> None:
        self._model = model
        self._quantizer = quantizer
        self._mode = mode
        # The engine's generation lock: like its codec, HuBERT runs on one torch thread between the scheduler's steps.
        self._run_lock = run_lock
        self._load_lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def plan(self) -> HubertPlan:
        return plan_hubert(self._model, self._quantizer, self._mode)

    @property
    def loaded(self) -> tuple[Any, Any] | None:
        """HuBERT and the quantizer once loaded, else None."""
        return self._loaded

    def tokens(self, waveform: np.ndarray, device: str) -> np.ndarray:
        """Bark semantic tokens (0..9999) of a 16 kHz mono float32 clip: one per HuBERT frame, about 49.9 a second."""
        import torch

        hubert, quantizer = self._load(device)
        try:
            with self._run_lock, torch.inference_mode(), one_torch_thread():
                audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None].to(device)
                # Raw samples, unnormalised: HuBERT base was trained (and the quantizer on its features) that way.
                features = hubert(audio, output_hidden_states=True).hidden_states[OUTPUT_LAYER]
                tokens = quantizer.tokens(features)[0]
        except Exception as exc:
            raise EngineFault(f"HuBERT could not read the clip: {type(exc).__name__}: {exc}") from exc
        return np.asarray(tokens.cpu().numpy(), dtype=np.int64)

    def _load(self, device: str) -> tuple[Any, Any]:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _read(self.plan(), device)
            return self._loaded


def _read(plan: HubertPlan, device: str) -> tuple[Any, Any]:
    """HuBERT and the quantizer on `device` in eval mode, checked to fit each other; EngineUnavailable if not."""
    import torch
    from transformers import HubertModel

    from synthesis.engines.bark.quantizer import QuantizerError, load_quantizer

    loading.quiet_transformers()
    try:
        quantizer = load_quantizer(_quantizer_path(plan))
    except QuantizerError as exc:
        raise EngineUnavailable(f"could not load the HuBERT quantizer {plan.quantizer}: {exc}") from exc
    try:
        hubert = HubertModel.from_pretrained(plan.model, local_files_only=plan.model_local, dtype=torch.float32)
    except Exception as exc:
        raise EngineUnavailable(f"could not load HuBERT from {plan.model}: {type(exc).__name__}: {exc}") from exc
    config = hubert.config
    if config.num_hidden_layers < OUTPUT_LAYER:
        raise EngineUnavailable(
            f"HuBERT from {plan.model} has {config.num_hidden_layers} layers; the quantizer reads layer {OUTPUT_LAYER}."
        )
    if config.hidden_size != quantizer.input_size:
        raise EngineUnavailable(
            f"the HuBERT quantizer {plan.quantizer} takes {quantizer.input_size}-dim features but HuBERT from "
            f"{plan.model} gives {config.hidden_size}: they were not made for each other."
        )
    logger.info("HuBERT loaded from %s on %s; its quantizer from %s", plan.model, device, plan.quantizer)
    return hubert.to(device).eval(), quantizer.to(device).eval()


def _quantizer_path(plan: HubertPlan) -> Path:
    if plan.quantizer_local:
        return Path(plan.quantizer)
    repo, filename = _hub_file(plan.quantizer) or ("", "")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename))
    except Exception as exc:
        raise EngineUnavailable(
            f"could not download the HuBERT quantizer {plan.quantizer}: {type(exc).__name__}: {exc}"
        ) from exc
