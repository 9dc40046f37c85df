"""The Bark scheduler's policy on states built by hand, with no model and no torch: which rows are admitted, which unit
runs next, which rows finish and which share a fine-stage pass (torch is never imported here)."""

import numpy as np

from synthesis.engines.bark import policy
from synthesis.engines.bark.policy import InFlight, OpenWindow, Segment, Stream
from synthesis.engines.bark.stages import Sampling
from synthesis.engines.bark.windows import CoarseRow


def stream(segments: int, *, priority: int = 0, order: int = 0, voiceless: bool = False, delivered: int = 0) -> Stream:
    """A stream of `segments` segments (without a voice of their own when `voiceless`), `delivered` of them done."""
    made = Stream(
        segments=[
            Segment(index, np.zeros(256, dtype=np.int64), None, voiceless, Sampling(0.0, 0.0), None)
            for index in range(segments)
        ],
        voices=[None] * segments,
        priority=priority,
        order=order,
    )
    made.next_to_admit = made.delivered = delivered
    return made


def row(owner: Stream, *, coarse: tuple[int, int] | None = None) -> InFlight:
    """Its stream's next segment in flight: in the semantic stage, or with (generated, length) coarse tokens."""
    made = InFlight(owner, owner.segments[owner.next_to_admit], ())
    owner.next_to_admit += 1
    if coarse is not None:
        generated, length = coarse
        made.window = CoarseRow(np.zeros(0, dtype=np.int64), [0] * generated, 0, 0, length, 0.0, None)
    return made


def window(rows: list[InFlight]) -> OpenWindow:
    return OpenWindow(rows, iter(()), [])


def test_every_new_jobs_first_segment_is_admitted_at_once_even_past_the_batch_size():
    running, new_ones = stream(5, delivered=1), [stream(3, order=index + 1) for index in range(3)]
    in_flight = [row(running) for _ in range(2)]

    admitted = policy.admit([running, *new_ones], in_flight=len(in_flight), max_rows=2)

    assert admitted == new_ones  # one row each, nothing more: the running job's batch is already full


def test_rows_go_one_per_stream_per_pass_most_urgent_first_up_to_the_batch_size():
    low, high, late = stream(4, order=0, delivered=1), stream(4, priority=5, order=1, delivered=1), stream(4, order=2)

    admitted = policy.admit([low, high, late], in_flight=0, max_rows=6)

    assert admitted == [late, high, low, high, low, high]  # the new job's first segment, then by priority and arrival


def test_a_jobs_first_segment_runs_alone_until_it_is_delivered():
    first = stream(4)

    assert policy.admit([first], in_flight=0, max_rows=8) == [first]
    assert not policy.admissible(first, taken=1)
    first.next_to_admit, first.delivered = 1, 1
    assert policy.admit([first], in_flight=0, max_rows=8) == [first, first, first]


def test_a_voiceless_segment_waits_for_the_carried_voice_unless_its_tokens_become_that_voice():
    voiceless = stream(3, voiceless=True)

    assert policy.admit([voiceless], in_flight=0, max_rows=8) == [voiceless]  # its tokens carry on
    voiceless.next_to_admit, voiceless.delivered, voiceless.carry_from = 1, 1, 0
    assert policy.admit([voiceless], in_flight=0, max_rows=8) == []  # the carried voice is not there yet
    voiceless.carry = {"semantic_prompt": np.zeros(4, dtype=np.int64)}
    assert policy.admit([voiceless], in_flight=0, max_rows=8) == [voiceless, voiceless]


def test_a_new_job_waiting_is_one_that_has_not_started_and_can_be_admitted():
    started, done = stream(2, delivered=1), stream(1, delivered=1)

    assert not policy.new_job_waiting([started, done])
    assert policy.new_job_waiting([started, stream(2)])
    assert not policy.has_work([done], [])


def test_a_first_segment_with_coarse_tokens_left_runs_before_every_open_window():
    others, newcomer = stream(3, delivered=1), stream(1, order=1)
    open_rows = [row(others, coarse=(60, 180)), row(others, coarse=(60, 180))]
    first = row(newcomer, coarse=(0, 90))

    assert policy.next_unit([*open_rows, first], [window(open_rows)]) == ("firsts", [first])


def test_without_first_segments_the_oldest_open_window_advances_then_new_windows_open():
    job = stream(4, delivered=1)
    rows = [row(job, coarse=(60, 180)), row(job, coarse=(120, 180)), row(job, coarse=(180, 180))]
    older, newer = window(rows[:1]), window(rows[1:2])

    assert policy.next_unit(rows, [older, newer]) == ("advance", rows[:1])
    assert policy.next_unit(rows, []) == ("open", rows[:2])  # the third is through its coarse stage
    assert policy.next_unit(rows[2:], []) == ("idle", [])


def test_rows_admitted_without_a_semantic_window_are_the_ones_that_need_one():
    job = stream(4, delivered=1)
    waiting, opened, through = row(job), row(job), row(job, coarse=(0, 90))

    assert policy.needs_semantic([waiting, opened, through], [window([opened])]) == [waiting]


def test_rows_finish_first_segments_first_then_by_priority_and_arrival():
    low, high = stream(3, order=0, delivered=1), stream(3, priority=2, order=1, delivered=1)
    newcomer = stream(1, order=2)
    rows = [row(low, coarse=(90, 90)), row(high, coarse=(90, 90)), row(newcomer, coarse=(90, 90))]

    assert policy.finishing(rows) == [rows[2], rows[1], rows[0]]


def test_while_a_jobs_first_segment_is_generating_only_first_segments_finish():
    running, newcomer, other_new = stream(3, delivered=1), stream(1, order=1), stream(1, order=2)
    done, first_done = row(running, coarse=(90, 90)), row(other_new, coarse=(90, 90))
    generating = row(newcomer)  # still in its semantic stage

    assert policy.finishing([done, generating, first_done]) == [first_done]
    assert policy.finishing([done]) == [done]


def test_rows_share_a_fine_pass_when_their_passes_read_as_many_frames_up_to_the_limit():
    job = stream(6, delivered=1)
    rows = [row(job, coarse=(90, 90)) for _ in range(5)]
    lengths = dict(zip(map(id, rows), [1024, 1024, 600, 1024, None], strict=True))

    batches = policy.fine_batches(rows, limit=2, length=lambda r: lengths[id(r)])

    assert batches == [[rows[0], rows[1]], [rows[2]], [rows[3]], [rows[4]]]
    assert policy.fine_batches(rows, limit=1, length=lambda r: 1024) == [[r] for r in rows]


def test_a_row_whose_fine_pass_has_started_stays_in_its_batch():
    job = stream(4, delivered=1)
    rows = [row(job, coarse=(90, 90)) for _ in range(3)]
    started = policy.FineBatch(rows[1:], iter(()), [])
    for member in rows[1:]:
        member.fine = started

    assert policy.fine_batches(rows, limit=8, length=lambda r: 1024) == [[rows[0]], rows[1:]]


def test_the_policy_and_the_state_it_reads_import_without_torch():
    import subprocess
    import sys

    code = "import sys, synthesis.engines.bark.policy, synthesis.engines.bark.stages; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)

    assert result.stdout.strip() == "False"
