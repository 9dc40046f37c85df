"""Continuous batching of Bark segments across every caller of one loaded model.

Each caller (a job, through `BarkEngine.synthesize`) hands over a `Stream`: its segments, each with its own speaker
prompt and sampling. One scheduler thread owns the model and loops over three kinds of step:

1. admit new rows: every new stream's first segment at once, even past the batch size (its semantic stage runs at
   once); then the most urgent streams first, one row per stream before any stream gets a second, up to `max_rows`
   in flight (their semantic stage, batched, runs one unit at a time like a coarse window, below). A stream's first
   segment runs alone until it is delivered (first audio early);
2. one 60-token coarse window for every row in the coarse stage, batched, whatever job or voice it belongs to, run
   one unit (a block of a row's prefill, a decode step) per loop; when a job's first segment arrives, the open
   windows pause and that segment's windows run at once, then the open windows go on where they were;
3. the fine stage and the codec for each row whose coarse codes are complete (first segments first; a job arriving
   meanwhile pauses it after the current block of a codebook's pass, and it goes on once that job's first segment is
   out); its audio goes to its stream.

So a job that arrives while others run waits at most one unit (one transformer block of a prefill or of a fine-stage
pass, or one decode step: about 0.3 s at most for bark-small in float32 on a slow 2-core CPU) before its first
segment starts; that segment runs ahead of the others, and the job's later segments share every window with them.

Batched work runs in batches of at most `max_rows`; on out-of-memory the batch is rolled back, `max_rows` halves
(down to 1) and the same rows run again in smaller batches, so a device that cannot hold a batch slows down instead
of failing its jobs; only a single row that does not fit fails its job.

Each stream receives its segments in order; a cancelled stream's rows are dropped at the next step. Rows carry their
own `torch.Generator` when seeded, so what a seeded job generates does not depend on what it was batched with.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthesis.engines import is_out_of_memory
from synthesis.engines.bark.stages import MIN_EOS_P, BarkStages, BarkTokens, Sampling

logger = logging.getLogger(__name__)

# Rows generated together at most (all streams), unless BARK_MAX_BATCH says otherwise. Measured at bark-small size
# on 2 CPU cores: aggregate decode throughput still grows from batch 4 to 8 (docs/bark-batching.md); more rows make
# each window of every job slower. A job alone may fill the batch; jobs running together share it row by row.
MAX_ROWS = 8


@dataclass
class Segment:
    """One segment of a stream: its text ids, its speaker prompt (None: carried, see Stream) and sampling."""

    index: int
    text_ids: np.ndarray
    prompt: dict[str, np.ndarray] | None
    uses_carry: bool  # no voice of its own: it speaks with the stream's carried voice once there is one
    sampling: Sampling
    seed: int | None  # seeds the segment's own generator; None samples from torch's global RNG


@dataclass(eq=False)
class Stream:
    """One caller's segments and the results coming back, in order (tokens, audio) or an exception."""

    segments: list[Segment]
    voices: list[str | None]  # each segment's voice id (None: none given)
    priority: int = 0
    full_window: bool = False
    order: int = 0  # arrival, set by the scheduler
    next_to_admit: int = 0
    delivered: int = 0
    carry: dict[str, np.ndarray] | None = None
    carry_from: int | None = None  # the segment whose tokens become the carried voice
    cancelled: bool = False
    results: queue.Queue = field(default_factory=queue.Queue)
    finished: dict[int, tuple[BarkTokens, np.ndarray, tuple[int, ...]]] = field(default_factory=dict)

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(eq=False)
class InFlight:
    stream: Stream
    segment: Segment
    batch: tuple[int, ...]  # indices of this stream's segments admitted together (for SegmentRun)
    spec: Any = None  # decode.Row once admitted
    window: Any = None  # decode.CoarseRow once its semantic tokens exist
    semantic: np.ndarray | None = None
    fine: Generator[None, None, np.ndarray] | None = None  # its fine stage, once started (BarkStages.fine_steps)

    def save(self) -> tuple[int, Any]:
        """What a batch that fails part-way changes: the coarse tokens so far and the row's RNG state."""
        if self.window is None:  # not through the semantic stage: it starts from scratch (a new generator)
            return 0, None
        generator = self.window.generator
        return len(self.window.coarse), generator.get_state() if generator is not None else None

    def restore(self, state: tuple[int, Any]) -> None:
        if self.window is not None:
            coarse, rng = state
            del self.window.coarse[coarse:]
            if rng is not None:
                self.window.generator.set_state(rng)


@dataclass(eq=False)
class OpenWindow:
    """A coarse window in progress: its rows, the pausing computation (decode.coarse_window_steps) and each row's
    state before it (to roll back if it runs out of memory)."""

    rows: list[InFlight]
    steps: Iterator[None]
    saved: list[tuple[int, Any]]


