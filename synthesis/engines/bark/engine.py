"""Bark through transformers: text -> semantic tokens -> coarse/fine EnCodec codes -> 24 kHz audio, stage by stage.

One scheduler thread per loaded model (scheduler.py) batches the segments of every job, whatever their voices, and
carries the first segment's voice to the rest when no preset is given. By default every code equals what transformers'
`BarkModel.generate` gives (docs/fidelity.md); the choices that trade that for speed are opt-in (choices.py). torch and
transformers are imported lazily, so `health()` can say why Bark cannot run instead of breaking the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings

from synthesis.engines import (
    CUSTOM_PREFIX,
    CatalogueVoice,
    CloningMethod,
    Engine,
    EngineFault,
    EngineHealth,
    EngineOutOfMemory,
    EngineUnavailable,
    InputRefused,
    SegmentCallback,
    SynthesisOptions,
    is_out_of_memory,
)
from synthesis.engines.bark import cloning, loading, presets, prompts, protocol
from synthesis.engines.bark.choices import Choices
from synthesis.engines.bark.hubert import HubertTokenizer
from synthesis.engines.bark.loading import LoadPlan
from synthesis.engines.bark.policy import Stream
from synthesis.engines.bark.precision import PrecisionError
from synthesis.engines.bark.prefixes import PrefixStore
from synthesis.engines.bark.prompts import PROMPT_KEYS, VoicePromptError, validate_prompt
from synthesis.engines.bark.scheduler import MAX_ROWS, Scheduler
from synthesis.engines.bark.stages import COARSE_WINDOW, FINE_WINDOW, BarkStages, BarkTokens, Sampling
from synthesis.engines.faults import FaultPlan

DEFAULT_SAMPLE_RATE = 24_000


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
    instruction_cues = presets.INSTRUCTION_CUES
    max_upload_bytes = max(prompts.MAX_CLIP_BYTES, prompts.MAX_NPZ_BYTES)
    # One process per device holds the model (runner.py); workers speak to it through RemoteBarkEngine.
    runner_server = "synthesis.engines.bark.runner.serve"
    runner_client = "synthesis.engines.bark.runner.RemoteBarkEngine"

    @classmethod
    def from_settings(cls) -> BarkEngine:
        return cls(
            model=settings.BARK_MODEL,
            device=settings.BARK_DEVICE,
            mode=settings.BARK_MODELS_AVAILABLE,
            dtype=settings.BARK_DTYPE,
            force_semantic_tokens=settings.BARK_FORCE_SEMANTIC_TOKENS,
            max_batch=settings.BARK_MAX_BATCH,
            coarse_window=settings.BARK_COARSE_WINDOW,
            fine_window=settings.BARK_FINE_WINDOW,
            top_k=settings.BARK_TOP_K,
            top_p=settings.BARK_TOP_P,
            min_eos_p=settings.BARK_MIN_EOS_P,
            fault_injection=settings.BARK_FAULT_INJECTION,
            hubert=(settings.BARK_HUBERT_MODEL, settings.BARK_HUBERT_QUANTIZER),
        )

    def __init__(
        self,
        model: str,
        device: str,
        mode: str,
        dtype: str = "float32",
        force_semantic_tokens: int = 0,
        max_batch: int = MAX_ROWS,
        coarse_window: int = COARSE_WINDOW,
        fine_window: str = FINE_WINDOW,
        top_k: int | None = None,
        top_p: float | None = None,
        min_eos_p: float | None = None,
        fault_injection: str = "",
        hubert: tuple[str, str] = ("", ""),
    ) -> None:
        self._model_id = model
        # BARK_DTYPE: a name from precision.DTYPES; `auto` is resolved for the device at load (see choose_dtype).
        self._requested_dtype = dtype
        self._dtype: str | None = None
        self.max_batch = max_batch  # rows generated together at most (the scheduler halves it on out-of-memory)
        # How it generates: the library's way unless a setting says otherwise (choices.py).
        self.choices = Choices(coarse_window, fine_window, top_k, top_p, min_eos_p, force_semantic_tokens)
        # BARK_FAULT_INJECTION (drills and tests): faults raised inside the model's own stages (faults.py).
        self.faults = FaultPlan(self.name, fault_injection)
        self._requested_device = device
        self._mode = mode
        self.sample_rate = DEFAULT_SAMPLE_RATE
        self._load_lock = threading.Lock()
        # Generation seeds torch's global RNG, so two generations in one process must not interleave.
        self._generate_lock = threading.Lock()
        self._processor_lock = threading.Lock()
        # Cloning from the audio: HuBERT and its quantizer ("", "": off), loaded on the first clip (cloning.py).
        self.hubert = HubertTokenizer(*hubert, mode, self._generate_lock)
        self._scheduler: Scheduler | None = None
        self._model: Any = None
        self._processor: Any = None
        self._stages: BarkStages | None = None
        # What the last synthesize() did, segment by segment (for tests, benchmarks and debugging).
        self.last_run: list[SegmentRun] = []
        self._device: str | None = None
        self._load_error: str | None = None
        self._voice_names: list[str] | None = None

    # --- identity -------------------------------------------------------------------------------------

    @property
    def coarse_window(self) -> int:
        return self.choices.coarse_window

    @property
    def fine_window(self) -> str:
        return self.choices.fine_window

    @property
    def force_semantic_tokens(self) -> int:
        return self.choices.force_semantic_tokens

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        """The device in use once loaded; before that, the one `auto` would pick (or the one requested)."""
        if self._device is not None:
            return self._device
        if self._requested_device == "auto" and self._answers_without_torch:
            return "cpu"
        return loading.resolve_device(self._requested_device)

    @property
    def dtype(self) -> str:
        """The weights' format once loaded; before that, what BARK_DTYPE resolves to here (or the bad value itself)."""
        if self._dtype is not None:
            return self._dtype
        if self._answers_without_torch:  # `auto` would measure the CPU with torch
            return self._requested_dtype
        try:
            return loading.dtype_for(self._requested_dtype, self.device)
        except PrecisionError:
            return self._requested_dtype

    @property
    def _answers_without_torch(self) -> bool:
        """A disabled engine, or one that cannot import torch: its health must stay cheap, so the device and dtype it
        names are the ones asked for, not resolved with torch."""
        return self._mode == "false" or self._import_problem is not None

    @property
    def stages(self) -> BarkStages:
        """The loaded model's stages (loads the model)."""
        self.load()
        assert self._stages is not None
        return self._stages

    # --- health ---------------------------------------------------------------------------------------

    @cached_property
    def _import_problem(self) -> str | None:
        """Why torch or transformers' Bark cannot be imported, or None. Checked once per engine."""
        return loading.import_problem()

    def _plan(self) -> LoadPlan:
        """How load() will read the weights, or EngineUnavailable saying why it cannot (health() reports the same)."""
        if self._import_problem is not None:
            raise EngineUnavailable(self._import_problem)
        if self.faults.error is not None:
            raise EngineUnavailable(self.faults.error)
        return loading.plan_load(self._model_id, self._mode, self._requested_device, self._requested_dtype)

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
            return True, f"loaded {self._model_id} on {self._device} in {self._dtype}{self.choices.departures()}"
        if self._load_error is not None:
            return False, self._load_error
        try:
            return True, self._plan().describe() + self.choices.departures()
        except EngineUnavailable as exc:
            return False, str(exc)

    @property
    def engine_settings(self) -> str:
        return self.choices.changed()

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
        with loading.one_torch_thread():  # the scheduler's thread alone runs torch on several (see there)
            plan = self._plan()
            model, processor = loading.read(plan)
            self._install(model, processor, plan)

    def _install(self, model: Any, processor: Any, plan: LoadPlan) -> None:
        """Take a freshly read model into use; the engine counts as loaded once `_model` is set, last."""
        # A voice's semantic history at the start of each coarse window, computed once for every segment in that
        # voice (prefixes.PrefixStore): on a CPU, where prefills run row by row, and not with int8 weights, whose
        # dynamic quantization makes a product's rows depend on the others.
        prefixes = PrefixStore() if plan.device == "cpu" and plan.dtype != "int8" else None
        stages = BarkStages(model, plan.device, prefixes)
        self.choices.check_fits(stages.coarse_window_limit(), self._model_id)
        # The library's stages and barksite's (decode.py, fine.py) read the windows and sampling from it.
        self.choices.apply(model.generation_config)
        self._processor = processor
        self._stages = stages
        self._device = plan.device
        self._dtype = plan.dtype
        self.sample_rate = int(
            getattr(model.generation_config, "sample_rate", None)
            or getattr(model.config.codec_config, "sampling_rate", None)
            or DEFAULT_SAMPLE_RATE
        )
        self._voice_names = loading.v2_presets(processor.available_voice_presets)
        stages.install_faults(self.faults)
        self._model = model

    def release_memory(self) -> None:
        """Hand the CUDA caching allocator's free blocks back to the device (after a job, or a failed batch), so
        other processes on the GPU and the next job's batch shapes get them; a no-op on CPU or before loading."""
        if self._stages is not None:
            self._stages.release_memory()

    def runner_status(self) -> dict[str, Any]:
        return protocol.runner_state() or {"state": "not running"}

    # --- voices ---------------------------------------------------------------------------------------

    def voices(self) -> list[str]:
        """Bark's v2 presets in the checkpoint, read from its speaker embeddings index without loading weights."""
        if self._voice_names is None:
            self._voice_names = loading.local_presets(self._model_id)
        return list(self._voice_names or [])

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
                raise InputRefused(f"The voice {voice} cannot be used: {exc}") from exc
        if voice.startswith(CUSTOM_PREFIX):
            raise InputRefused(f"The voice {voice} was not loaded for this job (its prompt arrays are missing).")
        voices = self.voices()
        if voice not in voices:
            example = f", e.g. {self.default_voice()}" if voices else ""
            raise InputRefused(
                f"Unknown Bark voice preset {voice!r}; this checkpoint has {len(voices)} v2 presets{example}."
            )
        try:
            # The processor resolves the preset's files in the checkpoint (or its hub cache) and checks them; the
            # text is tokenized too, which an empty text makes cheap.
            preset = self._processor("", voice_preset=voice, return_tensors="np")["history_prompt"]
        except (OSError, ValueError, TypeError) as exc:
            raise InputRefused(f"Bark voice preset {voice!r} cannot be read: {exc}") from exc
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
            raise InputRefused(
                f"segment_voices names {len(options.segment_voices)} voices for {len(segments)} segments."
            )
        voices = [options.voice_for(index) or None for index in range(len(segments))]
        # Every voice is resolved before anything runs: a bad voice at segment 9 fails the job at once.
        prompts = {voice: self._voice_prompt(voice, options) for voice in set(voices)}
        with self._processor_lock:  # the fast tokenizer refuses concurrent calls from several threads
            inputs = self._processor(segments)
        text_ids = self.stages.text_rows(inputs["input_ids"], inputs["attention_mask"])
        stream = Stream.build(text_ids, voices, prompts, options, full_window=self.choices.fine_window == "full")
        scheduler = self._scheduler_for()
        scheduler.submit(stream)
        waveforms: list[np.ndarray] = []
        runs: list[SegmentRun] = []
        try:
            for index in range(len(segments)):
                item = stream.results.get()
                if isinstance(item, Exception):
                    raise self._failure(item) from item
                tokens, waveform, batch = item
                runs.append(SegmentRun(index=index, batch=batch, prompt=stream.source(index), tokens=tokens))
                waveforms.append(waveform)
                self._notify(on_segment, index, waveform)
        finally:
            stream.cancel()  # a no-op once every segment is delivered; else its rows stop at the next step
            scheduler.wake()
        self.last_run = runs
        self.release_memory()  # between jobs: the GPU's cache follows the current batch shapes
        return waveforms

    def _scheduler_for(self) -> Scheduler:
        with self._load_lock:
            if self._scheduler is None:
                self._scheduler = Scheduler(self.stages, self._generate_lock, self.max_batch)
            return self._scheduler

    def _failure(self, exc: Exception) -> EngineFault:
        """What a segment's failure inside the scheduler means for its job (raised `from` the original). Out of memory
        is reported as such only when even one row alone did not fit (the scheduler splits batches before this)."""
        if is_out_of_memory(exc):
            self.release_memory()  # the job fails with a reason; the worker, its loaded model and the next job carry on
            return EngineOutOfMemory(
                f"Bark ran out of {self._device} memory in {self._dtype}; "
                "try shorter text segments, fewer concurrent jobs, or BARK_DEVICE=cpu."
            )
        # device errors, broken weights, shape errors: the model failed, not the input (prompts are checked before)
        return EngineFault(f"Bark generation failed: {type(exc).__name__}: {exc}")

    # --- uploaded voices and cloning -------------------------------------------------------------------

    def read_voice_file(self, data: bytes) -> dict[str, np.ndarray]:
        return prompts.prompt_from_npz(data)

    def write_voice_file(self, prompt: dict[str, np.ndarray]) -> bytes:
        return prompts.save_prompt(prompt)

    def cloning_method(self) -> CloningMethod:
        return cloning.method_here(self.hubert)

    def check_clip(self, clip: bytes, transcript: str | None) -> str:
        return cloning.check_upload(clip, transcript, self.cloning_method())

    def clone_voice(self, clip: bytes, transcript: str | None, method: str | None = None) -> dict[str, np.ndarray]:
        """A prompt from a reference clip by `method` (cloning.py), with this engine's codec, text model and HuBERT."""
        method = method or self.cloning_method().name
        return cloning.clone(clip, transcript, method, self.encode_clip, self.semantic_tokens, self.hubert_tokens)

    def hubert_tokens(self, waveform: np.ndarray) -> np.ndarray:
        """Semantic tokens of a 16 kHz clip from HuBERT and its quantizer (hubert.py), on this engine's device."""
        return self.hubert.tokens(waveform, self.device)

    def encode_clip(self, waveform: np.ndarray) -> np.ndarray:
        """EnCodec codes (8, frames) of a 24 kHz mono float32 clip, from Bark's own codec at 6 kbps."""
        import torch

        self.load()
        try:
            with self._generate_lock, torch.inference_mode(), loading.one_torch_thread():
                return self.stages.encode(waveform)
        except Exception as exc:
            raise EngineFault(f"Bark could not encode the clip: {type(exc).__name__}: {exc}") from exc

    def semantic_tokens(self, text: str, length: int) -> np.ndarray:
        """Exactly `length` semantic tokens (0..9999) for `text`, decoded greedily without a speaker prompt."""
        import torch

        self.load()
        try:
            with self._generate_lock, torch.inference_mode(), loading.one_torch_thread():
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
            raise EngineFault(f"Bark could not read the transcript: {type(exc).__name__}: {exc}") from exc
        return row
