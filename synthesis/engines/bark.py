"""Bark through transformers' BarkModel: text -> semantic tokens -> coarse/fine EnCodec codes -> 24 kHz audio.

torch and transformers are imported lazily, so this module imports anywhere and `health()` can say why Bark
cannot run instead of breaking the process.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np

from synthesis.engines import (
    Engine,
    EngineFailed,
    EngineHealth,
    EngineUnavailable,
    SegmentCallback,
    SynthesisOptions,
)

logger = logging.getLogger(__name__)

DEFAULT_HUB_MODEL = "suno/bark-small"
DEFAULT_VOICE = "v2/en_speaker_6"
DEFAULT_SAMPLE_RATE = 24_000
# The fine stage's temperature in Bark's own generate_audio; it is not exposed to users.
FINE_TEMPERATURE = 0.5
# Upstream Bark ends the semantic stage once EOS has this probability (its generate_text_semantic default).
# transformers' BarkModel.generate drops the config's value and uses none unless it is passed explicitly.
MIN_EOS_P = 0.2
PROMPT_KEYS = ("semantic_prompt", "coarse_prompt", "fine_prompt")
SPEAKER_EMBEDDINGS_JSON = "speaker_embeddings_path.json"


def _seed_everything(seed: int) -> None:
    import torch

    # torch.manual_seed seeds every CUDA device too; numpy and random cover any sampling outside torch.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class BarkEngine(Engine):
    name = "bark"

    def __init__(self, model: str, device: str, mode: str) -> None:
        self._model_id = model
        self._requested_device = device
        self._mode = mode
        self.sample_rate = DEFAULT_SAMPLE_RATE
        self._load_lock = threading.Lock()
        # Generation seeds torch's global RNG, so two generations in one process must not interleave.
        self._generate_lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None
        self._device: str | None = None
        self._load_error: str | None = None
        self._import_error: str | None = None
        self._imports_checked = False
        self._voice_names: list[str] | None = None

    # --- identity -------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        """The device in use once loaded; before that, the one `auto` would pick (or the one requested)."""
        if self._device is not None:
            return self._device
        if self._requested_device == "auto":
            # A disabled engine's health must stay cheap: no torch import just to name a device.
            if self._mode == "false" or self._check_imports() is not None:
                return "cpu"
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self._requested_device

    # --- health ---------------------------------------------------------------------------------------

    def _check_imports(self) -> str | None:
        """Why torch or transformers' Bark cannot be imported, or None. Checked once per engine."""
        if not self._imports_checked:
            try:
                import torch  # noqa: F401
            except Exception as exc:  # a broken install raises more than ImportError (e.g. OSError)
                self._import_error = f"cannot import torch: {exc}"
            else:
                try:
                    from transformers import BarkModel, BarkProcessor  # noqa: F401
                except Exception as exc:
                    self._import_error = f"cannot import transformers' Bark (from transformers import BarkModel): {exc}"
            self._imports_checked = True
        return self._import_error

    def _local_checkpoint(self) -> Path | None:
        """The local directory holding the weights: BARK_MODEL itself, or its Hugging Face cache snapshot."""
        path = Path(self._model_id).expanduser()
        if path.is_dir():
            return path if (path / "config.json").is_file() else None
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(self._model_id, "config.json")
        except Exception:  # not a valid repo id (e.g. a missing path), or no huggingface_hub: not resolvable
            return None
        return Path(cached).parent if isinstance(cached, str) else None

    def _is_hub_id(self) -> bool:
        """Whether BARK_MODEL names a hub repository ("owner/name") rather than a directory."""
        model = self._model_id
        return not (model.startswith((".", "~", "/")) or model.count("/") > 1 or Path(model).exists())

    def _missing_weights_reason(self) -> str:
        path = Path(self._model_id).expanduser()
        if path.is_dir():
            where = f"the directory {self._model_id} has no config.json"
        elif not self._is_hub_id():
            where = f"the directory {self._model_id} does not exist"
        else:
            where = f"{self._model_id} is not in the Hugging Face cache"
        repo = self._model_id if self._is_hub_id() else DEFAULT_HUB_MODEL
        download = " Set BARK_MODELS_AVAILABLE=true to let Bark download it on first use." if self._is_hub_id() else ""
        return (
            f"Bark weights not found: {where}. Download them with `hf download {repo}` (and set BARK_MODEL={repo}), "
            "point BARK_MODEL at a checkpoint directory, or build a random-weight test checkpoint with "
            f"`python manage.py build_bark_checkpoint DIR --arch tiny`.{download}"
        )

    def _device_problem(self) -> str | None:
        import torch

        requested = self._requested_device
        if requested.startswith("cuda") and not torch.cuda.is_available():
            return f"BARK_DEVICE={requested} but CUDA is not available (torch {torch.__version__}); use auto or cpu."
        if requested == "mps" and not torch.backends.mps.is_available():
            return "BARK_DEVICE=mps but Apple's MPS backend is not available here; use auto or cpu."
        return None

    def health(self) -> EngineHealth:
        ok, reason = self._health()
        return EngineHealth(
            name=self.name,
            ok=ok,
            reason=reason,
            model=self._model_id,
            device=self.device,
            loaded=self._model is not None,
        )

    def _health(self) -> tuple[bool, str]:
        if self._mode == "false":
            return False, "disabled by BARK_MODELS_AVAILABLE=false"
        if self._model is not None:
            return True, f"loaded {self._model_id} on {self._device}"
        if self._load_error is not None:
            return False, self._load_error
        import_error = self._check_imports()
        if import_error is not None:
            return False, import_error
        device_problem = self._device_problem()
        if device_problem is not None:
            return False, device_problem
        local = self._local_checkpoint()
        if local is not None:
            return True, f"weights found in {local}; not loaded yet"
        if self._mode == "true" and self._is_hub_id():
            return True, f"weights for {self._model_id} will be downloaded on first use"
        return False, self._missing_weights_reason()

    # --- loading --------------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        if self._mode == "false":
            raise EngineUnavailable("Bark is disabled by BARK_MODELS_AVAILABLE=false.")
        with self._load_lock:
            if self._model is not None:
                return
            try:
                self._load()
            except EngineUnavailable as exc:
                self._load_error = str(exc)
                raise
            self._load_error = None

    def _load(self) -> None:
        import_error = self._check_imports()
        if import_error is not None:
            raise EngineUnavailable(import_error)
        import torch
        from transformers import BarkModel, BarkProcessor
        from transformers.utils import is_flash_attn_2_available

        device_problem = self._device_problem()
        if device_problem is not None:
            raise EngineUnavailable(device_problem)
        device = self._requested_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"

        local = self._local_checkpoint()
        if local is None and not (self._mode == "true" and self._is_hub_id()):
            raise EngineUnavailable(self._missing_weights_reason())
        # Loading from the local directory (a cache snapshot included) never waits on the network; with
        # BARK_MODELS_AVAILABLE=true an unresolved hub id may download.
        source = str(local) if local is not None else self._model_id
        on_cuda = device.startswith("cuda")
        kwargs: dict[str, Any] = {
            "local_files_only": local is not None,
            # fp32 on CPU: fp16 is unsupported for several CPU kernels and bf16 is slower on CPUs without bf16 units.
            "dtype": torch.float16 if on_cuda else torch.float32,
            # Bark supports only eager and flash_attention_2 (sdpa raises).
            "attn_implementation": "flash_attention_2" if on_cuda and is_flash_attn_2_available() else "eager",
        }
        try:
            model = BarkModel.from_pretrained(source, **kwargs).to(device)
            model.eval()
            processor = BarkProcessor.from_pretrained(source, local_files_only=local is not None)
        except Exception as exc:
            raise EngineUnavailable(f"could not load Bark from {source}: {type(exc).__name__}: {exc}") from exc

        self._processor = processor
        self._device = device
        self.sample_rate = int(
            getattr(model.generation_config, "sample_rate", None)
            or getattr(model.config.codec_config, "sampling_rate", None)
            or DEFAULT_SAMPLE_RATE
        )
        self._voice_names = sorted(name for name in processor.available_voice_presets if name.startswith("v2/"))
        self._model = model  # last: a set model means fully loaded
        logger.info(
            "Bark loaded from %s on %s (%s, %s)", source, device, kwargs["dtype"], kwargs["attn_implementation"]
        )

    # --- voices ---------------------------------------------------------------------------------------

    def voices(self) -> list[str]:
        """Bark's v2 presets in the checkpoint, read from its speaker embeddings index without loading weights."""
        if self._voice_names is None:
            local = self._local_checkpoint()
            if local is None or not (local / SPEAKER_EMBEDDINGS_JSON).is_file():
                return []
            try:
                index = json.loads((local / SPEAKER_EMBEDDINGS_JSON).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return []
            self._voice_names = sorted(name for name in index if name.startswith("v2/"))
        return list(self._voice_names)

    def default_voice(self) -> str:
        voices = self.voices()
        if DEFAULT_VOICE in voices:
            return DEFAULT_VOICE
        return voices[0] if voices else ""

    def _voice_preset(self, options: SynthesisOptions) -> dict[str, np.ndarray] | str | None:
        """What the processor takes as `voice_preset`: an uploaded prompt, a preset name, or nothing."""
        if options.voice_prompt is not None:
            missing = [key for key in PROMPT_KEYS if key not in options.voice_prompt]
            if missing:
                raise EngineFailed(f"The voice prompt lacks {', '.join(missing)}.")
            try:
                # int64: the models index embeddings with these codes.
                return {key: np.asarray(options.voice_prompt[key], dtype=np.int64) for key in PROMPT_KEYS}
            except (TypeError, ValueError) as exc:
                raise EngineFailed(f"The voice prompt's arrays are not integer codes: {exc}") from exc
        if not options.voice:
            return None
        voices = self.voices()
        if options.voice not in voices:
            example = f", e.g. {self.default_voice()}" if voices else ""
            raise EngineFailed(
                f"Unknown Bark voice preset {options.voice!r}; this checkpoint has {len(voices)} v2 presets{example}."
            )
        return options.voice

    # --- synthesis ------------------------------------------------------------------------------------

    @staticmethod
    def _generation_kwargs(options: SynthesisOptions) -> dict[str, Any]:
        """BarkModel.generate's per-stage keywords (`semantic_*`, `coarse_*`, `fine_*`); temperature 0 is greedy."""
        kwargs: dict[str, Any] = {"min_eos_p": MIN_EOS_P}
        for stage, temperature in (("semantic", options.text_temp), ("coarse", options.waveform_temp)):
            kwargs[f"{stage}_do_sample"] = temperature > 0
            if temperature > 0:
                kwargs[f"{stage}_temperature"] = temperature
        # The fine stage samples at any temperature but None (or exactly 1.0), which means argmax.
        kwargs["fine_temperature"] = FINE_TEMPERATURE if options.waveform_temp > 0 else None
        return kwargs

    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        self.load()  # first: a checkpoint fetched from the hub lists its voices only once loaded
        voice = self._voice_preset(options)
        kwargs = self._generation_kwargs(options)
        waveforms: list[np.ndarray] = []
        for index, text in enumerate(segments):
            with self._generate_lock:
                if options.seed is not None:
                    # Per-segment seeds make each segment reproducible on its own, whatever ran before it.
                    _seed_everything(options.seed + index)
                (waveform,) = self._generate([text], voice, kwargs)
            waveforms.append(waveform)
            self._notify(on_segment, index, waveform)
        return waveforms

    def _generate(
        self, texts: list[str], voice: dict[str, np.ndarray] | str | None, kwargs: dict[str, Any]
    ) -> list[np.ndarray]:
        """One BarkModel.generate over `texts` (one speaker prompt per batch); each waveform trimmed to its length."""
        import torch

        try:
            with torch.inference_mode():
                inputs = self._processor(texts, voice_preset=voice).to(self._device)
                audio, lengths = self._model.generate(**inputs, return_output_lengths=True, **kwargs)
                return [audio[row, :length].float().cpu().numpy() for row, length in enumerate(lengths)]
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineFailed(
                "Bark ran out of GPU memory; try shorter text segments, fewer concurrent jobs, or BARK_DEVICE=cpu."
            ) from exc
        except Exception as exc:  # shape errors, bad prompts, device errors: all fail this job, not the worker
            raise EngineFailed(f"Bark generation failed: {type(exc).__name__}: {exc}") from exc
