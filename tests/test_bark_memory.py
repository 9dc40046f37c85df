"""What a loaded model hands back: the checkpoint file's pages of weights it converted or packed, and only those."""

import shutil
from pathlib import Path

import pytest
import torch

from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.memory import file_mappings, release_dead_weights, tensor_spans

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")

FLOATS = 4 * 1024 * 1024  # 16 MB of float32


def resident_kb(path: Path) -> int:
    """How much of `path`'s mappings in this process is resident (/proc/self/smaps), in KiB."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and all(char in "0123456789abcdef-" for char in head):  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.fixture
def weight_file(tmp_path):
    path = tmp_path / "weights.bin"
    torch.randn(FLOATS).numpy().tofile(path)
    return path


def module_with_weight_from(path: Path) -> torch.nn.Module:
    """A module whose weight is pages of `path` (a private mapping, as a memory-mapped checkpoint is), all read."""
    module = torch.nn.Module()
    module.weight = torch.nn.Parameter(torch.from_file(str(path), size=FLOATS), requires_grad=False)
    module.weight.sum()
    return module


def test_the_file_pages_of_a_weight_replaced_by_a_copy_are_dropped_and_its_values_kept(weight_file):
    module = module_with_weight_from(weight_file)
    old_weight = module.weight
    expected = old_weight.clone()
    loaded = tensor_spans([module])
    assert resident_kb(weight_file) == FLOATS * 4 // 1024

    module.weight = torch.nn.Parameter(old_weight.to(torch.bfloat16), requires_grad=False)
    release_dead_weights(loaded, [module])

    assert resident_kb(weight_file) == 0
    assert torch.equal(old_weight, expected)  # read back from the file: the memory was dropped, never changed


def test_the_file_pages_of_a_weight_the_model_still_uses_stay(weight_file):
    module = module_with_weight_from(weight_file)
    loaded = tensor_spans([module])

    release_dead_weights(loaded, [module])

    assert resident_kb(weight_file) == FLOATS * 4 // 1024


def test_weights_in_the_processs_own_memory_are_not_in_any_file_mapping():
    weight = torch.randn(FLOATS)
    start = weight.data_ptr()

    assert not any(low <= start < high for low, high in file_mappings())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_loaded_engine_keeps_no_more_of_its_checkpoint_resident_than_the_weights_it_still_reads(
    tiny_bark_dir, tmp_path, dtype
):
    own_copy = shutil.copytree(tiny_bark_dir, tmp_path / "bark")  # mapped by this engine alone
    engine = BarkEngine(model=str(own_copy), device="cpu", mode="auto", dtype=dtype)
    engine.load()
    checkpoint = own_copy / "model.safetensors"

    model = engine.stages.model
    still_read = sum(
        tensor.untyped_storage().nbytes()
        for tensor in (*model.parameters(), *model.buffers())
        if any(low <= tensor.data_ptr() < high for low, high in file_mappings())
    )
    assert resident_kb(checkpoint) * 1024 <= still_read + 64 * 4096  # a page either side of each live tensor, at most
