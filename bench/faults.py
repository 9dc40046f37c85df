"""Outages of the shared services while 4 jobs run and 4 wait: for each, jobs lost, jobs run to completion twice, and
seconds from the end of the outage to the first job completed after it (and to the last).

    .venv/bin/python bench/faults.py                      # every outage, 30 s each (short S3 outage: 3 s)
    .venv/bin/python bench/faults.py --only redis --outage-s 10

Each outage runs gunicorn and `manage.py runworkers` (Piper, BARK_MAX_CONCURRENCY=4, BARK_HEARTBEAT_S=2) with its own
PostgreSQL, Redis and S3 server on loopback ports (tests/outages.py, which tests/test_outages.py asserts on): the
PostgreSQL server stopped and started, the SQLite file locked by another writer, the Redis server (broker and cache)
stopped and started empty, the S3 endpoint refusing connections (for less than the retries' backoff, then until
the retries of a job ran out), the output disk full (a tmpfs, given room again once it failed a job; needs root to
mount). Jobs that failed are retried as an operator would (the admin's Retry), and counted in `failed`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.outages import KINDS, run_outage, tmpfs_refused  # noqa: E402

SHORT_S3_OUTAGE_S = 3.0  # within BARK_RETRY_ATTEMPTS' backoff (about 1 + 2 + 4 s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=KINDS, action="append", help="run only these outages (repeatable)")
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long each outage lasts (default 30)")
    parser.add_argument("--sentences", type=int, default=16, help="sentences per job (about 4 s of speech each)")
    args = parser.parse_args()
    print(describe())
    print(
        f"outage {args.outage_s:.0f} s (short S3 outage {SHORT_S3_OUTAGE_S:.0f} s), "
        f"8 jobs of {args.sentences} sentences"
    )
    header = f"{'outage':<12} {'lost':>4} {'twice':>5} {'failed':>6} {'health during/after':>19} {'submit during':>14}"
    print(f"{header} {'first done after':>16} {'all done after':>14}")
    for kind in args.only or KINDS:
        if kind == "disk-full" and (why := tmpfs_refused()):
            print(f"{kind:<12} skipped: {why}")
            continue
        work = Path(tempfile.mkdtemp(prefix=f"bark-faults-{kind}-"))
        outage_s = SHORT_S3_OUTAGE_S if kind == "s3-short" else args.outage_s
        outcome = run_outage(kind, work, outage_s, args.sentences)
        health = f"{'/'.join(map(str, sorted(outcome.health_during))) or '-'}/{outcome.health_after}"
        submitted = ",".join(str(status) for status, _, _ in outcome.submissions_during) or "-"
        first, last = outcome.first_completion_after_s, outcome.all_completed_after_s
        print(
            f"{kind:<12} {len(outcome.lost):>4} {len(outcome.twice):>5} {len(outcome.failed):>6} {health:>19} "
            f"{submitted:>14} {_s(first):>16} {_s(last):>14}",
            flush=True,
        )
        if outcome.lost or outcome.twice or outcome.processes_restarted:
            print(f"  logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


if __name__ == "__main__":
    main()
