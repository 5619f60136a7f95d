"""distill.models.exporter: each format written, loaded back and compared with the PyTorch model, in-process."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys

import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.models.exporter import (
    FORMATS,
    INSTALL_HINT,
    TOLERANCES,
    check_format,
    default_filename,
    export_model,
    load_exported,
)

ONNX_PRESENT = importlib.util.find_spec("onnx") is not None
ONNX_INSTALLED = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@pytest.fixture
def model_and_batch(make_cnn, digits_small):
    torch.manual_seed(0)
    model = make_cnn(width=4)
    model.train()  # export must use eval mode (BatchNorm running statistics) and restore this
    return model, next(iter(digits_small.test_dataloader()))[0]


def _expected(model, x):
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    return out


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torch_export", "torchscript", "state_dict"])
def test_export_loads_back_and_matches(model_and_batch, tmp_path, fmt):
    model, x = model_and_batch
    path = tmp_path / "out" / default_filename("tiny", fmt)
    result = export_model(model, fmt, path, x, meta={"source": "test"})
    assert model.training  # restored
    assert result["max_abs_diff"] <= result["tolerance"] == TOLERANCES[fmt]
    assert result["batch_sizes"] == [len(x), 1] and result["output_shape"] == [len(x), 10]
    record = json.loads((tmp_path / "out" / f"{path.name}.json").read_text())
    assert record["max_abs_diff"] == result["max_abs_diff"] and record["meta"] == {"source": "test"}
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left

    if fmt == "torch_export":
        assert path.name == "tiny.pt2"
        program = torch.export.load(str(path)).module()
        got = program(x)
        assert (program(x[:3]) - _expected(model, x[:3])).abs().max().item() <= TOLERANCES[fmt]  # a dynamic batch
    elif fmt == "torchscript":
        loaded = torch.jit.load(str(path))
        assert not any(isinstance(m, nn.BatchNorm2d) and m.training for m in loaded.modules())
        got = loaded(x)
    else:
        state = torch.load(path, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        fresh = copy.deepcopy(model)
        for p in fresh.parameters():
            p.data.zero_()
        fresh.load_state_dict(state)
        got = _expected(fresh, x)
    assert (got - _expected(model, x)).abs().max().item() <= TOLERANCES[fmt]


def test_onnx_parity_or_the_install_hint(model_and_batch, tmp_path):
    model, x = model_and_batch
    path = tmp_path / "tiny.onnx"
    if ONNX_INSTALLED:
        result = export_model(model, "onnx", path, x)
        assert result["max_abs_diff"] <= result["tolerance"] == 1e-4
        run = load_exported(path, "onnx")
        for batch in (x, x[:3]):  # the batch dimension is dynamic
            assert (run(batch) - _expected(model, batch)).abs().max().item() <= 1e-4
    else:
        with pytest.raises(DistillError, match=re.escape(INSTALL_HINT)):
            export_model(model, "onnx", path, x)
        assert not path.exists()


def test_without_onnx_packages_the_error_says_how_to_install(model_and_batch, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    model, x = model_and_batch
    for call in (lambda: check_format("onnx"), lambda: export_model(model, "onnx", tmp_path / "m.onnx", x)):
        with pytest.raises(DistillError, match="needs the onnx and onnxruntime packages") as error:
            call()
        # onnxruntime alone is missing here (or both, when onnx is not installed either)
        assert str(error.value).endswith("pip install onnxruntime" if ONNX_PRESENT else INSTALL_HINT)
    assert list(tmp_path.iterdir()) == []


class BatchSizeBranch(nn.Module):
    """Computes something else for a single sample: tracing bakes in the branch of the traced batch."""

    def forward(self, x):
        flat = x.flatten(1)[:, :10]
        return flat if x.shape[0] > 1 else -flat


def test_a_mismatch_beyond_the_tolerance_fails_and_writes_nothing(model_and_batch, tmp_path):
    _, x = model_and_batch
    path = tmp_path / "branch.torchscript.pt"
    mismatch = r"does not compute what the PyTorch model computes.*nothing was written"
    with pytest.warns(torch.jit.TracerWarning), pytest.raises(DistillError, match=mismatch):
        export_model(BatchSizeBranch(), "torchscript", path, x)
    assert list(tmp_path.iterdir()) == []


def test_state_dict_loads_into_a_freshly_built_model(tmp_path):
    from distill.models import build_model

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", 10)
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "m.pt"
    export_model(model, "state_dict", path, x, name="mobilenet_v3_small", num_classes=10, record=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    fresh = build_model("mobilenet_v3_small", 10)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, p: export_model(m, "tflite", p, x), "unknown export format 'tflite'; choose one of torch_export, torchscript, onnx, state_dict"),
        (lambda m, x, p: export_model(m, "torchscript", p, x, tolerance=-1), "tolerance must be a number >= 0"),
        (lambda m, x, p: export_model(m, "torchscript", p, x[0, 0, 0, 0]), "non-empty batch tensor"),
        (lambda m, x, p: default_filename("m", "keras"), "unknown export format 'keras'"),
    ],
)
def test_bad_arguments_are_clear_errors(model_and_batch, tmp_path, call, message):
    model, x = model_and_batch
    with pytest.raises(DistillError, match=message):
        call(model, x, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_formats_and_tolerances_are_stated():
    assert FORMATS == ("torch_export", "torchscript", "onnx", "state_dict")
    assert TOLERANCES == {"torch_export": 1e-5, "torchscript": 1e-5, "state_dict": 1e-5, "onnx": 1e-4}
