"""Bark's stages one at a time: what `BarkModel.generate` does, opened up so the engine can batch segments, carry a
voice from one segment to the next and pause its work between units.

`semantic` and `coarse` are transformers' own code (`model.semantic.generate`, `model.coarse_acoustics.generate`) fed
exactly as `BarkModel.generate` feeds it: the reference the batched stages (decode.py) are tested against. The fine
stage (fine.py) runs the fine model's modules in the library's 1024-frame window by default, or on each segment's
real length (`BARK_FINE_WINDOW=real`); the codec is the library's quantizer and decoder. torch is imported lazily:
importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthesis.engines.bark.sampling import min_eos_p
from synthesis.engines.bark.spec import Row, StageConfigs

if TYPE_CHECKING:
    from synthesis.engines.bark.fine import FineRow
    from synthesis.engines.bark.prefixes import PrefixStore
    from synthesis.engines.faults import FaultPlan

# Coarse tokens per sliding window in Bark (its generation config's sliding_window_len); BARK_COARSE_WINDOW can raise
# it up to the positions left after the window's context (`coarse_window_limit`).
COARSE_WINDOW = 60
# The fine stage's window: `full` pads every segment to the fine model's 1024 frames as Bark and transformers do (the
# library's codes); `real` runs it on the segment's own frames (faster; codebooks 3-8 differ). BARK_FINE_WINDOW.
FINE_WINDOWS = ("full", "real")
FINE_WINDOW = "full"
# The fine stage's temperature in Bark's own generate_audio; it is not exposed to users.
FINE_TEMPERATURE = 0.5
# The fewest semantic tokens a segment gets, unless the checkpoint's config sets its own minimum. Where EOS is the very
# first token the library returns no tokens at all, and its codec then fails (a 7-wide kernel over no frames); one
# token (one frame of audio) is the least the codec decodes, so everywhere else barksite stops where the library does.
MIN_SEMANTIC_TOKENS = 1
# A carried voice (the first segment's tokens) keeps this many semantic tokens, Bark's semantic history window, and
# the coarse/fine frames of the same span (floor(256 * 75 / 49.9)): the span a v2 preset holds. Bark would read no
# more semantic history anyway; the shorter fine history keeps the fine stage's window small.
HISTORY_SEMANTIC_TOKENS = 256
HISTORY_FRAMES = 384


@dataclass(frozen=True)
class Sampling:
    """Temperatures per stage; 0 decodes greedily (argmax), which makes generation deterministic."""

    text_temp: float
    waveform_temp: float

    @staticmethod
    def _kwargs(temperature: float) -> dict[str, Any]:
        return {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}

    def semantic_kwargs(self) -> dict[str, Any]:
        return self._kwargs(self.text_temp)

    def coarse_kwargs(self) -> dict[str, Any]:
        return self._kwargs(self.waveform_temp)

    @property
    def fine_temperature(self) -> float | None:
        # transformers' fine stage takes argmax at temperature None (or exactly 1.0).
        return FINE_TEMPERATURE if self.waveform_temp > 0 else None


@dataclass(frozen=True)
class BarkTokens:
    """One segment's generated tokens: semantic (T,) in 0..9999, coarse (2, F) and fine (8, F) codes in 0..1023."""

    semantic: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray

    def as_prompt(self) -> dict[str, np.ndarray]:
        """These tokens as a speaker prompt (Bark's long-form trick), trimmed from the end to a preset's span."""
        return {
            "semantic_prompt": self.semantic[-HISTORY_SEMANTIC_TOKENS:].copy(),
            "coarse_prompt": self.coarse[:, -HISTORY_FRAMES:].copy(),
            "fine_prompt": self.fine[:, -HISTORY_FRAMES:].copy(),
        }


