"""Random-weight Bark checkpoints built offline, for tests (`tiny`) and benchmarks (`bark-small`).

A checkpoint written here loads with `BarkModel.from_pretrained(dir)` and `BarkProcessor.from_pretrained(dir)`
exactly like a downloaded one: Bark's token conventions and vocabularies, a WordPiece tokenizer and the v2
speaker presets. Its weights are random, so it speaks noise; it exists to exercise the whole pipeline without
the hub. The tokenizer is NOT bert-base-multilingual-cased's vocabulary (that cannot be downloaded here): it is a
generated WordPiece vocabulary that tokenizes any text in the same id range. Real checkpoints ship their own.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthesis.engines.bark.loading import SPEAKER_EMBEDDINGS_JSON
from synthesis.engines.bark.presets import LANGUAGES, SPEAKERS
from synthesis.engines.bark.prompts import CODEBOOK_SIZE, SEMANTIC_RATE_HZ
from synthesis.engines.bark.prompts import FRAME_RATE_HZ as COARSE_RATE_HZ

if TYPE_CHECKING:
    from transformers import BarkConfig, EncodecModel, GenerationConfig

ARCHES = ("tiny", "bark-small")

# Bark's fixed token layout (transformers' BarkSemanticGenerationConfig and BarkCoarseGenerationConfig defaults):
# text ids are offset by 10048 into the semantic input vocabulary, which ends with pad 129595 and infer 129599;
# coarse codes are 10048 + k*1024 for two codebooks, then pad 12048 and infer 12050.
SEMANTIC_INPUT_VOCAB = 129_600
SEMANTIC_OUTPUT_VOCAB = 10_048
COARSE_VOCAB = 12_096
FINE_VOCAB = 1_056
N_FINE_CODEBOOKS = 8
SAMPLE_RATE = 24_000
# bert-base-multilingual-cased has 119547 ids; text ids must stay below it so that 10048 + id < 129595 (pad).
MAX_TEXT_VOCAB = 119_547

# The tiny checkpoint always generates exactly this many semantic tokens, hence
# floor(TINY_SEMANTIC_TOKENS * 75 / 49.9) * 320 samples of audio (48 frames, 15360 samples, 0.64 s).
TINY_SEMANTIC_TOKENS = 32
TINY_PROMPT_SEMANTIC_LENGTH = 16

# Loudness (RMS) of the random codec's audio: clearly audible, far from clipping.
_CODEC_RMS = 0.1

SPEAKER_EMBEDDINGS_DIR = "speaker_embeddings"

# Frequent English words get one token each, so ordinary sentences stay well inside Bark's 256-token text window.
_COMMON_WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this from or had by not
word but what some we can out other were all there when up use your how said an each she which do their time
if will way about many then them write would like so these her long make thing see him two has look more day
could go come did number sound no most people my over know water than call first who may down side been now
find any new work part take get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say help low line differ turn cause
much mean before move right boy old too same tell does set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change went light kind
off need house picture try us again animal point mother world near build self earth father head stand own page
should country found answer school grow study still learn plant cover food sun four between state keep eye
never last let thought city tree cross farm hard start might story saw far sea draw left late run while press
close night real life few north open seem together next white children begin got walk example ease paper group
always music those both mark often letter until mile river car feet care second book carry took science eat
room friend began idea fish mountain stop once base hear horse cut sure watch color face wood main enough
plain girl usual young ready above ever red list though feel talk bird soon body dog family direct pose leave
song measure door product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass since top whole king space heard best hour better true during hundred
five remember step early hold west ground interest reach fast verb sing listen six table travel less morning
ten simple several toward war lay against pattern slow center love person money serve appear road map rain
rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood contain front teach week final gave
green oh quick develop ocean warm free minute strong special mind behind clear tail produce fact street inch
multiply nothing course stay wheel full force blue object decide surface deep moon island foot system busy
test record boat common gold possible plane dry wonder laugh thousand ago ran check game shape yes hot miss
brought heat snow tire bring distant fill east paint language among hello
"""
_COMMON_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "est", "'s", "n't", "'re", "'ll", "'ve", "'m", "'d")


def _char_ranges() -> list[tuple[int, int]]:
    """Inclusive code point ranges of the scripts Bark's v2 presets speak (plus common punctuation)."""
    return [
        (0x00C0, 0x024F),  # Latin-1 letters, Latin Extended-A/B: de es fr it pl pt tr
        (0x0370, 0x03FF),  # Greek
        (0x0400, 0x04FF),  # Cyrillic: ru
        (0x0900, 0x097F),  # Devanagari: hi
        (0x2010, 0x2027),  # dashes, quotes, ellipsis
        (0x3000, 0x303F),  # CJK punctuation
        (0x3041, 0x30FF),  # Hiragana, Katakana: ja
        (0x4E00, 0x9FFF),  # CJK unified ideographs: zh ja
        (0xAC00, 0xD7A3),  # Hangul syllables: ko
        (0xFF01, 0xFF5E),  # full-width forms
    ]


