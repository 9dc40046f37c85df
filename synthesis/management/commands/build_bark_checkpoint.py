"""`manage.py build_bark_checkpoint DIR --arch tiny`: a random-weight Bark checkpoint, built offline.

`tiny` is for tests and trying the service without downloads (it speaks noise, fast); `bark-small` has
suno/bark-small's exact architecture (1.7 GB) for benchmarks. Point BARK_MODEL at DIR to use one.
"""

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from synthesis.engines.bark.checkpoint import ARCHES, build_bark_checkpoint, parameter_count


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


class Command(BaseCommand):
    help = "Write a random-weight Bark checkpoint (model, tokenizer, v2 voice presets) into DIR."
    # It touches neither the database nor the site, so it runs even where the site is not set up yet.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="Where to write it (created if missing; must be empty).")
        parser.add_argument("--arch", choices=ARCHES, default="tiny", help="tiny (tests) or bark-small (benchmarks).")
        parser.add_argument("--seed", type=int, default=0, help="The same seed gives byte-identical weights.")
        parser.add_argument("--force", action="store_true", help="Write into a non-empty directory.")

    def handle(self, *args, **options) -> None:
        directory: Path = options["directory"].expanduser()
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory.")
        if directory.is_dir() and any(directory.iterdir()) and not options["force"]:
            raise CommandError(f"{directory} is not empty; choose an empty directory or pass --force to write into it.")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # A probe file, because permission bits do not tell the whole story (root, read-only mounts).
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            raise CommandError(f"Cannot write to {directory}: {exc.strerror or exc}") from None

        arch, seed = options["arch"], options["seed"]
        self.stdout.write(f"Building a random-weight {arch} Bark checkpoint (seed {seed}) in {directory} ...")
        build_bark_checkpoint(directory, arch=arch, seed=seed)
        for entry in sorted(directory.iterdir()):
            name = f"{entry.name}/" if entry.is_dir() else entry.name
            self.stdout.write(f"  {name:<32} {_human(_size(entry)):>10}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {directory}: {parameter_count(directory):,} parameters, {_human(_size(directory))} on disk. "
                f"Use it with BARK_MODEL={directory.resolve()}"
            )
        )
