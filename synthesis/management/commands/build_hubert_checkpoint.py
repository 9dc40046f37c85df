"""`manage.py build_hubert_checkpoint DIR --arch tiny`: random-weight models for cloning voices from the audio.

It writes DIR/hubert/ (a HuBERT model directory) and DIR/quantizer.pth (a quantizer in the published format), to
point BARK_HUBERT_MODEL and BARK_HUBERT_QUANTIZER at: `tiny` for tests and trying the `hubert` cloning method without
downloads, `base` with the published models' sizes for timing it. Random weights: the voices they clone are noise.
"""

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from synthesis.engines.bark.hubert_checkpoint import ARCHES, MODEL_DIR, QUANTIZER_FILE, build_hubert_checkpoint


class Command(BaseCommand):
    help = "Write random-weight HuBERT and quantizer checkpoints (for the hubert cloning method) into DIR."
    requires_system_checks: list[str] = []  # touches neither the database nor the site

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="Where to write them (created if missing).")
        parser.add_argument("--arch", choices=ARCHES, default="tiny", help="tiny (tests) or base (published sizes).")
        parser.add_argument("--quantizer-version", type=int, choices=(0, 1), default=0, help="The quantizer's version.")
        parser.add_argument("--seed", type=int, default=0, help="The same seed gives the same weights.")
        parser.add_argument(
            "--force", action="store_true", help=f"Replace an existing {MODEL_DIR}/ and {QUANTIZER_FILE}."
        )

    def handle(self, *args, **options) -> None:
        directory: Path = options["directory"].expanduser()
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory.")
        if any((directory / name).exists() for name in (MODEL_DIR, QUANTIZER_FILE)) and not options["force"]:
            raise CommandError(f"{directory} already holds {MODEL_DIR}/ or {QUANTIZER_FILE}; pass --force to replace.")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):  # permission bits do not tell the whole story
                pass
        except OSError as exc:
            raise CommandError(f"Cannot write to {directory}: {exc.strerror or exc}") from None
        arch, version = options["arch"], options["quantizer_version"]
        model, quantizer = build_hubert_checkpoint(directory, arch=arch, seed=options["seed"], version=version)
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote a random-weight {arch} HuBERT and a version {version} quantizer. "
                f"Use them with BARK_HUBERT_MODEL={model.resolve()} BARK_HUBERT_QUANTIZER={quantizer.resolve()}"
            )
        )
