"""Whether Bark can run here and where its weights are, answered without loading them; then loading them.

`plan_load` checks, in the order an operator fixes them, that the device exists, that BARK_DTYPE suits it and that the
weights are on disk (BARK_MODEL as a directory, or a hub id in the Hugging Face cache) or may be downloaded
(BARK_MODELS_AVAILABLE=true). `BarkEngine.health()` reports its answer and `BarkEngine.load()` raises it, so the two
never disagree. torch and transformers are imported inside the functions that need them, after `import_problem`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthesis.engines import EngineUnavailable
from synthesis.engines.bark.precision import TOKEN_MODELS, PrecisionError, choose_dtype, convert, cpu_flags

logger = logging.getLogger(__name__)

DEFAULT_HUB_MODEL = "suno/bark-small"
SPEAKER_EMBEDDINGS_JSON = "speaker_embeddings_path.json"


@dataclass(frozen=True)
class LoadPlan:
    """What loading will do, decided before any weights are read."""

    model: str  # BARK_MODEL as configured
    device: str  # resolved: `auto` is cuda or cpu
    dtype: str  # resolved: `auto` is the best format for the device
    local: Path | None  # the checkpoint directory (a cache snapshot included); None: download `model`

    @property
    def source(self) -> str:
        return str(self.local) if self.local is not None else self.model

    def describe(self) -> str:
        """Health's reason for an engine that can load but has not yet."""
        if self.local is not None:
            return f"weights found in {self.local}; not loaded yet"
        return f"weights for {self.model} will be downloaded on first use"


