"""The Bark scheduler's decisions, as plain functions of its state: which rows to admit, which unit of work runs next,
which rows finish and which of them share a fine-stage pass.

The scheduler (scheduler.py) holds the state (the streams, the rows in flight, the open windows) and runs the model;
at each decision it asks a function here, which reads that state and changes nothing, and then executes the answer.
So the policy is tested on states built by hand, without a model or torch (tests/test_bark_policy.py). The rules:

1. admission: every new stream's first segment at once, even past `max_rows` (its semantic stage runs at once, so a
   job arriving while others run hears audio after one segment); then the most urgent streams first (priority, then
   arrival), one row per stream before any stream gets a second, up to `max_rows` rows in flight. A stream's first
   segment runs alone until it is delivered, and a segment without a voice of its own waits for the carried voice
   (the first such segment's tokens), unless it is that first one;
2. the next unit: while some job's first segment has coarse tokens left, only those rows run (a whole window at
   once); else one unit (a prefill block, a decode step) of the oldest open window; else new windows for every row
   with coarse tokens left;
3. finishing: the rows whose coarse codes are complete, first segments first, then by priority and arrival; while a
   job's first segment is still generating, nothing else finishes. Rows finish in fine-stage batches of rows whose
   passes read the same number of frames (in the library's window, all of them), at most `limit` to a batch.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from synthesis.engines import SynthesisOptions
    from synthesis.engines.bark.spec import Row
    from synthesis.engines.bark.stages import BarkTokens, Sampling
    from synthesis.engines.bark.windows import CoarseRow

# What a stream hands back per segment: its tokens, its audio and the segments admitted with it; or an exception.
Result = tuple["BarkTokens", np.ndarray, tuple[int, ...]]


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
    full_window: bool = True  # the fine stage in the library's 1024-frame window (BARK_FINE_WINDOW=full)
    order: int = 0  # arrival, set by the scheduler
    next_to_admit: int = 0
    delivered: int = 0
    carry: dict[str, np.ndarray] | None = None
    carry_from: int | None = None  # the segment whose tokens become the carried voice
    cancelled: bool = False
    results: queue.Queue[Result | Exception] = field(default_factory=queue.Queue)
    finished: dict[int, Result] = field(default_factory=dict)

    @staticmethod
    def build(
        text_ids: list[np.ndarray],
        voices: list[str | None],
        prompts: dict[str | None, dict[str, np.ndarray] | None],
        options: SynthesisOptions,
        full_window: bool,
    ) -> Stream:
        """A job's stream: each segment's text ids, its voice's prompt (None: carried) and `options`' sampling, with
        segment i seeded `seed + i`."""
        from synthesis.engines.bark.stages import Sampling

        sampling = Sampling(options.text_temp, options.waveform_temp)
        segments = [
            Segment(index, text_ids[index], prompts[voice], voice is None, sampling,
                    None if options.seed is None else options.seed + index)
            for index, voice in enumerate(voices)
        ]  # fmt: skip
        return Stream(segments, voices, priority=options.priority, full_window=full_window)

    def source(self, index: int) -> str:
        """Whose voice segment `index` speaks with: its voice id, "segment N" (a carried voice) or "none"."""
        voice = self.voices[index]
        if voice is None and self.carry_from is not None and self.carry_from != index:
            return f"segment {self.carry_from}"
        return voice or "none"

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(eq=False)
class InFlight:
    """A segment admitted and not yet delivered, through its stages: semantic (`window` None), coarse (`window`'s
    tokens not all generated), then fine (`fine` once its fine-stage batch has started)."""

    stream: Stream
    segment: Segment
    batch: tuple[int, ...]  # indices of this stream's segments admitted together (for SegmentRun)
    spec: Row | None = None  # once admitted
    window: CoarseRow | None = None  # once its semantic tokens exist
    semantic: np.ndarray | None = None
    fine: FineBatch | None = None  # its fine stage, once started

    @property
    def first(self) -> bool:
        """Whether this is its job's first segment, still undelivered (first audio goes before throughput)."""
        return self.stream.delivered == 0

    @property
    def coarse_left(self) -> bool:
        """Whether it is through the semantic stage and still has coarse tokens to generate."""
        return self.window is not None and self.window.generated < self.window.length

    @property
    def coarse_done(self) -> bool:
        return self.window is not None and self.window.generated >= self.window.length

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
            if rng is not None and self.window.generator is not None:
                self.window.generator.set_state(rng)


@dataclass(eq=False)
class OpenWindow:
    """A semantic batch or coarse window in progress: its rows, the pausing computation (decode's *_steps) and each
    row's state before it (to roll back if it runs out of memory)."""

    rows: list[InFlight]
    steps: Iterator[None]
    saved: list[tuple[int, Any]]


@dataclass(eq=False)
class FineBatch:
    """Rows sharing fine-stage passes: the pausing computation (BarkStages.fine_steps) and each row's state before."""

    rows: list[InFlight]
    steps: Generator[None, None, list[np.ndarray]]
    saved: list[tuple[int, Any]]


# --- 1. admission ---------------------------------------------------------------------------------------------


