"""How far barksite's codes are from transformers' `BarkModel.generate`, stage by stage, at a checkpoint's real size.

Greedy decoding, one job of a few segments with different voices through the engine as the Bark runner runs it (the
scheduler: the first segment alone, the others batched together), against the library on each segment alone with
the same weights in the same format (`precision.convert`, as barksite loads them, but not packed: the library's own
Linear layers). Printed per segment and stage: whether the codes are equal, and if not how many are and where the
first difference is; and the audio's largest difference. `--no-packing` loads barksite without oneDNN-packed weights
and `--no-prefixes` without the store of voice-history prefixes, to see what each departure accounts for. The tiny
checkpoint's tests (tests/test_bark_fidelity.py) show equality bit for bit; this shows what rounding does at
bark-small's size, where random weights give flat logits and an argmax flips more easily than with trained ones.

    python bench/fidelity.py --arch tiny
    python bench/fidelity.py --arch bark-small --checkpoint /tmp/bark-small --dtype bfloat16 --semantic-tokens 60
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")

import django  # noqa: E402

django.setup()

from machine import describe  # noqa: E402  (bench/machine.py)

from synthesis.engines import SynthesisOptions  # noqa: E402
from synthesis.engines.bark import packing  # noqa: E402
from synthesis.engines.bark.checkpoint import build_bark_checkpoint  # noqa: E402
from synthesis.engines.bark.engine import BarkEngine  # noqa: E402
from synthesis.engines.bark.precision import convert  # noqa: E402
from synthesis.engines.bark.reference import library_run  # noqa: E402

TEXTS = [
    "The first sentence of the job runs alone, for its first audio.",
    "The second one shares a batch with the third.",
    "And the third speaks without a preset.",
]
VOICES = ["v2/en_speaker_6", "v2/de_speaker_3", None]


def compare(ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape == theirs.shape and np.array_equal(ours, theirs):
        return "equal"
    if ours.shape != theirs.shape:
        return f"shapes differ ({ours.shape} vs {theirs.shape})"
    same = ours == theirs
    first = np.argwhere(~same)[0]
    return f"{same.mean():.1%} equal, first difference at {tuple(int(i) for i in first)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--dtype", default="float32", help="BARK_DTYPE for both (float32, bfloat16)")
    parser.add_argument("--semantic-tokens", type=int, default=60, help="forced per segment (random weights)")
    parser.add_argument("--no-packing", action="store_true", help="barksite without oneDNN-packed Linear weights")
    parser.add_argument("--no-prefixes", action="store_true", help="barksite without the voice-prefix store")
    args = parser.parse_args()
    directory = args.checkpoint or Path(tempfile.mkdtemp(prefix=f"bark-{args.arch}-"))
    if not (directory / "config.json").is_file():
        build_bark_checkpoint(directory, arch=args.arch)
    if args.no_packing:
        packing.pack_linear_layers = lambda models: False  # what loading.read calls
    engine = BarkEngine(
        model=str(directory), device="cpu", mode="auto", dtype=args.dtype, force_semantic_tokens=args.semantic_tokens
    )
    engine.load()
    if args.no_prefixes:
        engine.stages.prefixes = None
    started = time.perf_counter()
    ours = engine.synthesize(TEXTS, SynthesisOptions(segment_voices=VOICES, text_temp=0.0, waveform_temp=0.0))
    ours_s = time.perf_counter() - started
    runs = engine.last_run

    from transformers import BarkModel, BarkProcessor

    model = convert(BarkModel.from_pretrained(directory).eval(), engine.dtype)
    processor = BarkProcessor.from_pretrained(directory)
    print(f"machine: {describe()}")
    print(
        f"checkpoint: {args.arch} at {directory} in {engine.dtype}, {args.semantic_tokens} semantic tokens a segment; "
        f"barksite {'without' if args.no_packing else 'with'} packed weights, "
        f"{'without' if args.no_prefixes or engine.stages.prefixes is None else 'with'} the prefix store "
        f"({ours_s:.1f} s for the job)"
    )
    started = time.perf_counter()
    for index, (text, voice) in enumerate(zip(TEXTS, VOICES, strict=True)):
        reference = library_run(model, processor, text, voice, args.semantic_tokens)
        tokens = runs[index].tokens
        stages = {"semantic": (tokens.semantic, reference.semantic), "coarse": (tokens.coarse, reference.coarse)}
        stages |= {"fine 1-2": (tokens.fine[:2], reference.fine[:2]), "fine 3-8": (tokens.fine[2:], reference.fine[2:])}
        audio = ours[index], reference.audio
        largest = float(np.abs(audio[0] - audio[1]).max()) if audio[0].shape == audio[1].shape else float("nan")
        print(
            f"segment {index} (voice {voice or 'none'}, batch {runs[index].batch}): "
            + "; ".join(f"{name} {compare(*pair)}" for name, pair in stages.items())
            + f"; audio {'equal' if largest == 0 else f'largest difference {largest:.3g}'}",
            flush=True,
        )
    print(f"the library took {time.perf_counter() - started:.1f} s for the three segments alone")
    print(f"load average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
