"""Bark through transformers: text -> semantic tokens -> coarse/fine EnCodec codes -> 24 kHz audio, stage by stage.

One scheduler thread per loaded model (scheduler.py) batches the segments of every job that runs through this engine,
whatever their voices, carries the first segment's voice to the rest when no preset is given, and runs the fine stage
on real lengths. torch and transformers are imported lazily,
so this module imports anywhere and `health()` can say why Bark cannot run instead of breaking the process.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from synthesis.engines import (
    CUSTOM_PREFIX,
    CatalogueVoice,
    Engine,
    EngineFailed,
    EngineHealth,
    EngineUnavailable,
    SegmentCallback,
    SynthesisOptions,
    is_out_of_memory,
)
from synthesis.engines.bark import presets, prompts
from synthesis.engines.bark.precision import PrecisionError, choose_dtype, convert, cpu_flags
from synthesis.engines.bark.prompts import PROMPT_KEYS, VoicePromptError, validate_prompt
from synthesis.engines.bark.scheduler import Scheduler, Segment, Stream
from synthesis.engines.bark.stages import BarkStages, BarkTokens, Sampling

logger = logging.getLogger(__name__)

DEFAULT_HUB_MODEL = "suno/bark-small"
DEFAULT_SAMPLE_RATE = 24_000
SPEAKER_EMBEDDINGS_JSON = "speaker_embeddings_path.json"


@dataclass(frozen=True)
class SegmentRun:
    """How one segment was generated: with which segments, which speaker prompt, and the tokens it produced."""

    index: int
    batch: tuple[int, ...]
    prompt: str  # a preset or uploaded voice id, "segment N" (a carried voice), or "none"
    tokens: BarkTokens


class BarkEngine(Engine):
    name = "bark"
    clones_voices = True
    cues = presets.CUES
    max_upload_bytes = max(prompts.MAX_CLIP_BYTES, prompts.MAX_NPZ_BYTES)

    @classmethod
    def from_settings(cls) -> BarkEngine:
        return cls(
            model=settings.BARK_MODEL,
            device=settings.BARK_DEVICE,
            mode=settings.BARK_MODELS_AVAILABLE,
            dtype=settings.BARK_DTYPE,
            force_semantic_tokens=settings.BARK_FORCE_SEMANTIC_TOKENS,
        )

    def __init__(
        self,
        model: str,
        device: str,
        mode: str,
        fine_full_window: bool = False,
        dtype: str = "float32",
        force_semantic_tokens: int = 0,
    ) -> None:
        self._model_id = model
        # BARK_DTYPE: a name from precision.DTYPES; `auto` is resolved for the device at load (see choose_dtype).
        self._requested_dtype = dtype
        self._dtype: str | None = None
        # Benchmarks only (BARK_FORCE_SEMANTIC_TOKENS): every segment gets exactly this many semantic tokens, since
        # random-weight checkpoints never stop by themselves. 0 leaves the checkpoint's own limits.
        self.force_semantic_tokens = force_semantic_tokens
        # True runs the fine stage over Bark's whole 1024-frame window, reproducing BarkModel.generate exactly
        # (and costing a full window per segment); False (the default) runs it on each segment's real length.
        self.fine_full_window = fine_full_window
        self._requested_device = device
        self._mode = mode
        self.sample_rate = DEFAULT_SAMPLE_RATE
        self._load_lock = threading.Lock()
        # Generation seeds torch's global RNG, so two generations in one process must not interleave.
        self._generate_lock = threading.Lock()
        self._processor_lock = threading.Lock()
        self._scheduler: Scheduler | None = None
        self._model: Any = None
        self._processor: Any = None
        self._stages: BarkStages | None = None
        # What the last synthesize() did, segment by segment (for tests, benchmarks and debugging).
        self.last_run: list[SegmentRun] = []
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

    @property
    def dtype(self) -> str:
        """The weights' format once loaded; before that, what BARK_DTYPE resolves to here (or the bad value itself)."""
        if self._dtype is not None:
            return self._dtype
        try:
            return self._choose_dtype(self.device)
        except PrecisionError:
            return self._requested_dtype

    def _choose_dtype(self, device: str) -> str:
        flags = cpu_flags() if self._requested_dtype == "auto" and device == "cpu" else frozenset()
        return choose_dtype(self._requested_dtype, device, flags)

    @property
    def stages(self) -> BarkStages:
        """The loaded model's stages (loads the model)."""
        self.load()
        assert self._stages is not None
        return self._stages

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
            f"Bark weights not found: {where}. Download them with `.venv/bin/hf download {repo}` (and set "
            f"BARK_MODEL={repo}), point BARK_MODEL at a checkpoint directory, or build a random-weight test checkpoint "
            f"with `.venv/bin/python manage.py build_bark_checkpoint DIR --arch tiny`.{download}"
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
            dtype=self.dtype if self._mode != "false" else "",
        )

    def _health(self) -> tuple[bool, str]:
        if self._mode == "false":
            return False, "disabled by BARK_MODELS_AVAILABLE=false"
        if self._model is not None:
            return True, f"loaded {self._model_id} on {self._device} in {self._dtype}"
        if self._load_error is not None:
            return False, self._load_error
        import_error = self._check_imports()
        if import_error is not None:
            return False, import_error
        device_problem = self._device_problem()
        if device_problem is not None:
            return False, device_problem
        try:
            self._choose_dtype(self.device)
        except PrecisionError as exc:
            return False, str(exc)
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
        from transformers.utils import logging as transformers_logging

        # Weight-loading progress bars and per-call notices about how generate() is fed say nothing to an
        # operator, and would repeat for every segment in the worker's log; real errors still raise.
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        device_problem = self._device_problem()
        if device_problem is not None:
            raise EngineUnavailable(device_problem)
        device = self._requested_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dtype = self._choose_dtype(device)
        except PrecisionError as exc:
            raise EngineUnavailable(str(exc)) from exc

        local = self._local_checkpoint()
        if local is None and not (self._mode == "true" and self._is_hub_id()):
            raise EngineUnavailable(self._missing_weights_reason())
        # Loading from the local directory (a cache snapshot included) never waits on the network; with
        # BARK_MODELS_AVAILABLE=true an unresolved hub id may download.
        source = str(local) if local is not None else self._model_id
        # Bark supports only eager and flash_attention_2 (sdpa raises); FlashAttention runs in fp16/bf16 on CUDA only.
        flash = device.startswith("cuda") and dtype in ("float16", "bfloat16") and is_flash_attn_2_available()
        kwargs: dict[str, Any] = {
            "local_files_only": local is not None,
            # Loaded in float32 and converted after (precision.convert), so the codec keeps its float32 weights.
            "dtype": torch.float32,
            "attn_implementation": "flash_attention_2" if flash else "eager",
        }
        try:
            model = BarkModel.from_pretrained(source, **kwargs)
            model = convert(model, dtype).to(device)
            model.eval()
            processor = BarkProcessor.from_pretrained(source, local_files_only=local is not None)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineUnavailable(f"Bark does not fit in {device}'s memory in {dtype}: {exc}") from exc
        except Exception as exc:
            raise EngineUnavailable(f"could not load Bark from {source}: {type(exc).__name__}: {exc}") from exc
        if self.force_semantic_tokens:
            semantic_config = model.generation_config.semantic_config
            semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = self.force_semantic_tokens

        self._processor = processor
        self._stages = BarkStages(model, device)
        self._device = device
        self._dtype = dtype
        self.sample_rate = int(
            getattr(model.generation_config, "sample_rate", None)
            or getattr(model.config.codec_config, "sampling_rate", None)
            or DEFAULT_SAMPLE_RATE
        )
        self._voice_names = sorted(name for name in processor.available_voice_presets if name.startswith("v2/"))
        self._model = model  # last: a set model means fully loaded
        logger.info("Bark loaded from %s on %s (%s, %s)", source, device, dtype, kwargs["attn_implementation"])

    def release_memory(self) -> None:
        """Hand the CUDA caching allocator's free blocks back to the device (after a job, or a failed batch), so
        other processes on the GPU and the next job's batch shapes get them; a no-op on CPU."""
        if self._device is not None and self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

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
        """v2/en_speaker_6, unless the checkpoint is known to lack it (then its first preset)."""
        voices = self.voices()
        if not voices or presets.DEFAULT_VOICE in voices:
            return presets.DEFAULT_VOICE
        return voices[0]

    def catalogue(self) -> list[CatalogueVoice]:
        return [
            CatalogueVoice(preset, self.name, presets.language_of(preset), f"Speaker {preset[-1]}")
            for preset in presets.PRESETS
        ]

    def voice_for_alias(self, alias: str) -> str:
        return presets.OPENAI_VOICES.get(alias, self.default_voice())

    def _voice_prompt(self, voice: str | None, options: SynthesisOptions) -> dict[str, np.ndarray] | None:
        """The speaker prompt arrays of `voice`: an uploaded voice from `options.voice_prompts`, a preset, or none."""
        if not voice:
            return None
        if voice in options.voice_prompts:
            try:
                return validate_prompt(options.voice_prompts[voice])
            except VoicePromptError as exc:
                raise EngineFailed(f"The voice {voice} cannot be used: {exc}") from exc
        if voice.startswith(CUSTOM_PREFIX):
            raise EngineFailed(f"The voice {voice} was not loaded for this job (its prompt arrays are missing).")
        voices = self.voices()
        if voice not in voices:
            example = f", e.g. {self.default_voice()}" if voices else ""
            raise EngineFailed(
                f"Unknown Bark voice preset {voice!r}; this checkpoint has {len(voices)} v2 presets{example}."
            )
        try:
            # The processor resolves the preset's files in the checkpoint (or its hub cache) and checks them; the
            # text is tokenized too, which an empty text makes cheap.
            preset = self._processor("", voice_preset=voice, return_tensors="np")["history_prompt"]
        except (OSError, ValueError, TypeError) as exc:
            raise EngineFailed(f"Bark voice preset {voice!r} cannot be read: {exc}") from exc
        return {key: np.asarray(preset[key], dtype=np.int64) for key in PROMPT_KEYS}

    # --- synthesis ------------------------------------------------------------------------------------

    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        """Generate `segments` in order, batched with the segments of every other caller of this engine.

        Rows of any voice go in one batch (see scheduler.py); a job's first segment runs alone, so its first audio
        comes after one segment. Without a voice, the first voiceless segment's tokens become the voice of the later
        voiceless ones. With a seed, segment i samples from its own generator seeded with `seed + i`, so the same job
        repeats exactly whatever it is batched with. `on_segment` hears of each segment as soon as its audio is
        decoded, in order; returning False stops the job's remaining segments at once.
        """
        self.load()  # first: a checkpoint fetched from the hub lists its voices only once loaded
        if options.segment_voices is not None and len(options.segment_voices) != len(segments):
            raise EngineFailed(
                f"segment_voices names {len(options.segment_voices)} voices for {len(segments)} segments."
            )
        voices = [options.voice_for(index) or None for index in range(len(segments))]
        # Every voice is resolved before anything runs: a bad voice at segment 9 fails the job at once.
        prompts = {voice: self._voice_prompt(voice, options) for voice in set(voices)}
        stream = self._stream(segments, voices, prompts, options)
        scheduler = self._scheduler_for()
        scheduler.submit(stream)
        waveforms: list[np.ndarray] = []
        runs: list[SegmentRun] = []
        try:
            for index in range(len(segments)):
                item = stream.results.get()
                if isinstance(item, Exception):
                    raise self._failure(item)
                tokens, waveform, batch = item
                runs.append(SegmentRun(index=index, batch=batch, prompt=self._source(stream, index), tokens=tokens))
                waveforms.append(waveform)
                self._notify(on_segment, index, waveform)
        finally:
            stream.cancel()  # a no-op once every segment is delivered; else its rows stop at the next step
            scheduler.wake()
        self.last_run = runs
        self.release_memory()  # between jobs: the GPU's cache follows the current batch shapes
        return waveforms

    def _stream(
        self,
        segments: list[str],
        voices: list[str | None],
        prompts: dict[str | None, dict[str, np.ndarray] | None],
        options: SynthesisOptions,
    ) -> Stream:
        sampling = Sampling(options.text_temp, options.waveform_temp)
        with self._processor_lock:  # the fast tokenizer refuses concurrent calls from several threads
            inputs = self._processor(segments)
        text_ids = self.stages.text_rows(inputs["input_ids"], inputs["attention_mask"])
        return Stream(
            segments=[
                Segment(
                    index=index,
                    text_ids=text_ids[index],
                    prompt=prompts[voice],
                    uses_carry=voice is None,
                    sampling=sampling,
                    seed=None if options.seed is None else options.seed + index,
                )
                for index, voice in enumerate(voices)
            ],
            voices=voices,
            priority=options.priority,
            full_window=self.fine_full_window,
        )

    @staticmethod
    def _source(stream: Stream, index: int) -> str:
        voice = stream.voices[index]
        if voice is None and stream.carry_from is not None and stream.carry_from != index:
            return f"segment {stream.carry_from}"
        return voice or "none"

    def _scheduler_for(self) -> Scheduler:
        with self._load_lock:
            if self._scheduler is None:
                self._scheduler = Scheduler(self.stages, self._generate_lock)
            return self._scheduler

    def _failure(self, exc: Exception) -> EngineFailed:
        if is_out_of_memory(exc):  # even one row alone did not fit (the scheduler splits batches before this)
            # The job fails with a reason; the worker, its loaded model and the next job carry on.
            self.release_memory()
            return EngineFailed(
                f"Bark ran out of {self._device} memory in {self._dtype}; "
                "try shorter text segments, fewer concurrent jobs, or BARK_DEVICE=cpu."
            )
        # shape errors, bad prompts, device errors: all fail this job, not the worker
        return EngineFailed(f"Bark generation failed: {type(exc).__name__}: {exc}")

    # --- uploaded voices and cloning -------------------------------------------------------------------

    def read_voice_file(self, data: bytes) -> dict[str, np.ndarray]:
        return prompts.prompt_from_npz(data)

    def write_voice_file(self, prompt: dict[str, np.ndarray]) -> bytes:
        return prompts.save_prompt(prompt)

    def check_clip(self, clip: bytes, transcript: str) -> str:
        prompts.check_transcript(transcript)
        return prompts.check_clip(clip)

    def clone_voice(self, clip: bytes, transcript: str) -> dict[str, np.ndarray]:
        """A prompt from a reference clip (see `prompts.prompt_from_clip`), with this engine's codec and text model."""
        return prompts.prompt_from_clip(clip, transcript, self.encode_clip, self.semantic_tokens)

    def encode_clip(self, waveform: np.ndarray) -> np.ndarray:
        """EnCodec codes (8, frames) of a 24 kHz mono float32 clip, from Bark's own codec at 6 kbps."""
        import torch

        self.load()
        try:
            with self._generate_lock, torch.inference_mode():
                return self.stages.encode(waveform)
        except Exception as exc:
            raise EngineFailed(f"Bark could not encode the clip: {type(exc).__name__}: {exc}") from exc

    def semantic_tokens(self, text: str, length: int) -> np.ndarray:
        """Exactly `length` semantic tokens (0..9999) for `text`, decoded greedily without a speaker prompt."""
        import torch

        self.load()
        try:
            with self._generate_lock, torch.inference_mode():
                inputs = self._processor([text]).to(self._device)
                (row,) = self.stages.semantic(
                    inputs["input_ids"],
                    inputs["attention_mask"],
                    None,
                    Sampling(text_temp=0.0, waveform_temp=0.0),
                    min_new_tokens=length,
                    max_new_tokens=length,
                )
        except Exception as exc:
            raise EngineFailed(f"Bark could not read the transcript: {type(exc).__name__}: {exc}") from exc
        return row
