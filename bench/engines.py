"""Time and peak memory of one `manage.py synthesize` per engine, each in a fresh process (imports and
model loading included, as a user sees it), plus the synthesis alone inside one warm process.

    python bench/engines.py [--bark-small DIR]   # DIR: a `build_bark_checkpoint DIR --arch bark-small`

Prints the machine it ran on. Piper is the plain baseline: the ratios say what Bark costs against it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Hello there. This is a short benchmark sentence, spoken once."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bark-small", type=Path, help="a bark-small-architecture checkpoint directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tiny = scratch / "tiny"
        subprocess.run([sys.executable, "manage.py", "build_bark_checkpoint", str(tiny), "--arch", "tiny"], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        base = {**os.environ, "BARK_SQLITE_PATH": str(scratch / "db.sqlite3"), "BARK_OUTPUT_ROOT": str(scratch / "o")}
        subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, env=base, check=True, capture_output=True)
        runs = [("piper", "piper", base), ("bark (tiny)", "bark", {**base, "BARK_MODEL": str(tiny)})]
        if args.bark_small:
            runs.append(("bark (bark-small shape)", "bark", {**base, "BARK_MODEL": str(args.bark_small)}))
        print(f"machine: {describe()}")
        print(f"text: {TEXT!r} ({len(TEXT)} characters), one process per run, peak RSS is the run's own")
        results = {}
        for label, engine, env in runs:
            # getrusage's peak RSS of children is a high-water mark over all of them, so each run gets a
            # parent process of its own that reports its single child.
            code = (
                "import resource,subprocess,sys,time,json;"
                "t=time.monotonic();subprocess.run(sys.argv[1:],check=True,capture_output=True);"
                "print(json.dumps([time.monotonic()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
            )
            out = scratch / f"{engine}.wav"
            command = [sys.executable, "manage.py", "synthesize", TEXT, "--engine", engine, "--seed", "1",
                       "--out", str(out)]  # fmt: skip
            result = subprocess.run([sys.executable, "-c", code, *command], cwd=ROOT, env=env, check=True,
                                    capture_output=True, text=True)  # fmt: skip
            seconds, peak_kib = json.loads(result.stdout)
            rate, samples = wavfile.read(out)
            results[label] = seconds
            print(
                f"{label:<26} {seconds:6.1f} s wall, peak RSS {peak_kib / 1024**2:5.2f} GiB, "
                f"{len(samples) / rate:5.2f} s of audio at {rate} Hz"
            )
        baseline = results["piper"]
        for label, seconds in results.items():
            print(f"{label:<26} {seconds / baseline:5.1f}x piper's time")


if __name__ == "__main__":
    main()
