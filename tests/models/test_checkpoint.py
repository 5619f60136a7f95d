import pickle

import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.models import load_weights, read_state_dict


def net():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def same_weights(a, b):
    return all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_plain_state_dict(tmp_path):
    source = net()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    assert same_weights(load_weights(net(), tmp_path / "w.pt"), source)


@pytest.mark.parametrize("prefix", ["student.", "model."])
def test_lightning_style_checkpoint(tmp_path, prefix):
    source = net()
    state = {prefix + k: v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": {"lr": 0.1}}, tmp_path / "c.ckpt")
    assert same_weights(load_weights(net(), tmp_path / "c.ckpt"), source)


def test_missing_file(tmp_path):
    with pytest.raises(DistillError, match="checkpoint not found: .*nope.pt"):
        read_state_dict(tmp_path / "nope.pt")


def test_a_directory_is_named_as_one_with_the_files_in_it(tmp_path):
    (tmp_path / "best.ckpt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DistillError, match=r"is a directory, not a file; name the file in it \(it holds best.ckpt\)$"):
        read_state_dict(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DistillError, match=r"empty is a directory, not a file; name the file in it$"):
        read_state_dict(tmp_path / "empty")


def test_empty_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DistillError, match="is empty"):
        read_state_dict(tmp_path / "empty.pt")


def test_truncated_file(tmp_path):
    torch.save(net().state_dict(), tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DistillError, match="truncated, corrupt or not a PyTorch file"):
        read_state_dict(tmp_path / "cut.pt")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_of_arbitrary_objects_is_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"state_dict": Payload()}, handle)
    with pytest.raises(DistillError, match="does not unpickle"):
        read_state_dict(tmp_path / "evil.pt")
    assert "this must never run" not in capsys.readouterr().out


def test_wrong_architecture_names_the_mismatch(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)).state_dict(), tmp_path / "w.pt")
    with pytest.raises(DistillError, match=r"shape mismatch.*0.weight: checkpoint \(5, 4\) vs model \(3, 4\)"):
        load_weights(net(), tmp_path / "w.pt")


def test_wrong_model_family(tmp_path):
    torch.save(nn.Conv2d(1, 1, 3).state_dict(), tmp_path / "w.pt")
    with pytest.raises(DistillError, match="missing key"):
        load_weights(net(), tmp_path / "w.pt")


def test_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(DistillError, match="is not a state_dict"):
        read_state_dict(tmp_path / "list.pt")


def test_checkpoint_with_other_objects_loads_only_when_trusted(tmp_path):
    import argparse

    source = net()
    torch.save({"state_dict": source.state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "c.ckpt")
    with pytest.raises(DistillError, match="only if you trust the file, set teacher.trusted_checkpoint=true"):
        load_weights(net(), tmp_path / "c.ckpt")
    assert same_weights(load_weights(net(), tmp_path / "c.ckpt", trusted=True), source)
