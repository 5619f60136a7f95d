from types import SimpleNamespace

import pytest
import torch

from distill.batch import output_logits, split_batch
from distill.errors import DistillError


def test_split_forms():
    x, y, i = torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([5, 6])
    assert split_batch(x).args[0] is x and split_batch(x).labels is None
    parts = split_batch((x, y, i))
    assert parts.args[0] is x and parts.labels is y and parts.index is i
    parts = split_batch({"input_ids": x, "labels": y, "index": i})
    assert parts.kwargs == {"input_ids": x} and parts.labels is y and parts.index is i
    assert len(parts) == 2


@pytest.mark.parametrize("batch", [(), (1, 2, 3, 4), {"labels": torch.zeros(2)}, "text"])
def test_unreadable_batches(batch):
    with pytest.raises(DistillError, match="batch"):
        split_batch(batch)


def test_output_logits_forms():
    logits = torch.ones(2, 3)
    assert output_logits(logits) is logits
    assert output_logits(SimpleNamespace(logits=logits)) is logits
    assert output_logits({"logits": logits}) is logits
    assert output_logits((logits, "aux")) is logits
    with pytest.raises(DistillError, match="cannot find logits"):
        output_logits({"scores": logits})
