"""The shift/mask helper: property tests over random prompts, padding sides and packing."""

import random

import pytest
import torch

from distill.errors import DistillError
from distill.lm.tokens import (
    count_loss_tokens,
    loss_positions,
    next_token_targets,
    shift_logits,
)

IGNORE = -100
PAD = 0


def _document(rng: random.Random, vocab: int) -> tuple[list[int], list[bool]]:
    """Token ids of one document and, per token, whether it is a completion token (carries loss)."""
    prompt = [rng.randrange(1, vocab) for _ in range(rng.randrange(0, 6))]
    completion = [rng.randrange(1, vocab) for _ in range(rng.randrange(1, 7))]
    return prompt + completion, [False] * len(prompt) + [True] * len(completion)


def _random_batch(rng: random.Random, layout: str, vocab: int = 50):
    """A batch built token by token, with the (row, predicting position, token) triples that must carry loss.

    The expected triples come from how the batch was built, not from its labels: a completion
    token at position p is predicted by the logits at p - 1, except the first token of a
    document, which nothing in its own document predicts.
    """
    rows = []
    for _ in range(rng.randrange(1, 5)):
        tokens, carries, first = [], [], []
        for _ in range(rng.randrange(1, 4) if layout == "packed" else 1):
            doc, doc_carries = _document(rng, vocab)
            tokens += doc
            carries += doc_carries
            first += [True] + [False] * (len(doc) - 1)
        rows.append((tokens, carries, first))
    length = max(len(tokens) for tokens, _, _ in rows) + rng.randrange(0, 3)
    length = max(length, 2)
    input_ids = torch.full((len(rows), length), PAD)
    labels = torch.full((len(rows), length), IGNORE)
    expected = set()
    for b, (tokens, carries, first) in enumerate(rows):
        offset = length - len(tokens) if layout == "left_padded" else 0
        for i, (token, carry, starts_doc) in enumerate(zip(tokens, carries, first)):
            p = offset + i
            input_ids[b, p] = token
            # labels as a data module writes them: no loss on prompts, padding or a document's first token
            if carry and not starts_doc:
                labels[b, p] = token
                expected.add((b, p - 1, token))
    return input_ids, labels, expected


@pytest.mark.parametrize("layout", ["right_padded", "left_padded", "packed"])
def test_targets_and_mask_select_exactly_the_loss_tokens(layout):
    rng = random.Random(f"tokens-{layout}")
    for _ in range(200):
        _, labels, expected = _random_batch(rng, layout)
        targets, mask = next_token_targets(labels)
        assert targets.shape == mask.shape == (labels.shape[0], labels.shape[1] - 1)
        assert mask.dtype == torch.bool
        found = {(b, t, int(targets[b, t])) for b, t in mask.nonzero().tolist()}
        assert found == expected
        assert int(count_loss_tokens(mask)) == len(expected)


@pytest.mark.parametrize("layout", ["right_padded", "left_padded", "packed"])
def test_loss_positions_are_rows_of_the_flattened_logits(layout):
    rng = random.Random(f"rows-{layout}")
    for _ in range(100):
        _, labels, expected = _random_batch(rng, layout)
        batch, length = labels.shape
        # logits whose row at (b, t) says where it came from
        logits = torch.stack(
            [torch.arange(batch).repeat_interleave(length), torch.arange(length).repeat(batch)], dim=1
        ).float().reshape(batch, length, 2)
        rows, targets = loss_positions(labels)
        picked = logits.reshape(batch * length, 2)[rows]
        found = {(int(b), int(t), int(y)) for (b, t), y in zip(picked.tolist(), targets)}
        assert found == expected
        # the same positions, in the same order, as shifting and masking the logits
        _, mask = next_token_targets(labels)
        assert torch.equal(picked, shift_logits(logits)[mask])


def test_a_hand_worked_example():
    # prompt 11 12, completion 13 14, then one pad
    labels = torch.tensor([[IGNORE, IGNORE, 13, 14, IGNORE]])
    targets, mask = next_token_targets(labels)
    assert targets.tolist() == [[IGNORE, 13, 14, IGNORE]]
    assert mask.tolist() == [[False, True, True, False]]
    rows, row_targets = loss_positions(labels)
    assert rows.tolist() == [1, 2] and row_targets.tolist() == [13, 14]
    assert int(count_loss_tokens(mask)) == 2


def test_a_custom_ignore_index():
    labels = torch.tensor([[5, -1, 7, -1]])
    targets, mask = next_token_targets(labels, ignore_index=-1)
    assert mask.tolist() == [[False, True, False]]


def test_shift_logits_drops_the_last_position():
    logits = torch.randn(2, 5, 7)
    assert torch.equal(shift_logits(logits), logits[:, :4])


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.zeros(3, dtype=torch.long), "integer labels"),
        (torch.zeros(2, 4), "integer labels"),
        (torch.zeros(2, 1, dtype=torch.long), "no next token"),
    ],
)
def test_bad_labels_get_a_one_line_error(labels, message):
    with pytest.raises(DistillError, match=message):
        next_token_targets(labels)


def test_shift_logits_rejects_classifier_outputs():
    with pytest.raises(DistillError, match="vocabulary"):
        shift_logits(torch.randn(4, 10))