def _is_cjk_ideograph(char: str) -> bool:
    # BERT's normalizer splits every ideograph into its own word, so ideographs never need a `##` piece.
    return 0x4E00 <= ord(char) <= 0x9FFF


def build_tokenizer_vocab() -> dict[str, int]:
    """A deterministic WordPiece vocabulary with BERT's special token ids ([PAD] 0, [UNK] 100 .. [MASK] 103)."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace()]
    for start, end in _char_ranges():
        chars.extend(chr(code) for code in range(start, end + 1) if chr(code).isprintable())
    tokens += chars
    tokens += [f"##{c}" for c in chars if not _is_cjk_ideograph(c)]
    common = _COMMON_WORDS.split()
    words = common + [word.capitalize() for word in common]
    tokens += words + [f"##{s}" for s in _COMMON_SUFFIXES]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    if len(vocab) > MAX_TEXT_VOCAB:
        raise AssertionError(f"generated vocabulary has {len(vocab)} ids, more than Bark's {MAX_TEXT_VOCAB}")
    return vocab


def _configs(arch: str) -> tuple[BarkConfig, dict[str, Any]]:
    """The model config and the nested generation config values for `arch`."""
    from transformers import BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkSemanticConfig, EncodecConfig

    if arch == "tiny":
        layers: dict[str, Any] = dict(num_layers=2, num_heads=2, hidden_size=32, bias=False)
        # hidden 32 / 4 filters keeps EnCodec's 24 kHz rate and 320-sample hop (75 Hz, Bark's coarse rate);
        # a 6 kbps top bandwidth gives exactly Bark's 8 codebooks instead of 32.
        codec = EncodecConfig(hidden_size=32, num_filters=4, num_lstm_layers=1, target_bandwidths=[1.5, 3.0, 6.0])
        # Equal min and max make every tiny generation the same, known length, however random the weights.
        semantic_generation = {"min_new_tokens": TINY_SEMANTIC_TOKENS, "max_new_tokens": TINY_SEMANTIC_TOKENS}
    elif arch == "bark-small":
        layers = dict(num_layers=12, num_heads=12, hidden_size=768, bias=False)
        codec = EncodecConfig()
        semantic_generation = {}
    else:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHES)}")
    config = BarkConfig(
        semantic_config=BarkSemanticConfig(
            input_vocab_size=SEMANTIC_INPUT_VOCAB, output_vocab_size=SEMANTIC_OUTPUT_VOCAB, **layers
        ).to_dict(),
        coarse_acoustics_config=BarkCoarseConfig(
            input_vocab_size=COARSE_VOCAB, output_vocab_size=COARSE_VOCAB, **layers
        ).to_dict(),
        fine_acoustics_config=BarkFineConfig(
            input_vocab_size=FINE_VOCAB, output_vocab_size=FINE_VOCAB, n_codes_total=N_FINE_CODEBOOKS, **layers
        ).to_dict(),
        codec_config=codec.to_dict(),
    )
    generation = {
        "semantic_config": semantic_generation,
        "coarse_acoustics_config": {},
        "fine_acoustics_config": {"temperature": 0.5},
        "sample_rate": SAMPLE_RATE,
        "codebook_size": CODEBOOK_SIZE,
    }
    return config, generation


def _generation_config(nested: dict[str, Any]) -> GenerationConfig:
    """A plain GenerationConfig carrying Bark's nested sub-configs.

    BarkGenerationConfig skips its parent's __init__, so saving one fails on a missing `early_stopping`; a plain
    GenerationConfig with the same dicts saves, reloads, and is what BarkModel.generate reads (it rebuilds each
    stage's config from these dicts).
    """
    from transformers import GenerationConfig
    from transformers.models.bark.generation_configuration_bark import (
        BarkCoarseGenerationConfig,
        BarkFineGenerationConfig,
        BarkSemanticGenerationConfig,
    )

    return GenerationConfig(
        semantic_config=BarkSemanticGenerationConfig(**nested["semantic_config"]).to_diff_dict(),
        coarse_acoustics_config=BarkCoarseGenerationConfig(**nested["coarse_acoustics_config"]).to_diff_dict(),
        fine_acoustics_config=BarkFineGenerationConfig(**nested["fine_acoustics_config"]).to_diff_dict(),
        sample_rate=nested["sample_rate"],
        codebook_size=nested["codebook_size"],
    )


def _write_presets(directory: Path, arch: str, seed: int) -> None:
    """Write the 130 v2 presets in the layout BarkProcessor.save_pretrained produces."""
    embeddings_dir = directory / SPEAKER_EMBEDDINGS_DIR / "v2"
    embeddings_dir.mkdir(parents=True, exist_ok=True)
    # BarkProcessor.from_pretrained replaces repo_or_path with the path it loads from; a fixed value keeps the
    # file identical wherever the checkpoint is built.
    index: dict[str, object] = {"repo_or_path": "."}
    # Languages in alphabetical order: each preset's random seed depends on its language's position.
    for lang_index, lang in enumerate(sorted(LANGUAGES)):
        for speaker in range(SPEAKERS):
            name = f"v2/{lang}_speaker_{speaker}"
            rng = np.random.default_rng([seed, lang_index, speaker])
            # Real v2 prompts hold a few seconds of speech (about 200 semantic tokens); tiny keeps them short.
            length = TINY_PROMPT_SEMANTIC_LENGTH if arch == "tiny" else int(rng.integers(180, 241))
            frames = int(np.floor(length * COARSE_RATE_HZ / SEMANTIC_RATE_HZ))
            fine = rng.integers(0, CODEBOOK_SIZE, size=(N_FINE_CODEBOOKS, frames), dtype=np.int64)
            arrays = {
                "semantic_prompt": rng.integers(0, 10_000, size=length, dtype=np.int64),
                # As in Bark's own presets, the coarse prompt is the fine prompt's first two codebooks.
                "coarse_prompt": fine[:2].copy(),
                "fine_prompt": fine,
            }
            entry = {}
            for key, array in arrays.items():
                relative = f"{SPEAKER_EMBEDDINGS_DIR}/{name}_{key}.npy"
                np.save(directory / relative, array, allow_pickle=False)
                entry[key] = relative
            index[name] = entry
    (directory / SPEAKER_EMBEDDINGS_JSON).write_text(json.dumps(index, indent=1), encoding="utf-8")


def _make_codec_audible(codec: EncodecModel) -> None:
    """Make a random EnCodec's audio follow its input codes, centred and at a moderate level.

    A fresh EnCodec has all-zero codebooks, so its audio ignores the codes; with random codebooks the decoder's
    random biases still dominate (a large DC offset with the codes a faint ripple on it). Zeroed decoder biases
    leave audio that is purely a function of the codes; scaling the last convolution sets its level.
    """
    import torch

    with torch.no_grad():
        for layer in codec.quantizer.layers:
            layer.codebook.embed.normal_()
        for name, parameter in codec.decoder.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        codes = torch.randint(0, CODEBOOK_SIZE, (N_FINE_CODEBOOKS, 1, COARSE_RATE_HZ))
        rms = codec.decoder(codec.quantizer.decode(codes)).pow(2).mean().sqrt()
        # With no biases the decoder's last layer is linear in its weight-norm magnitude.
        codec.decoder.layers[-1].conv.parametrizations.weight.original0.mul_(_CODEC_RMS / rms)


def build_bark_checkpoint(directory: Path, arch: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight Bark checkpoint (model, generation config, tokenizer, v2 presets) into `directory`.

    The same `arch` and `seed` give byte-identical files. Files of the same names, and earlier weight shards,
    are replaced; nothing else in the directory is touched.
    """
    import torch
    from transformers import BarkModel, BertTokenizer

    config, generation = _configs(arch)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    # A forked RNG keeps the caller's global torch seed untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BarkModel(config)
        _make_codec_audible(model.codec_model)
    model.generation_config = _generation_config(generation)
    model.eval()
    # Shards or an index left by an earlier build (bark-small, say) would be loaded in place of these weights.
    for stale in directory.glob("model*.safetensors*"):
        stale.unlink()
    model.save_pretrained(directory)
    for weights in directory.glob("model*.safetensors"):
        # save_pretrained writes weights owner-only (0600); a service user must be able to read them like the rest.
        weights.chmod(0o644)

    # Cased, with split ideographs and a 512-token limit, like bert-base-multilingual-cased.
    tokenizer = BertTokenizer(
        vocab=build_tokenizer_vocab(), do_lower_case=False, tokenize_chinese_chars=True, model_max_length=512
    )
    tokenizer.save_pretrained(directory)
    _write_presets(directory, arch, seed)
    return directory


def parameter_count(directory: Path) -> int:
    """The model's parameters (tied weights once; buffers such as attention masks and codebooks not counted)."""
    import torch
    from transformers import BarkConfig, BarkModel

    # On the meta device the model is built from its config alone: no weights read, no memory used.
    with torch.device("meta"):
        model = BarkModel(BarkConfig.from_pretrained(directory))
    return sum(parameter.numel() for parameter in model.parameters())
