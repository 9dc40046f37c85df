"""Choosing a decode step's tokens: argmax at temperature 0, else a draw with the row's own generator from the
distribution transformers' temperature, top-k and top-p warpers give (the same as torch.multinomial's from it); the
checkpoint's or the deployment's top_k and top_p, where set, and none otherwise, as upstream Bark samples."""

import numpy as np
import pytest
import scipy.stats
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from synthesis.engines import SynthesisOptions
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.sampling import Truncation, choose, draw, min_eos_p
from tests.bark_checkpoints import with_semantic_config


def test_draws_follow_the_distribution_and_never_pick_a_category_of_probability_zero():
    probs = torch.tensor([0.0, 0.1, 0.0, 0.6, 0.3, 0.0])
    generator = torch.Generator().manual_seed(0)

    draws = torch.stack([draw(probs, generator) for _ in range(20_000)])

    frequencies = torch.bincount(draws, minlength=6) / len(draws)
    assert frequencies[[0, 2, 5]].sum() == 0
    torch.testing.assert_close(frequencies, probs, rtol=0, atol=0.015)


def test_a_draw_from_a_distribution_with_one_certain_category_is_that_category():
    probs = torch.zeros(12_096)
    probs[-1] = 1.0

    assert int(draw(probs, torch.Generator().manual_seed(1))) == 12_095


def test_a_seeded_row_draws_the_same_tokens_whatever_shares_its_batch():
    scores = torch.randn(4, 1_000, generator=torch.Generator().manual_seed(2))

    alone = choose(scores[2:3], [0.7], [torch.Generator().manual_seed(5)], [True])
    batched = choose(
        scores,
        [0.7, 0.0, 0.7, 1.2],
        [torch.Generator().manual_seed(9), None, torch.Generator().manual_seed(5), torch.Generator().manual_seed(3)],
        [True, True, True, True],
    )

    assert batched[2] == alone[0]
    assert batched[1] == torch.argmax(scores[1])