class BarkStages:
    """The stages of one loaded BarkModel. Callers hold torch.inference_mode and seed torch's RNG themselves."""

    def __init__(self, model: Any, device: str, prefixes: PrefixStore | None = None) -> None:
        self.model = model
        self.device = device
        # Coarse-window prefixes (a voice's semantic history) computed once for every segment in that voice.
        self.prefixes = prefixes

    def configs(self) -> StageConfigs:
        """Each stage's generation config, rebuilt per call from the model's nested dicts as BarkModel.generate does
        (the engine and the runner's warm-up change those dicts: the coarse window, forced lengths, sampling)."""
        from transformers.models.bark.generation_configuration_bark import (
            BarkCoarseGenerationConfig,
            BarkFineGenerationConfig,
            BarkSemanticGenerationConfig,
        )

        config = self.model.generation_config
        return StageConfigs(
            BarkSemanticGenerationConfig(**config.semantic_config),
            BarkCoarseGenerationConfig(**config.coarse_acoustics_config),
            BarkFineGenerationConfig(**config.fine_acoustics_config),
        )

    def install_faults(self, faults: FaultPlan) -> None:
        """Make each stage's planned fault (BARK_FAULT_INJECTION, drills and tests) fire inside that stage's own forward
        pass (see faults.py): the output layer of the semantic and coarse models, every output head of the fine model,
        the codec's decoder."""
        heads = {
            "semantic": [self.model.semantic.lm_head],
            "coarse": [self.model.coarse_acoustics.lm_head],
            "fine": list(self.model.fine_acoustics.lm_heads),
            "codec": [self.model.codec_model.decoder],
        }
        for stage in faults.stages():
            for module in heads[stage]:
                module.register_forward_pre_hook(faults.hook(stage))

    def release_memory(self) -> None:
        """Hand the CUDA caching allocator's free blocks back to the device (after a batch that did not fit); a
        no-op on CPU."""
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def coarse_window_limit(self) -> int:
        """The longest coarse window this checkpoint's positions allow: a window's context (the semantic window, the
        infer token, the coarse history) and the window's tokens but the last, which is never fed back, must fit in
        the coarse model's positions (for Bark, 1024 - 256 - 1 - 630 + 1 = 138, upstream's own bound)."""
        coarse_config = self.configs().coarse
        positions = int(self.model.coarse_acoustics.config.block_size)
        return positions - int(coarse_config.max_coarse_input_length) - 1 - int(coarse_config.max_coarse_history) + 1

    @property
    def min_eos_p(self) -> float | None:
        """The semantic stage's EOS threshold: the config's `min_eos_p` (the checkpoint's, or BARK_MIN_EOS_P), else
        upstream Bark's 0.2 (`sampling.min_eos_p`)."""
        return min_eos_p(self.configs().semantic)

    @property
    def codebook_size(self) -> int:
        return int(self.model.generation_config.codebook_size)

    def prompt_tensors(self, prompt: dict[str, np.ndarray] | None) -> dict[str, Any] | None:
        import torch

        if prompt is None:
            return None
        # int64: the models index embeddings with these codes.
        return {
            key: torch.from_numpy(np.asarray(value, dtype=np.int64)).to(self.device) for key, value in prompt.items()
        }

    # --- the stages -----------------------------------------------------------------------------------

    def semantic(
        self, input_ids: Any, attention_mask: Any, prompt: dict[str, Any] | None, sampling: Sampling, **overrides: Any
    ) -> list[np.ndarray]:
        """Semantic tokens per text (the batch shares `prompt`), each cut at its EOS."""
        semantic_config = self.configs().semantic
        kwargs: dict[str, Any] = {
            "attention_mask": attention_mask,
            "min_eos_p": min_eos_p(semantic_config),
            **sampling.semantic_kwargs(),
        }
        if not getattr(semantic_config, "min_new_tokens", None):
            kwargs["min_new_tokens"] = MIN_SEMANTIC_TOKENS
        kwargs.update(overrides)
        output = self.model.semantic.generate(
            input_ids, history_prompt=prompt, semantic_generation_config=semantic_config, **kwargs
        )
        rows = []
        # A row that stops early is filled with EOS (the semantic pad token) up to the longest row.
        for row in output.cpu().numpy().astype(np.int64):
            ends = np.flatnonzero(row == semantic_config.semantic_pad_token)
            rows.append(row[: ends[0]] if ends.size else row)
        return rows

    def coarse(self, semantic: list[np.ndarray], prompt: dict[str, Any] | None, sampling: Sampling) -> list[np.ndarray]:
        """Coarse codes (2, F) per row, F = floor(T * 75 / 49.9), from one batched sliding-window generation.

        Rows shorter than the longest keep generating past their end (causally, so their real frames are those a
        generation of their own gives under greedy decoding); the extra frames are cut here and never reach audio.
        """
        import torch

        semantic_config, coarse_config, _ = self.configs()
        batch = np.full((len(semantic), max(len(row) for row in semantic)), semantic_config.semantic_pad_token)
        for index, row in enumerate(semantic):
            batch[index, : len(row)] = row
        output, lengths = self.model.coarse_acoustics.generate(
            torch.from_numpy(batch).to(self.device),
            history_prompt=prompt,
            semantic_generation_config=semantic_config,
            coarse_generation_config=coarse_config,
            codebook_size=self.codebook_size,
            return_output_lengths=True,
            **sampling.coarse_kwargs(),
        )
        # Coarse tokens interleave the two codebooks, each offset past the semantic vocabulary.
        codes = torch.remainder(output - semantic_config.semantic_vocab_size, self.codebook_size).cpu().numpy()
        n_coarse = coarse_config.n_coarse_codebooks
        return [
            codes[row, :length].reshape(-1, n_coarse).T.astype(np.int64) for row, length in enumerate(lengths.tolist())
        ]

    def fine(
        self,
        coarse: np.ndarray,
        prompt: dict[str, Any] | None,
        sampling: Sampling,
        full_window: bool = True,
        generator: Any = None,
    ) -> np.ndarray:
        """Fine codes (8, F) for one item's coarse codes (2, F), in the library's window unless `full_window` is False;
        see `fine_steps`."""
        from synthesis.engines.bark.decode import run_to_end

        row = self.fine_row(coarse, prompt, sampling, generator)
        return run_to_end(self.fine_steps([row], full_window))[0]

    def fine_row(
        self, coarse: np.ndarray, prompt: dict[str, Any] | None, sampling: Sampling, generator: Any = None
    ) -> FineRow:
        """One item for the fine stage: its coarse codes (2, F), its prompt's tensors and its sampling."""
        from synthesis.engines.bark.fine import FineRow

        return FineRow(coarse, prompt, sampling.fine_temperature, generator)

    def fine_length(self, row: FineRow, full_window: bool) -> int | None:
        """The frames one fine pass over `row` reads; rows of the same length can share a pass (None: it runs alone,
        through the library's sliding loop)."""
        from synthesis.engines.bark.fine import buffer_length

        return buffer_length(row, self.configs(), full_window)

    def fine_steps(self, rows: list[FineRow], full_window: bool = True) -> Generator[None, None, list[np.ndarray]]:
        """Fine codes (8, F) per row, pausing (yielding) after each block of each codebook's pass and between passes.

        The rows share each pass, so they must all read the same number of frames (`fine_length`): in the library's
        window (`full_window`, exact) any rows do; on real lengths, rows of equal length. A row longer than the window
        goes alone through the library's own sliding loop (fine.py explains both windows)."""
        from synthesis.engines.bark.fine import buffer_length, fine_steps

        configs = self.configs()
        if len(rows) == 1 and buffer_length(rows[0], configs, full_window) is None:
            return [self._fine_sliding(rows[0])]
        return (yield from fine_steps(self.model, configs, rows, self.codebook_size, full_window))

    def _fine_sliding(self, row: FineRow) -> np.ndarray:
        """Fine codes (8, F) through the library's own sliding loop, for an item longer than the fine window."""
        import torch

        semantic_config, coarse_config, fine_config = self.configs()
        flat = torch.from_numpy(row.coarse.T.reshape(1, -1) + semantic_config.semantic_vocab_size).to(self.device)
        output = self.model.fine_acoustics.generate(
            flat,
            history_prompt=row.prompt,
            semantic_generation_config=semantic_config,
            coarse_generation_config=coarse_config,
            fine_generation_config=fine_config,
            codebook_size=self.codebook_size,
            temperature=row.temperature,
        )
        return np.asarray(output[0].cpu().numpy(), dtype=np.int64)

    def decode(self, fine: np.ndarray) -> np.ndarray:
        """One item's fine codes (8, F) as float32 audio (F * 320 samples at 24 kHz)."""
        import torch

        codec = self.model.codec_model
        codes = torch.from_numpy(fine[:, None, :]).to(self.device)  # (codebooks, batch 1, frames)
        return np.asarray(codec.decoder(codec.quantizer.decode(codes)).squeeze().float().cpu().numpy())

    # --- rows with their own prompts (batched across voices and jobs) ---------------------------------------

    def text_rows(self, input_ids: Any, attention_mask: Any) -> list[np.ndarray]:
        """The processor's (B, 256) ids as the semantic model reads them: offset, padding replaced by the pad token."""
        config = self.configs().semantic
        ids = (input_ids + config.text_encoding_offset).masked_fill(attention_mask == 0, config.text_pad_token)
        return list(ids.cpu().numpy().astype(np.int64))

    def row(
        self, text_ids: np.ndarray, prompt: dict[str, np.ndarray] | None, sampling: Sampling, generator: Any = None
    ) -> Row:
        """One segment to generate, with the semantic length limits of the checkpoint's config."""
        config = self.configs().semantic
        return Row(
            text_ids=text_ids,
            prompt=prompt,
            text_temp=sampling.text_temp,
            waveform_temp=sampling.waveform_temp,
            generator=generator,
            min_new_tokens=getattr(config, "min_new_tokens", None) or MIN_SEMANTIC_TOKENS,
            max_new_tokens=config.max_new_tokens,
        )

    def generate_rows(self, rows: list[Row], full_window: bool = True) -> Iterator[tuple[BarkTokens, np.ndarray]]:
        """Tokens and audio per row, each row with its own prompt and sampling; yielded in order as each is decoded.

        The semantic and coarse stages run batched over all rows (see decode.py), the fine stage and the codec per row.
        """
        from synthesis.engines.bark import decode, windows

        configs = self.configs()
        semantic = decode.semantic(self.model, configs, rows, self.min_eos_p)
        states = [
            windows.coarse_row(row, tokens, configs, self.codebook_size)
            for row, tokens in zip(rows, semantic, strict=True)
        ]
        coarse = decode.coarse(self.model, configs, states, self.codebook_size, self.prefixes)
        for row, semantic_row, coarse_row in zip(rows, semantic, coarse, strict=True):
            sampling = Sampling(row.text_temp, row.waveform_temp)
            fine = self.fine(coarse_row, self.prompt_tensors(row.prompt), sampling, full_window, row.generator)
            yield BarkTokens(semantic_row, coarse_row, fine), self.decode(fine)

    # --- cloning --------------------------------------------------------------------------------------

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """EnCodec codes (8, ceil(n / 320)) of 24 kHz mono audio, at the bandwidth that gives Bark's 8 codebooks."""
        import torch

        codec = self.model.codec_model
        fine_config = self.configs().fine
        bandwidth = fine_config.n_fine_codebooks * codec.config.frame_rate * codec.config.codebook_nbits / 1000
        if bandwidth not in codec.config.target_bandwidths:
            raise ValueError(f"the codec offers {codec.config.target_bandwidths} kbps, not {bandwidth} (8 codebooks)")
        dtype = next(codec.parameters()).dtype
        values = torch.from_numpy(np.asarray(waveform, dtype=np.float32))[None, None].to(self.device, dtype)
        output = codec.encode(values, bandwidth=bandwidth, return_dict=True)
        return np.asarray(output.audio_codes[0, 0].cpu().numpy(), dtype=np.int64)