class Scheduler:
    """The one thread that runs a loaded model for every stream (see the module docstring)."""

    def __init__(self, stages: BarkStages, lock: threading.Lock, max_rows: int = MAX_ROWS) -> None:
        self.stages = stages
        self.max_rows = max_rows  # halved on out-of-memory (see _in_batches)
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
        return bool(self._rows) or any(self._admissible(stream) for stream in self._streams)

    def _drop_cancelled(self) -> None:
        self._streams = [s for s in self._streams if not s.cancelled and s.delivered < len(s.segments)]
        self._rows = [row for row in self._rows if not row.stream.cancelled]
        # A window whose rows have all left (cancelled, failed) is not worth finishing.
        live = {id(row) for row in self._rows}
        self._windows = [window for window in self._windows if any(id(row) in live for row in window.rows)]

    def _admissible(self, stream: Stream) -> bool:
        if stream.next_to_admit >= len(stream.segments):
            return False
        in_flight = stream.next_to_admit - stream.delivered
        if stream.delivered == 0 and in_flight > 0:
            return False  # the first segment runs alone: first audio after one segment
        segment = stream.segments[stream.next_to_admit]
        # A voiceless segment waits for the carried voice, unless it is the first (its tokens become that voice).
        return not (segment.uses_carry and stream.carry is None and stream.carry_from is not None)

    def _step(self) -> None:
        """One unit of work: admit new rows, then either a newly arrived job's first segments (a whole window), or
        one block of a row's prefill or one decode step of the open windows, or open the next windows; then finish
        rows."""
        with self._wake:  # submit() appends to the streams from other threads
            self._drop_cancelled()
            admitted = self._admit()
        self._rows.extend(admitted)
        # New jobs' first segments run their semantic stage at once; other rows' (and any rolled back) get a window
        # that runs a unit at a time, ahead of the coarse windows, so that a job arriving meanwhile need not wait.
        new_firsts = [row for row in admitted if row.stream.delivered == 0]
        self._in_batches(new_firsts, self._run_semantic)  # a row that fails here leaves self._rows (_fail_rows)
        in_windows = {id(row) for window in self._windows for row in window.rows}
        self._open_semantic([row for row in self._rows if row.window is None and id(row) not in in_windows])
        # (The semantic windows just opened hold rows without coarse state, which _coarse_left leaves out anyway.)
        waiting = [row for row in self._rows if _coarse_left(row) and id(row) not in in_windows]
        # First audio before throughput: while some job waits for its first segment, only those rows run, and the
        # open windows wait. On a CPU a window's cost grows with its rows (the prefill is compute-bound), so a late
        # job's first segment would otherwise take as long as the whole batch it joined.
        firsts = [row for row in waiting if row.stream.delivered == 0]
        if firsts:
            self._in_batches(firsts, self._run_coarse_window)
        elif self._windows:
            self._advance(self._windows[0])
        elif waiting:
            self._open_windows(waiting)
        self._finish_done()

    def _finish_done(self) -> None:
        """The fine stage and codec of every row whose coarse codes are complete, first segments first. A job that
        arrives meanwhile pauses this after the current block of a codebook's pass (the rest go on at later steps), so
        it waits for one block at most, and nothing else is finished until its first segment is."""
        done = [row for row in self._rows if row.window is not None and not _coarse_left(row)]
        done.sort(key=lambda row: (row.stream.delivered > 0, -row.stream.priority, row.stream.order))
        # While a job's first segment is still generating, the others' fine stages wait for it too.
        firsts_running = any(row.stream.delivered == 0 for row in self._rows if row not in done)
        for row in done:
            if row.stream.delivered > 0 and firsts_running:
                break
            if row.stream.cancelled:  # cancelled since this step began
                self._rows.remove(row)
            elif not self._finish(row):
                break

    def _new_job_waiting(self) -> bool:
        with self._wake:
            return any(stream.next_to_admit == 0 and self._admissible(stream) for stream in self._streams)

    def _open_semantic(self, rows: list[InFlight]) -> None:
        """The semantic stage of `rows`, in batches of at most max_rows, to be run a unit at a time before the coarse
        windows already open (as if it had run when the rows were admitted)."""
        for start in reversed(range(0, len(rows), self.max_rows)):
            batch = rows[start : start + self.max_rows]
            self._windows.insert(0, OpenWindow(batch, self._semantic_steps(batch), [row.save() for row in batch]))

    def _open_windows(self, rows: list[InFlight]) -> None:
        """The next coarse window of `rows`, in batches of at most max_rows, to be run a unit at a time."""
        from synthesis.engines.bark import decode

        configs, codebook_size = self.stages._configs(), self.stages.codebook_size
        for start in range(0, len(rows), self.max_rows):
            batch = rows[start : start + self.max_rows]
            self.most_streams_in_a_window = max(self.most_streams_in_a_window, len({row.stream for row in batch}))
            windows = [row.window for row in batch]
            steps = decode.coarse_window_steps(self.stages.model, configs, windows, codebook_size, self.stages.prefixes)
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

    def _admit(self) -> list[InFlight]:
        """New rows: every new stream's first segment at once, even past max_rows (a job arriving while others run
        hears audio after one segment), then one row per stream per pass, most urgent first, up to max_rows."""
        admitted: list[InFlight] = []
        streams = sorted(self._streams, key=lambda s: (-s.priority, s.order))
        for stream in streams:
            if stream.next_to_admit == 0 and self._admissible(stream):
                admitted.append(self._take(stream))
        while len(self._rows) + len(admitted) < self.max_rows:
            added = False
            for stream in streams:
                if len(self._rows) + len(admitted) >= self.max_rows or not self._admissible(stream):
                    continue
                admitted.append(self._take(stream))
                added = True
            if not added:
                break
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

    def _prompt(self, row: InFlight) -> dict[str, np.ndarray] | None:
        if row.segment.uses_carry and row.stream.carry_from != row.segment.index:
            return row.stream.carry
        return row.segment.prompt

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
        if self.stages.prefixes is not None:
            self.stages.prefixes.clear()  # memory the retry may need; prefixes are only a saving
        self.stages.release_memory()
        logger.warning("Bark ran out of memory at %d rows; batches now hold %d", len(rows), self.max_rows)

    def _run_coarse_window(self, rows: list[InFlight]) -> None:
        """The next coarse window of `rows`, at once (first segments: nothing else runs meanwhile)."""
        from synthesis.engines.bark import decode

        streams = len({row.stream for row in rows})
        self.most_streams_in_a_window = max(self.most_streams_in_a_window, streams)
        windows, configs = [row.window for row in rows], self.stages._configs()
        decode.coarse_window(self.stages.model, configs, windows, self.stages.codebook_size, self.stages.prefixes)

    def _run_semantic(self, rows: list[InFlight]) -> None:
        """The semantic stage of `rows`, at once (new jobs' first segments)."""
        from synthesis.engines.bark import decode

        decode.run_to_end(self._semantic_steps(rows))

    def _semantic_steps(self, rows: list[InFlight]) -> Generator[None, None, None]:
        """The semantic stage of `rows` as a pausing computation; each row gets its tokens and coarse state."""
        import torch

        from synthesis.engines.bark import decode

        configs = self.stages._configs()
        batch = []
        for row in rows:
            generator = None
            if row.segment.seed is not None:  # a fresh generator each run: a rolled-back row samples the same again
                generator = torch.Generator(device=self.stages.device).manual_seed(row.segment.seed)
            batch.append(self.stages.row(row.segment.text_ids, self._prompt(row), row.segment.sampling, generator))
        semantic = yield from decode.semantic_steps(self.stages.model, configs, batch, MIN_EOS_P)
        for row, spec, tokens in zip(rows, batch, semantic, strict=True):
            row.semantic = tokens
            row.spec = spec
            row.window = decode.coarse_row(spec, tokens, configs, self.stages.codebook_size)

    def _finish(self, row: InFlight) -> bool:
        """Run `row`'s fine stage and codec and deliver its audio; False if a new job arrived first (the fine stage
        pauses after each block of each codebook pass and goes on at a later step)."""
        from synthesis.engines.bark import decode

        spec = row.spec
        coarse = decode.coarse_codes(row.window, self.stages._configs(), self.stages.codebook_size)
        if row.fine is None:
            prompt = self.stages.prompt_tensors(spec.prompt)
            sampling, full_window = row.segment.sampling, row.stream.full_window
            row.fine = self.stages.fine_steps(coarse, prompt, sampling, full_window, spec.generator)
        try:
            while True:
                try:
                    next(row.fine)
                except StopIteration as stop:
                    fine = stop.value
                    break
                if self._new_job_waiting():
                    return False
            audio = self.stages.decode(fine)
        except Exception as exc:
            logger.exception("Bark fine stage failed")
            self._fail_rows([row], exc)
            return True
        self._rows.remove(row)
        assert row.semantic is not None
        tokens = BarkTokens(row.semantic, coarse, fine)
        stream = row.stream
        if stream.carry_from == row.segment.index:
            stream.carry = tokens.as_prompt()
        stream.finished[row.segment.index] = (tokens, audio, row.batch)
        while stream.delivered in stream.finished:  # in order, as soon as each is ready
            stream.results.put(stream.finished.pop(stream.delivered))
            stream.delivered += 1
        return True

    def _fail_rows(self, rows: list[InFlight], exc: Exception) -> None:
        for stream in {row.stream for row in rows}:
            stream.cancelled = True
            stream.results.put(exc)
        self._rows = [row for row in self._rows if row not in rows]


def _coarse_left(row: InFlight) -> bool:
    """Whether `row` is through the semantic stage and still has coarse tokens to generate."""
    return row.window is not None and row.window.generated < row.window.length
