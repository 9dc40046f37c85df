"""Continuous batching of Bark segments across every caller of one loaded model: the thread that runs the model and
executes what the policy (policy.py) decides.

Each caller (a job, through `BarkEngine.synthesize`) hands over a `Stream`: its segments, each with its own speaker
prompt and sampling. One scheduler thread owns the model and loops over steps; in each it

1. admits new rows (`policy.admit`): new jobs' first segments run their semantic stage at once, the other rows' get a
   semantic batch that runs a unit at a time like a coarse window, ahead of the coarse windows;
2. runs one unit of work (`policy.next_unit`): a newly arrived job's first segments' next coarse window, whole; or one
   unit (a block of a row's prefill, a decode step) of the oldest open window, batched whatever job or voice its rows
   belong to; or opens the next 60-token coarse windows for every row that has coarse tokens left;
3. finishes rows (`policy.finishing`, `policy.fine_batches`): the fine stage and the codec of each row whose coarse
   codes are complete, first segments first; a job arriving meanwhile pauses it after the current block of a
   codebook's pass, and it goes on once that job's first segment is out; its audio goes to its stream.

So a job that arrives while others run waits at most one unit (one transformer block of a prefill or of a fine-stage
pass, or one decode step: about 0.3 s at most for bark-small in float32 on a slow 2-core CPU) before its first
segment starts; that segment runs ahead of the others, and the job's later segments share every window with them.

Batched work runs in batches of at most `max_rows`; on out-of-memory the batch is rolled back, `max_rows` halves
(down to 1) and the same rows run again in smaller batches, so a device that cannot hold a batch slows down instead
of failing its jobs; only a single row that does not fit fails its job. The fine stage shares its passes among rows
on a GPU; on a CPU, where a pass is bound by compute, batching saves nothing (a 1024-frame pass at bark-small's size
took 0.64-0.65 s per row at batch 1, 2 and 4 in bf16 on 2 Zen 4 cores), so it runs one row at a time and delivers each
as soon as it is done.

Each stream receives its segments in order; a cancelled stream's rows are dropped at the next step. Rows carry their
own `torch.Generator` when seeded, so what a seeded job generates does not depend on what it was batched with.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from synthesis.engines import is_out_of_memory
from synthesis.engines.bark import policy
from synthesis.engines.bark.policy import FineBatch, InFlight, OpenWindow, Stream
from synthesis.engines.bark.stages import BarkStages, BarkTokens

if TYPE_CHECKING:
    from synthesis.engines.bark.fine import FineRow

logger = logging.getLogger(__name__)

# Rows generated together at most (all streams), unless BARK_MAX_BATCH says otherwise. Measured at bark-small size
# on 2 CPU cores: aggregate decode throughput still grows from batch 4 to 8 (docs/bark-batching.md); more rows make
# each window of every job slower. A job alone may fill the batch; jobs running together share it row by row.
MAX_ROWS = 8


class Scheduler:
    """The one thread that runs a loaded model for every stream (see the module docstring)."""

    def __init__(self, stages: BarkStages, lock: threading.Lock, max_rows: int = MAX_ROWS) -> None:
        self.stages = stages
        self.max_rows = max_rows  # halved on out-of-memory (see _in_batches)
        # Rows sharing one fine-stage pass at most: on a CPU one (see the module docstring), elsewhere max_rows.
        self.fine_rows: int | None = 1 if stages.device == "cpu" else None
        self._model_lock = lock  # the engine's: encode_clip and semantic_tokens use the model from other threads
        self._streams: list[Stream] = []
        self._rows: list[InFlight] = []
        self._windows: list[OpenWindow] = []  # coarse windows open, run a unit (prefill block, decode step) at a time
        self._wake = threading.Condition()
        self._arrivals = itertools.count()
        # The most jobs whose rows shared one coarse window so far (for tests and benchmarks).
        self.most_streams_in_a_window = 0
        self._thread = threading.Thread(target=self._loop, name="bark-scheduler", daemon=True)
        self._thread.start()

    def submit(self, stream: Stream) -> None:
        with self._wake:
            stream.order = next(self._arrivals)
            self._streams.append(stream)
            self._wake.notify()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify()

    # --- the loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        while True:
            with self._wake:
                while not self._has_work():
                    self._wake.wait()
            try:
                with self._model_lock, torch.inference_mode():
                    self._step()
            except Exception as exc:  # a bug or a device fault: fail the rows in flight, keep serving the rest
                logger.exception("Bark scheduler step failed")
                self._fail_rows(self._rows, exc)

    def _has_work(self) -> bool:
        self._drop_cancelled()
        return policy.has_work(self._streams, self._rows)

    def _drop_cancelled(self) -> None:
        self._streams = [s for s in self._streams if not s.cancelled and s.delivered < len(s.segments)]
        self._rows = [row for row in self._rows if not row.stream.cancelled]
        # A window whose rows have all left (cancelled, failed) is not worth finishing.
        live = {id(row) for row in self._rows}
        self._windows = [window for window in self._windows if any(id(row) in live for row in window.rows)]

    def _step(self) -> None:
        """One unit of work: admit new rows, then either a newly arrived job's first segments (a whole window), or
        one block of a row's prefill or one decode step of the open windows, or open the next windows; then finish
        rows."""
        with self._wake:  # submit() appends to the streams from other threads
            self._drop_cancelled()
            admitted = self._admit(policy.admit(self._streams, len(self._rows), self.max_rows))
        self._rows.extend(admitted)
        # New jobs' first segments run their semantic stage at once; other rows' (and any rolled back) get a window
        # that runs a unit at a time, ahead of the coarse windows, so that a job arriving meanwhile need not wait.
        self._in_batches([row for row in admitted if row.first], self._run_semantic)  # failures leave self._rows
        self._open_semantic(policy.needs_semantic(self._rows, self._windows))
        unit, rows = policy.next_unit(self._rows, self._windows)
        if unit == "firsts":
            self._in_batches(rows, self._run_coarse_window)
        elif unit == "advance":
            self._advance(self._windows[0])
        elif unit == "open":
            self._open_windows(rows)
        self._finish_done()

    def _admit(self, streams: list[Stream]) -> list[InFlight]:
        """Take the next segment of each of `streams` (the policy's admissions, in order) as a row in flight."""
        admitted = [self._take(stream) for stream in streams]
        for stream in {row.stream for row in admitted}:
            batch = tuple(row.segment.index for row in admitted if row.stream is stream)
            for row in admitted:
                if row.stream is stream:
                    row.batch = batch
        return admitted

    @staticmethod
    def _take(stream: Stream) -> InFlight:
        """The stream's next segment, as a row in flight."""
        segment = stream.segments[stream.next_to_admit]
        if segment.uses_carry and stream.carry is None:
            stream.carry_from = segment.index  # this one speaks without a prompt; its tokens carry on
        stream.next_to_admit += 1
        return InFlight(stream, segment, ())

    def _new_job_waiting(self) -> bool:
        with self._wake:
            return policy.new_job_waiting(self._streams)

    def _prompt(self, row: InFlight) -> dict[str, np.ndarray] | None:
        if row.segment.uses_carry and row.stream.carry_from != row.segment.index:
            return row.stream.carry
        return row.segment.prompt

    # --- the semantic and coarse stages -------------------------------------------------------------------

    def _open_semantic(self, rows: list[InFlight]) -> None:
        """The semantic stage of `rows`, in batches of at most max_rows, to be run a unit at a time before the coarse
        windows already open (as if it had run when the rows were admitted)."""
        for start in reversed(range(0, len(rows), self.max_rows)):
            batch = rows[start : start + self.max_rows]
            self._windows.insert(0, OpenWindow(batch, self._semantic_steps(batch), [row.save() for row in batch]))

    def _open_windows(self, rows: list[InFlight]) -> None:
        """The next coarse window of `rows`, in batches of at most max_rows, to be run a unit at a time."""
        from synthesis.engines.bark import decode

        configs, codebook_size = self.stages.configs(), self.stages.codebook_size
        for start in range(0, len(rows), self.max_rows):
            batch = rows[start : start + self.max_rows]
            self.most_streams_in_a_window = max(self.most_streams_in_a_window, len({row.stream for row in batch}))
            states = [row.window for row in batch if row.window is not None]
            steps = decode.coarse_window_steps(self.stages.model, configs, states, codebook_size, self.stages.prefixes)
            self._windows.append(OpenWindow(batch, steps, [row.save() for row in batch]))

    def _advance(self, window: OpenWindow) -> None:
        """One unit of an open window; a window that runs out of memory is rolled back and its rows run again in
        smaller batches (max_rows halves), one that fails otherwise fails its rows' jobs."""
        try:
            next(window.steps)
        except StopIteration:
            self._windows.remove(window)
        except Exception as exc:
            self._windows.remove(window)
            if is_out_of_memory(exc) and len(window.rows) > 1:
                self._roll_back(window.rows, window.saved)
            else:
                logger.exception("Bark failed on a batch of %d rows", len(window.rows))
                self._fail_rows(window.rows, exc)

    def _in_batches(self, rows: list[InFlight], run: Callable[[list[InFlight]], None]) -> None:
        """`run` over `rows` in batches of at most max_rows. A batch that runs out of memory is rolled back and run
        again in halves (max_rows stays halved for later steps); a batch that fails otherwise, or one row alone
        that does not fit, fails the jobs of its rows and the other batches go on."""
        start = 0
        while start < len(rows):
            batch = rows[start : start + self.max_rows]
            saved = [row.save() for row in batch]
            try:
                run(batch)
            except Exception as exc:
                if is_out_of_memory(exc) and len(batch) > 1:
                    self._roll_back(batch, saved)
                    continue
                logger.exception("Bark failed on a batch of %d rows", len(batch))
                self._fail_rows(batch, exc)
            start += len(batch)

    def _roll_back(self, rows: list[InFlight], saved: list[tuple[int, Any]]) -> None:
        """A batch of `rows` ran out of memory: put each row back as it was before it (`saved`), and make later
        batches hold half as many rows (the windows still open are kept)."""
        for row, state in zip(rows, saved, strict=True):
            row.restore(state)
        self.max_rows = max(1, len(rows) // 2)
        if self.fine_rows is not None:
            self.fine_rows = min(self.fine_rows, self.max_rows)
        if self.stages.prefixes is not None:
            self.stages.prefixes.clear()  # memory the retry may need; prefixes are only a saving
        self.stages.release_memory()
        logger.warning("Bark ran out of memory at %d rows; batches now hold %d", len(rows), self.max_rows)

    def _run_coarse_window(self, rows: list[InFlight]) -> None:
        """The next coarse window of `rows`, at once (first segments: nothing else runs meanwhile)."""
        from synthesis.engines.bark import decode

        streams = len({row.stream for row in rows})
        self.most_streams_in_a_window = max(self.most_streams_in_a_window, streams)
        states, configs = [row.window for row in rows if row.window is not None], self.stages.configs()
        decode.coarse_window(self.stages.model, configs, states, self.stages.codebook_size, self.stages.prefixes)

    def _run_semantic(self, rows: list[InFlight]) -> None:
        """The semantic stage of `rows`, at once (new jobs' first segments)."""
        from synthesis.engines.bark import decode

        decode.run_to_end(self._semantic_steps(rows))

    def _semantic_steps(self, rows: list[InFlight]) -> Generator[None, None, None]:
        """The semantic stage of `rows` as a pausing computation; each row gets its tokens and coarse state."""
        import torch

        from synthesis.engines.bark import decode, windows

        configs = self.stages.configs()
        batch = []
        for row in rows:
            generator = None
            if row.segment.seed is not None:  # a fresh generator each run: a rolled-back row samples the same again
                generator = torch.Generator(device=self.stages.device).manual_seed(row.segment.seed)
            batch.append(self.stages.row(row.segment.text_ids, self._prompt(row), row.segment.sampling, generator))
        semantic = yield from decode.semantic_steps(self.stages.model, configs, batch, self.stages.min_eos_p)
        for row, spec, tokens in zip(rows, batch, semantic, strict=True):
            row.semantic = tokens
            row.spec = spec
            row.window = windows.coarse_row(spec, tokens, configs, self.stages.codebook_size)

    # --- the fine stage and the codec -------------------------------------------------------------------

    def _finish_done(self) -> None:
        """The fine stage and codec of the rows the policy finishes now, batch by batch. A job that arrives meanwhile
        pauses this after the current block of a codebook's pass (the rest go on at later steps), so it waits for one
        block at most, and nothing else is finished until its first segment is."""
        limit = self.fine_rows or self.max_rows
        for batch in policy.fine_batches(policy.finishing(self._rows), limit, self._fine_length):
            for row in batch:
                if row.stream.cancelled:  # since this step began
                    self._rows.remove(row)
            live = [row for row in batch if not row.stream.cancelled]
            if live and not self._finish(live):
                break

    def _fine_length(self, row: InFlight) -> int | None:
        return self.stages.fine_length(self._fine_row(row), row.stream.full_window)

    def _fine_row(self, row: InFlight) -> FineRow:
        from synthesis.engines.bark import windows

        assert row.spec is not None and row.window is not None
        coarse = windows.coarse_codes(row.window, self.stages.configs(), self.stages.codebook_size)
        prompt = self.stages.prompt_tensors(row.spec.prompt)
        return self.stages.fine_row(coarse, prompt, row.segment.sampling, row.spec.generator)

    def _finish(self, rows: list[InFlight]) -> bool:
        """Run the fine stage of `rows` (one batch) and the codec of each, and deliver their audio; False if a new job
        arrived first (the fine stage pauses after each block of each codebook pass and goes on at a later step)."""
        batch = rows[0].fine
        if batch is None:
            fine_rows = [self._fine_row(row) for row in rows]
            saved = [row.save() for row in rows]
            batch = FineBatch(rows, self.stages.fine_steps(fine_rows, rows[0].stream.full_window), saved)
            for row in rows:
                row.fine = batch
        try:
            while True:
                try:
                    next(batch.steps)
                except StopIteration as stop:
                    fine: list[np.ndarray] = stop.value
                    break
                if self._new_job_waiting():
                    return False
            audio = [self.stages.decode(codes) for codes in fine]
        except Exception as exc:
            if is_out_of_memory(exc) and len(batch.rows) > 1:
                for row in batch.rows:
                    row.fine = None
                self._roll_back(batch.rows, batch.saved)
                return True
            logger.exception("Bark fine stage failed")
            self._fail_rows([row for row in batch.rows if row in self._rows], exc)
            return True
        for row, codes, waveform in zip(batch.rows, fine, audio, strict=True):
            if row in self._rows:  # not cancelled meanwhile
                self._deliver(row, codes, waveform)
        return True

    def _deliver(self, row: InFlight, fine: np.ndarray, audio: np.ndarray) -> None:
        """Hand a finished row's tokens and audio to its stream, in order (as soon as each is ready)."""
        from synthesis.engines.bark import windows

        self._rows.remove(row)
        assert row.semantic is not None and row.window is not None
        coarse = windows.coarse_codes(row.window, self.stages.configs(), self.stages.codebook_size)
        tokens = BarkTokens(row.semantic, coarse, fine)
        stream = row.stream
        if stream.carry_from == row.segment.index:
            stream.carry = tokens.as_prompt()
        stream.finished[row.segment.index] = (tokens, audio, row.batch)
        while stream.delivered in stream.finished:
            stream.results.put(stream.finished.pop(stream.delivered))
            stream.delivered += 1

    def _fail_rows(self, rows: list[InFlight], exc: Exception) -> None:
        for stream in {row.stream for row in rows}:
            stream.cancelled = True
            stream.results.put(exc)
        self._rows = [row for row in self._rows if row not in rows]
