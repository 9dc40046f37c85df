"""The random-weight Bark checkpoints (`synthesis.engines.bark.checkpoint`) and `manage.py build_bark_checkpoint`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from transformers import BarkModel, BarkProcessor

from synthesis.engines.bark.checkpoint import MAX_TEXT_VOCAB, TINY_SEMANTIC_TOKENS, build_bark_checkpoint

# Bark's coarse rate (75 Hz) over its semantic rate (49.9 Hz), 320 samples per EnCodec frame.
TINY_SAMPLES = int(np.floor(TINY_SEMANTIC_TOKENS * 75 / 49.9)) * 320


@pytest.fixture(scope="module")
def tiny_model(tiny_bark_dir: Path) -> tuple[BarkModel, BarkProcessor]:
    return BarkModel.from_pretrained(tiny_bark_dir).eval(), BarkProcessor.from_pretrained(tiny_bark_dir)


def test_tiny_checkpoint_loads_with_from_pretrained_and_speaks_24khz(tiny_model):
    model, processor = tiny_model
    inputs = processor("Hello, my dog is cute.", voice_preset="v2/en_speaker_6")

    torch.manual_seed(0)
    audio, lengths = model.generate(**inputs, do_sample=True, return_output_lengths=True)

    assert model.generation_config.sample_rate == 24_000
    assert model.config.codec_config.sampling_rate == 24_000
    assert lengths == [TINY_SAMPLES] and audio.shape == (1, TINY_SAMPLES)
    assert audio.dtype == torch.float32 and audio.std() > 0.01


def test_tiny_checkpoint_keeps_barks_token_conventions(tiny_model):
    model, _ = tiny_model
    config, generation = model.config, model.generation_config

    assert (config.semantic_config.input_vocab_size, config.semantic_config.output_vocab_size) == (129_600, 10_048)
    assert (config.coarse_acoustics_config.input_vocab_size, config.coarse_acoustics_config.output_vocab_size) == (
        12_096,
        12_096,
    )
    assert (config.fine_acoustics_config.input_vocab_size, config.fine_acoustics_config.n_codes_total) == (1_056, 8)
    assert config.codec_config.codebook_size == generation.codebook_size == 1_024
    assert config.codec_config.hop_length == 320
    semantic = generation.semantic_config
    assert (semantic["text_encoding_offset"], semantic["text_pad_token"], semantic["semantic_infer_token"]) == (
        10_048,
        129_595,
        129_599,
    )
    assert semantic["min_new_tokens"] == semantic["max_new_tokens"] == TINY_SEMANTIC_TOKENS
    coarse = generation.coarse_acoustics_config
    assert (coarse["coarse_semantic_pad_token"], coarse["coarse_infer_token"]) == (12_048, 12_050)


def test_tiny_tokenizer_is_cased_wordpiece_within_barks_text_range_and_knows_other_scripts(tiny_model):
    tokenizer = tiny_model[1].tokenizer

    ids = tokenizer("Hello world. Grüße, привет, नमस्ते, 你好, こんにちは, 안녕", add_special_tokens=False)["input_ids"]

    assert tokenizer.unk_token_id not in ids
    assert tokenizer.tokenize("Hello hello") == ["Hello", "hello"]
    assert len(tokenizer) < MAX_TEXT_VOCAB and max(ids) < MAX_TEXT_VOCAB
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id) == (0, 100, 101)


def test_tiny_checkpoint_ships_barks_130_v2_presets_with_realistic_shapes(tiny_bark_dir, tiny_model):
    processor = tiny_model[1]
    presets = processor.available_voice_presets

    assert len(presets) == 130 and "v2/en_speaker_6" in presets and "v2/zh_speaker_9" in presets
    preset = {
        key: tensor.numpy() for key, tensor in processor("Hi", voice_preset="v2/ja_speaker_3")["history_prompt"].items()
    }
    semantic, coarse, fine = preset["semantic_prompt"], preset["coarse_prompt"], preset["fine_prompt"]
    assert semantic.ndim == 1 and semantic.min() >= 0 and semantic.max() < 10_000
    assert coarse.shape == (2, int(np.floor(len(semantic) * 75 / 49.9))) and fine.shape == (8, coarse.shape[1])
    assert fine.max() < 1_024 and np.array_equal(fine[:2], coarse)
    index = json.loads((tiny_bark_dir / "speaker_embeddings_path.json").read_text())
    assert index["v2/en_speaker_6"]["fine_prompt"] == "speaker_embeddings/v2/en_speaker_6_fine_prompt.npy"


def test_the_same_seed_builds_byte_identical_files_and_another_seed_does_not(tmp_path, tiny_bark_dir):
    again = build_bark_checkpoint(tmp_path / "again", arch="tiny", seed=0)
    other = build_bark_checkpoint(tmp_path / "other", arch="tiny", seed=1)

    files = sorted(p.relative_to(tiny_bark_dir) for p in tiny_bark_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((tiny_bark_dir / f).read_bytes() == (again / f).read_bytes() for f in files)
    weights = Path("model.safetensors")
    assert (tiny_bark_dir / weights).read_bytes() != (other / weights).read_bytes()


def test_build_command_writes_a_loadable_checkpoint_and_reports_parameters_and_size(tmp_path, capsys):
    target = tmp_path / "tiny"

    call_command("build_bark_checkpoint", str(target), "--arch", "tiny", "--seed", "3")

    out = capsys.readouterr().out
    assert "model.safetensors" in out and "parameters" in out and "MB on disk" in out
    assert f"BARK_MODEL={target.resolve()}" in out
    assert BarkProcessor.from_pretrained(target).available_voice_presets


def test_build_command_refuses_a_non_empty_directory_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(CommandError, match="is not empty; .* pass --force"):
        call_command("build_bark_checkpoint", str(tmp_path))
    assert not (tmp_path / "config.json").exists()

    call_command("build_bark_checkpoint", str(tmp_path), "--force")
    assert (tmp_path / "config.json").exists() and (tmp_path / "notes.txt").read_text() == "keep me"


def test_build_command_rejects_an_unknown_arch_and_a_file_as_directory(tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'bark-large'"):
        call_command("build_bark_checkpoint", str(tmp_path / "x"), "--arch", "bark-large")
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("build_bark_checkpoint", str(tmp_path / "file"))