def test_rows_not_wanted_take_the_argmax_and_leave_their_generator_untouched():
    scores = torch.randn(2, 1_000, generator=torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(6)
    state = generator.get_state()

    tokens = choose(scores, [0.7, 0.7], [generator, None], [False, True])

    assert tokens[0] == torch.argmax(scores[0])
    assert torch.equal(generator.get_state(), state)


def library_probabilities(scores: torch.Tensor, temperature: float, truncation: Truncation) -> torch.Tensor:
    """The distribution transformers samples a step from: its temperature, top-k and top-p warpers, then softmax."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if truncation.top_k is not None:
        warpers.append(TopKLogitsWarper(top_k=truncation.top_k))
    if truncation.top_p is not None:
        warpers.append(TopPLogitsWarper(top_p=truncation.top_p))
    probs = torch.softmax(warpers(None, scores[None].clone())[0], dim=-1).double()
    return probs / probs.sum()  # exactly 1 in float64, as the chi-square wants


@pytest.mark.parametrize(
    ("temperature", "truncation"),
    [(0.7, Truncation()), (0.7, Truncation(top_k=20)), (1.3, Truncation(top_p=0.8)), (0.5, Truncation(12, 0.9))],
)
def test_a_sampled_step_draws_from_the_distribution_the_librarys_processors_give(temperature, truncation):
    scores = torch.randn(400, generator=torch.Generator().manual_seed(11)) * 2
    expected = library_probabilities(scores, temperature, truncation)
    generator, draws = torch.Generator().manual_seed(12), 10_000

    tokens = [int(choose(scores[None], [temperature], [generator], [True], truncation)[0]) for _ in range(draws)]

    observed = np.bincount(tokens, minlength=len(scores))
    assert observed[expected.numpy() == 0].sum() == 0  # nothing the warpers removed is ever drawn
    # Chi-square over the categories expected at least 5 times, the rest pooled in one bin.
    counts, frequent = draws * expected.numpy(), draws * expected.numpy() >= 5
    bins_observed = [*observed[frequent], observed[~frequent].sum()]
    bins_expected = [*counts[frequent], counts[~frequent].sum()]
    if bins_expected[-1] == 0:
        bins_observed, bins_expected = bins_observed[:-1], bins_expected[:-1]
    assert scipy.stats.chisquare(bins_observed, bins_expected).pvalue > 0.001


def test_top_k_1_samples_the_argmax_at_any_temperature():
    scores = torch.randn(8, 1_000, generator=torch.Generator().manual_seed(13))
    generators = [torch.Generator().manual_seed(seed) for seed in range(8)]

    tokens = choose(scores, [0.7, 1.0, 1.5, 0.3, 2.0, 0.9, 0.7, 1.1], generators, [True] * 8, Truncation(top_k=1))

    assert torch.equal(tokens, torch.argmax(scores, dim=-1))


def test_a_stages_truncation_is_its_generation_configs_and_none_where_unset_as_in_upstream_bark():
    from transformers.models.bark.generation_configuration_bark import BarkSemanticGenerationConfig

    assert Truncation.of(BarkSemanticGenerationConfig()) == Truncation()  # transformers would use top_k=50
    assert Truncation.of(BarkSemanticGenerationConfig(top_k=40, top_p=0.95)) == Truncation(40, 0.95)
    assert Truncation.of(BarkSemanticGenerationConfig(top_k=0, top_p=1.0)) == Truncation()
    assert min_eos_p(BarkSemanticGenerationConfig()) == 0.2
    assert min_eos_p(BarkSemanticGenerationConfig(min_eos_p=0.5)) == 0.5
    assert min_eos_p(BarkSemanticGenerationConfig(min_eos_p=0)) is None


SAMPLED = {"text_temp": 0.7, "waveform_temp": 0.7, "seed": 5}
TEXTS = ["The first line.", "A second one."]


def test_top_k_1_for_the_deployment_makes_the_semantic_and_coarse_stages_greedy(bark_engine, tiny_bark_dir):
    top_1 = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", top_k=1)
    voice = "v2/en_speaker_3"

    bark_engine.synthesize(TEXTS, SynthesisOptions(voice=voice, text_temp=0.0, waveform_temp=0.0))
    greedy = [run.tokens for run in bark_engine.last_run]
    bark_engine.synthesize(TEXTS, SynthesisOptions(voice=voice, **SAMPLED))
    sampled = [run.tokens for run in bark_engine.last_run]
    top_1.synthesize(TEXTS, SynthesisOptions(voice=voice, **SAMPLED))

    for tokens, greedy_tokens, sampled_tokens in zip(
        [run.tokens for run in top_1.last_run], greedy, sampled, strict=True
    ):
        assert np.array_equal(tokens.semantic, greedy_tokens.semantic)
        assert np.array_equal(tokens.coarse, greedy_tokens.coarse)
        assert not np.array_equal(sampled_tokens.semantic, greedy_tokens.semantic)
    assert top_1.engine_settings == "BARK_TOP_K=1"


def test_a_checkpoint_that_sets_top_k_has_it_honoured_for_that_stage_only(bark_engine, tiny_bark_dir, tmp_path):
    checkpoint = with_semantic_config(tiny_bark_dir, tmp_path / "top-1", top_k=1)
    engine = BarkEngine(model=str(checkpoint), device="cpu", mode="auto")
    voice = "v2/en_speaker_3"

    bark_engine.synthesize(TEXTS[:1], SynthesisOptions(voice=voice, text_temp=0.0, waveform_temp=0.0))
    greedy = bark_engine.last_run[0].tokens
    engine.synthesize(TEXTS[:1], SynthesisOptions(voice=voice, **SAMPLED))
    tokens = engine.last_run[0].tokens

    assert np.array_equal(tokens.semantic, greedy.semantic)  # the semantic stage's config says top_k=1
    assert not np.array_equal(tokens.coarse, greedy.coarse)  # the coarse stage's samples from the whole softmax
    assert engine.engine_settings == ""  # the checkpoint's own setting, not the deployment's
