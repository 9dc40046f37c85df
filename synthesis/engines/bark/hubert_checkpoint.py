"""Random-weight HuBERT cloning models built offline, for tests (`tiny`) and for timing (`base`).

They are written in the formats the published models come in, so they load through the same code: HuBERT as
`HubertModel.save_pretrained` writes it (config.json and model.safetensors, like facebook/hubert-base-ls960's
directory), the quantizer as the published `.pth` (quantizer.py). `base` has the published sizes (HuBERT base: 12
layers of 768; the quantizer: an LSTM of 1024, with a 4096-wide intermediate layer in version 1); `tiny` keeps
HuBERT's convolutions (so its 50 frames a second) and 12 layers, but 32 wide. Random weights read noise from the
audio: the tokens are in range and follow the clip's length, and mean nothing.
"""

from __future__ import annotations

from pathlib import Path

ARCHES = ("tiny", "base")
MODEL_DIR = "hubert"
QUANTIZER_FILE = "quantizer.pth"


def build_hubert_checkpoint(directory: Path, arch: str = "tiny", seed: int = 0, version: int = 0) -> tuple[Path, Path]:
    """Write `directory`/hubert/ and `directory`/quantizer.pth; return the two paths (BARK_HUBERT_MODEL and
    BARK_HUBERT_QUANTIZER). The same arguments give the same weights."""
    import torch
    from transformers import HubertConfig, HubertModel

    from synthesis.engines.bark.quantizer import Quantizer, save_quantizer

    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; one of {', '.join(ARCHES)}")
    if version not in (0, 1):
        raise ValueError(f"the quantizer has versions 0 and 1, not {version}")
    torch.manual_seed(seed)
    if arch == "base":
        config, hidden, intermediate = HubertConfig(), 1024, 4096  # HubertConfig's defaults are HuBERT base's sizes
    else:
        config = HubertConfig(
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(16,) * 7,  # kernels and strides stay HuBERT's: a 320-sample hop at 16 kHz
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
        )
        hidden, intermediate = 16, 32
    directory.mkdir(parents=True, exist_ok=True)
    model_dir, quantizer_file = directory / MODEL_DIR, directory / QUANTIZER_FILE
    HubertModel(config).save_pretrained(model_dir)
    quantizer = Quantizer(config.hidden_size, hidden, intermediate_size=intermediate if version == 1 else None)
    save_quantizer(quantizer, quantizer_file)
    return model_dir, quantizer_file
