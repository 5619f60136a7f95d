import torch
from torch.utils.data import DataLoader

from distill.batch import split_batch
from distill.data import IndexedDataset, TensorClassificationDataset, batch_item

PAIRS = [(torch.full((2,), float(i)), i % 3) for i in range(5)]


def test_the_four_forms():
    x, y = PAIRS[3]
    assert batch_item(x, y, 3) == (x, y)
    item = batch_item(x, y, 3, with_index=True)
    assert item[:2] == (x, y) and item[2].item() == 3
    assert batch_item(x, y, 3, labels=False) is x
    item = batch_item(x, y, 3, labels=False, with_index=True)
    assert set(item) == {"x", "index"} and item["x"] is x and item["index"].item() == 3


def test_view_applies_the_transform_and_indexes_positions():
    view = IndexedDataset(PAIRS, transform=lambda x: x * 10, with_index=True)
    assert len(view) == 5
    x, y, index = view[4]
    assert torch.equal(x, torch.full((2,), 40.0)) and y == 1 and index.item() == 4


def test_batches_are_read_by_split_batch():
    for labels, with_index in ((True, False), (True, True), (False, False), (False, True)):
        batch = next(iter(DataLoader(IndexedDataset(PAIRS, labels=labels, with_index=with_index), batch_size=5)))
        parts = split_batch(batch)
        inputs = parts.args[0] if parts.args else parts.kwargs["x"]
        assert torch.equal(inputs[:, 0], torch.arange(5.0))
        assert (parts.labels is not None) == labels
        assert (parts.index is not None) == with_index
        if labels:
            assert parts.labels.tolist() == [0, 1, 2, 0, 1]
        if with_index:
            assert parts.index.tolist() == [0, 1, 2, 3, 4]


def test_tensor_dataset_yields_the_same_forms():
    x, y = torch.randn(4, 2), torch.tensor([1, 0, 1, 0])
    assert torch.equal(TensorClassificationDataset(x)[2], x[2])
    item = TensorClassificationDataset(x, y, with_index=True)[2]
    assert torch.equal(item[0], x[2]) and item[1].item() == 1 and item[2].item() == 2
    item = TensorClassificationDataset(x, with_index=True)[1]
    assert set(item) == {"x", "index"} and item["index"].item() == 1
