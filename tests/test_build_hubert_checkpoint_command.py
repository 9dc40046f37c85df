"""`manage.py build_hubert_checkpoint DIR`: random-weight HuBERT and quantizer files that clone voices as given."""

import subprocess
import sys
from pathlib import Path

from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.quantizer import load_quantizer
from tests.processes import ROOT


def build(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "build_hubert_checkpoint", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_it_writes_a_model_directory_and_a_quantizer_that_the_hubert_method_uses(tmp_path, tiny_bark_dir):
    result = build(str(tmp_path / "models"), "--quantizer-version", "1")

    model, quantizer = tmp_path / "models" / "hubert", tmp_path / "models" / "quantizer.pth"
    assert result.returncode == 0, result.stderr
    assert f"BARK_HUBERT_MODEL={model} BARK_HUBERT_QUANTIZER={quantizer}" in result.stdout
    assert {path.name for path in model.iterdir()} == {"config.json", "model.safetensors"}
    assert load_quantizer(quantizer).version == 1
    engine = BarkEngine(str(tiny_bark_dir), "cpu", "auto", hubert=(str(model), str(quantizer)))
    assert engine.cloning_method().name == "hubert"


def test_it_refuses_to_overwrite_models_without_force(tmp_path: Path):
    (tmp_path / "quantizer.pth").write_bytes(b"mine")

    result = build(str(tmp_path))

    assert result.returncode != 0
    assert f"{tmp_path} already holds hubert/ or quantizer.pth; pass --force to replace." in result.stderr
    assert (tmp_path / "quantizer.pth").read_bytes() == b"mine"
