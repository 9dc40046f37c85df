"""Choosing a decode step's tokens: argmax at temperature 0, else a draw from softmax(scores / t) with the row's own
generator, from the same distribution as torch.multinomial."""

import torch

from synthesis.engines.bark.decode import choose, draw


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