def admissible(stream: Stream, taken: int = 0, carrying: bool = False) -> bool:
    """Whether the stream's next segment may be admitted, `taken` more of its segments having been admitted in this
    decision (and `carrying`: one of those was the voiceless segment whose tokens become the carried voice)."""
    next_index = stream.next_to_admit + taken
    if next_index >= len(stream.segments):
        return False
    if stream.delivered == 0 and next_index - stream.delivered > 0:
        return False  # the first segment runs alone: first audio after one segment
    segment = stream.segments[next_index]
    # A voiceless segment waits for the carried voice, unless it is the first (its tokens become that voice).
    carry_pending = stream.carry_from is not None or carrying
    return not (segment.uses_carry and stream.carry is None and carry_pending)


def admit(streams: list[Stream], in_flight: int, max_rows: int) -> list[Stream]:
    """The streams whose next segments are admitted now, one entry per row, in the order they are taken: every new
    stream's first segment (even past `max_rows`), then one row per stream per pass, most urgent first, while fewer
    than `max_rows` rows are in flight (`in_flight` before this decision)."""
    taken: dict[int, int] = {}
    carrying: set[int] = set()
    admitted: list[Stream] = []

    def can_take(stream: Stream) -> bool:
        return admissible(stream, taken.get(id(stream), 0), id(stream) in carrying)

    def take(stream: Stream) -> None:
        segment = stream.segments[stream.next_to_admit + taken.get(id(stream), 0)]
        if segment.uses_carry and stream.carry is None:
            carrying.add(id(stream))
        taken[id(stream)] = taken.get(id(stream), 0) + 1
        admitted.append(stream)

    ordered = sorted(streams, key=lambda s: (-s.priority, s.order))
    for stream in ordered:
        if stream.next_to_admit == 0 and can_take(stream):
            take(stream)
    while in_flight + len(admitted) < max_rows:
        added = False
        for stream in ordered:
            if in_flight + len(admitted) >= max_rows or not can_take(stream):
                continue
            take(stream)
            added = True
        if not added:
            break
    return admitted


def has_work(streams: list[Stream], rows: list[InFlight]) -> bool:
    return bool(rows) or any(admissible(stream) for stream in streams)


def new_job_waiting(streams: list[Stream]) -> bool:
    """Whether a job that has not started yet can be admitted: running work pauses for it at its next unit."""
    return any(stream.next_to_admit == 0 and admissible(stream) for stream in streams)


# --- 2. the next unit -----------------------------------------------------------------------------------------

Unit = Literal["firsts", "advance", "open", "idle"]


def needs_semantic(rows: list[InFlight], windows: list[OpenWindow]) -> list[InFlight]:
    """Rows admitted (or rolled back) whose semantic stage has neither run nor been opened as a window."""
    in_windows = {id(row) for window in windows for row in window.rows}
    return [row for row in rows if row.window is None and id(row) not in in_windows]


def next_unit(rows: list[InFlight], windows: list[OpenWindow]) -> tuple[Unit, list[InFlight]]:
    """What runs next, and on which rows: "firsts" (the next coarse window of these first segments, at once),
    "advance" (one unit of the oldest open window), "open" (new coarse windows for these rows) or "idle"."""
    in_windows = {id(row) for window in windows for row in window.rows}
    waiting = [row for row in rows if row.coarse_left and id(row) not in in_windows]
    # First audio before throughput: while some job waits for its first segment, only those rows run, and the open
    # windows wait. On a CPU a window's cost grows with its rows (the prefill is compute-bound), so a late job's first
    # segment would otherwise take as long as the whole batch it joined.
    firsts = [row for row in waiting if row.first]
    if firsts:
        return "firsts", firsts
    if windows:
        return "advance", windows[0].rows
    if waiting:
        return "open", waiting
    return "idle", []


# --- 3. finishing ---------------------------------------------------------------------------------------------


def finishing(rows: list[InFlight]) -> list[InFlight]:
    """The rows to finish now, in order: those whose coarse codes are complete, first segments first, then by
    priority and arrival; none but first segments while a job's first segment is still generating."""
    done = sorted(
        (row for row in rows if row.coarse_done),
        key=lambda row: (not row.first, -row.stream.priority, row.stream.order),
    )
    firsts_running = any(row.first and not row.coarse_done for row in rows)
    return [row for row in done if row.first] if firsts_running else done


def fine_batches(rows: list[InFlight], limit: int, length: Callable[[InFlight], int | None]) -> list[list[InFlight]]:
    """`rows` (in finishing order) grouped into fine-stage batches, in that order: a row whose batch has started stays
    in it; the others join the batch of the rows before them whose passes read as many frames (`length`; None runs
    alone), up to `limit` rows."""
    batches: list[list[InFlight]] = []
    started: dict[int, list[InFlight]] = {}
    open_batch: dict[int, list[InFlight]] = {}  # frames read -> the newest batch of that length not yet full
    for row in rows:
        if row.fine is not None:
            if id(row.fine) not in started:
                started[id(row.fine)] = []
                batches.append(started[id(row.fine)])
            started[id(row.fine)].append(row)
            continue
        frames = length(row)
        batch = open_batch.get(frames) if frames is not None else None
        if batch is None or len(batch) >= limit:
            batch = []
            batches.append(batch)
            if frames is not None:
                open_batch[frames] = batch
        batch.append(row)
    return batches
