import os

import pytest

from synthesis.jobs.artifacts import UnsafeOutputPath, safe_prefix, store_artifact
from synthesis.models import Job


@pytest.mark.parametrize(
    ("requested", "prefix"),
    [(None, "audio"), ("", "audio"), ("greeting", "greeting"), ("book/ch1", "book/ch1"), ("take.wav", "take")],
)
def test_a_safe_output_path_becomes_the_artifact_prefix(requested, prefix):
    assert safe_prefix(requested) == prefix


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        ("../etc/passwd", "may not contain '..'"),
        ("a/../../b", "may not contain '..'"),
        ("/tmp/x", "must be relative"),
        ("C:\\x", "must be relative"),
        ("bad\x00name", "NUL byte"),
        ("sp ace", "letters, digits"),
        ("a/b/c/d/e", "up to 4 parts"),
    ],
)
def test_an_unsafe_output_path_is_refused_with_the_reason(requested, reason):
    with pytest.raises(UnsafeOutputPath, match=reason):
        safe_prefix(requested)


def test_an_artifact_is_written_whole_and_leaves_no_temporary_file(db, isolated_storage):
    job = Job.objects.create(prompt="Hi.", engine="piper", output_prefix="greeting")

    size = store_artifact(job, "audio", "wav", lambda path: path.write_bytes(b"RIFF" + b"\0" * 40))

    directory = isolated_storage / "jobs" / str(job.id)
    assert os.listdir(directory) == ["greeting.wav"]
    assert job.audio.name == f"jobs/{job.id}/greeting.wav" and size == 44


def test_a_failed_write_leaves_nothing_behind(db, isolated_storage):
    job = Job.objects.create(prompt="Hi.", engine="piper")

    def crash(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store_artifact(job, "audio", "wav", crash)

    assert os.listdir(isolated_storage / "jobs" / str(job.id)) == []
    assert not job.audio


def test_a_symlink_planted_in_the_output_root_cannot_carry_a_write_outside(db, isolated_storage, tmp_path):
    job = Job.objects.create(prompt="Hi.", engine="piper")
    outside = tmp_path / "outside"
    outside.mkdir()
    (isolated_storage / "jobs").mkdir(parents=True)
    (isolated_storage / "jobs" / str(job.id)).symlink_to(outside)

    with pytest.raises(UnsafeOutputPath, match="outside BARK_OUTPUT_ROOT"):
        store_artifact(job, "audio", "wav", lambda path: path.write_bytes(b"x"))

    assert list(outside.iterdir()) == []