def import_problem() -> str | None:
    """Why torch or transformers' Bark cannot be imported, or None."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # a broken install raises more than ImportError (e.g. OSError)
        return f"cannot import torch: {exc}"
    try:
        from transformers import BarkModel, BarkProcessor  # noqa: F401
    except Exception as exc:
        return f"cannot import transformers' Bark (from transformers import BarkModel): {exc}"
    return None


def plan_load(model: str, mode: str, requested_device: str, requested_dtype: str) -> LoadPlan:
    """How BARK_MODEL will load on BARK_DEVICE in BARK_DTYPE, or EngineUnavailable saying what to change.

    Call it once `import_problem()` is None: it imports torch.
    """
    problem = device_problem(requested_device)
    if problem is not None:
        raise EngineUnavailable(problem)
    device = resolve_device(requested_device)
    try:
        dtype = dtype_for(requested_dtype, device)
    except PrecisionError as exc:
        raise EngineUnavailable(str(exc)) from exc
    local = local_checkpoint(model)
    # Loading from the local directory (a cache snapshot included) never waits on the network; with
    # BARK_MODELS_AVAILABLE=true an unresolved hub id may download.
    if local is None and not (mode == "true" and is_hub_id(model)):
        raise EngineUnavailable(missing_weights_reason(model))
    return LoadPlan(model=model, device=device, dtype=dtype, local=local)


def device_problem(requested: str) -> str | None:
    import torch

    if requested.startswith("cuda") and not torch.cuda.is_available():
        return f"BARK_DEVICE={requested} but CUDA is not available (torch {torch.__version__}); use auto or cpu."
    if requested == "mps" and not torch.backends.mps.is_available():
        return "BARK_DEVICE=mps but Apple's MPS backend is not available here; use auto or cpu."
    return None


def resolve_device(requested: str) -> str:
    """BARK_DEVICE, with `auto` resolved to cuda where CUDA is available, else cpu."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_for(requested: str, device: str) -> str:
    """BARK_DTYPE resolved for `device` (PrecisionError when it cannot run there)."""
    if requested != "auto" or device != "cpu":
        return choose_dtype(requested, device, frozenset())
    with one_torch_thread():  # `auto` may time a matrix product here (precision.bf16_speedup)
        return choose_dtype(requested, device, cpu_flags())


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for the duration: for model work on any thread but the scheduler's (loading, the bf16
    measurement, voice cloning), so that the scheduler's thread is the only one that runs torch on several.

    torch's OpenMP runtime (libgomp) keeps a pool of worker threads for every thread that has run a parallel region;
    once a process holds more such workers than it has CPUs, they all sleep between regions instead of spinning, and
    each of the hundreds of small operations in a decode step pays a wake-up. Measured 2026-12-02 on 2 AMD EPYC cores
    with int8 weights: a model loaded on the main thread with 2 threads, then run by the scheduler's thread, took 25
    instead of 16.5 ms per batch-4 coarse step and 36 instead of 24 ms at batch 8 (docs/bark-batching.md)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def local_checkpoint(model: str) -> Path | None:
    """The local directory holding the weights: BARK_MODEL itself, or its Hugging Face cache snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path if (path / "config.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # not a valid repo id (e.g. a missing path), or no huggingface_hub: not resolvable
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def is_hub_id(model: str) -> bool:
    """Whether BARK_MODEL names a hub repository ("owner/name") rather than a directory."""
    return not (model.startswith((".", "~", "/")) or model.count("/") > 1 or Path(model).exists())


def missing_weights_reason(model: str) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        where = f"the directory {model} has no config.json"
    elif not is_hub_id(model):
        where = f"the directory {model} does not exist"
    else:
        where = f"{model} is not in the Hugging Face cache"
    repo = model if is_hub_id(model) else DEFAULT_HUB_MODEL
    download = " Set BARK_MODELS_AVAILABLE=true to let Bark download it on first use." if is_hub_id(model) else ""
    return (
        f"Bark weights not found: {where}. Download them with `.venv/bin/hf download {repo}` (and set "
        f"BARK_MODEL={repo}), point BARK_MODEL at a checkpoint directory, or build a random-weight test checkpoint "
        f"with `.venv/bin/python manage.py build_bark_checkpoint DIR --arch tiny`.{download}"
    )


def local_presets(model: str) -> list[str] | None:
    """The v2 presets listed in the local checkpoint's speaker embeddings index, or None where it cannot be read."""
    local = local_checkpoint(model)
    if local is None or not (local / SPEAKER_EMBEDDINGS_JSON).is_file():
        return None
    try:
        index = json.loads((local / SPEAKER_EMBEDDINGS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return v2_presets(index)


def v2_presets(names: Iterable[str]) -> list[str]:
    return sorted(name for name in names if name.startswith("v2/"))


def read(plan: LoadPlan) -> tuple[Any, Any]:
    """The BarkModel (in plan.dtype, on plan.device, in eval mode) and its BarkProcessor; EngineUnavailable if not."""
    import torch
    from transformers import BarkModel, BarkProcessor

    from synthesis.engines.bark.memory import release_dead_weights, tensor_spans
    from synthesis.engines.bark.packing import pack_linear_layers

    quiet_transformers()
    attention = _attention(plan)
    kwargs: dict[str, Any] = {
        "local_files_only": plan.local is not None,
        # Loaded in float32 and converted after (precision.convert), so the codec keeps its float32 weights.
        "dtype": torch.float32,
        "attn_implementation": attention,
    }
    try:
        model = BarkModel.from_pretrained(plan.source, **kwargs)
        loaded = tensor_spans([model])
        model = convert(model, plan.dtype).to(plan.device)
        model.eval()
        # Last: a packed weight cannot move to another device or format. Only bf16 and float32 CPU layers are packed.
        packed = pack_linear_layers([getattr(model, name) for name in TOKEN_MODELS])
        # The weights converted, packed or moved to a GPU leave their pages of the checkpoint file behind.
        release_dead_weights(loaded, [model])
        processor = BarkProcessor.from_pretrained(plan.source, local_files_only=plan.local is not None)
    except torch.cuda.OutOfMemoryError as exc:
        raise EngineUnavailable(f"Bark does not fit in {plan.device}'s memory in {plan.dtype}: {exc}") from exc
    except Exception as exc:
        raise EngineUnavailable(f"could not load Bark from {plan.source}: {type(exc).__name__}: {exc}") from exc
    packing = ", Linear weights packed for oneDNN" if packed else ""
    logger.info("Bark loaded from %s on %s (%s, %s%s)", plan.source, plan.device, plan.dtype, attention, packing)
    return model, processor


def quiet_transformers() -> None:
    from transformers.utils import logging as transformers_logging

    # Weight-loading progress bars and per-call notices about how generate() is fed say nothing to an
    # operator, and would repeat for every segment in the worker's log; real errors still raise.
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _attention(plan: LoadPlan) -> str:
    from transformers.utils import is_flash_attn_2_available

    # Bark supports only eager and flash_attention_2 (sdpa raises); FlashAttention runs in fp16/bf16 on CUDA only.
    flash = plan.device.startswith("cuda") and plan.dtype in ("float16", "bfloat16") and is_flash_attn_2_available()
    return "flash_attention_2" if flash else "eager"
