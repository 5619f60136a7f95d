"""The top-k teacher cache of a language model: bytes per token on disk, and a cached epoch against a live-teacher epoch.

    python benchmarks/lm_cache.py              # 64 x 128 tokens, vocabulary 8192, k = 32, 3 repeats
    python benchmarks/lm_cache.py --quick      # a mechanics check in seconds (no meaningful timing)

One run fills the cache (an epoch with the teacher running, write-through),
measures its files' bytes per cached token (against the dense bf16 logits, 2 V
bytes per token), then times, interleaved (live, cached, live, cached, ...),
an epoch of distill's training step (``DistillationModule.training_step`` with
``TokenKL(top_k=k)`` + ``TokenCrossEntropy``, backward, AdamW) with the live
teacher and with the cache. It prints each contender's median epoch time, the
speed-up (live / cached) per repeat with its median and spread (min-max), and
one JSON line with every number. The teacher is the larger model, as it is in
practice; the speed-up grows with its share of the step.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch


@dataclass
class Settings:
    examples: int = 64
    block: int = 128
    vocab: int = 8192
    batch: int = 8
    top_k: int = 32
    teacher_layers: int = 4
    teacher_width: int = 256
    student_layers: int = 1
    student_width: int = 64
    repeats: int = 3
    threads: int | None = None
    seed: int = 0


QUICK = Settings(examples=8, block=16, vocab=300, batch=4, top_k=8, teacher_layers=2, teacher_width=32,
                 student_layers=1, student_width=16, repeats=2)
TEMPERATURE = 2.0


def gpt2(settings: Settings, layers: int, width: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=settings.vocab, n_layer=layers, n_embd=width, n_head=4, n_positions=settings.block,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def make_examples(settings: Settings) -> list[tuple[list[int], list[int]]]:
    """Random token blocks with a prompt of 0-7 tokens that carries no loss."""
    generator = torch.Generator().manual_seed(settings.seed)
    made = []
    for _ in range(settings.examples):
        ids = torch.randint(0, settings.vocab, (settings.block,), generator=generator).tolist()
        prompt = int(torch.randint(0, min(8, settings.block - 1), (1,), generator=generator))
        made.append((ids, [-100] * prompt + ids[prompt:]))
    return made


class _Tokenizer:
    """What the manifest hashes of a tokenizer, for the random tokens here."""

    chat_template = None
    special_tokens_map: dict = {}

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return {str(i): i for i in range(self.vocab)}


def epoch(module, optimizer, loader) -> float:
    """Seconds of one epoch of training steps (forward, loss, backward, optimizer step)."""
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        loss = module.training_step(batch, step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def run(settings: Settings, directory: Path) -> dict:
    from torch.utils.data import DataLoader

    from distill import DistillationModule
    from distill.data.lm_text import TokenExamples
    from distill.losses import TokenCrossEntropy, TokenKL
    from distill.teachers.lm_manifest import examples_sha256, lm_cache_manifest
    from distill.teachers.lm_output_cache import TopKTeacherCache
    from distill.teachers.topk_format import bytes_per_token

    torch.manual_seed(settings.seed)
    teacher = gpt2(settings, settings.teacher_layers, settings.teacher_width)
    student = gpt2(settings, settings.student_layers, settings.student_width)
    made = make_examples(settings)
    counts = [sum(1 for label in labels[1:] if label != -100) for _, labels in made]
    manifest = lm_cache_manifest(teacher, _Tokenizer(settings.vocab), examples_sha256(made, settings.block, 0), counts,
                                 vocabulary=settings.vocab, temperature=TEMPERATURE, top_k=settings.top_k)
    loader = DataLoader(TokenExamples(made, settings.block, 0, labels=True, with_index=True), batch_size=settings.batch,
                        shuffle=True, generator=torch.Generator().manual_seed(settings.seed))

    def contender(cache):
        terms = {"kd": TokenKL(temperature=TEMPERATURE, top_k=settings.top_k, weight=0.9), "ce": TokenCrossEntropy(0.1)}
        module = DistillationModule(copy.deepcopy(student), teacher, terms, teacher_outputs=cache)
        return module, torch.optim.AdamW(module.student.parameters(), lr=1e-3)

    with TopKTeacherCache.open(directory / "cache", manifest, counts, teacher) as cache:
        filling = contender(cache)
        fill_s = epoch(*filling, loader)  # write-through: the teacher runs and the cache is filled
        assert cache.complete and cache.teacher_batches == len(loader)
    cache = TopKTeacherCache.open(directory / "cache", manifest, counts)
    contenders = {"live": contender(None), "cached": contender(cache)}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(settings.repeats):
        for name, (module, optimizer) in contenders.items():  # interleaved: noise hits both alike
            times[name].append(epoch(module, optimizer, loader))
    speedups = [live / cached for live, cached in zip(times["live"], times["cached"])]
    return {
        "settings": asdict(settings),
        "tokens": cache.num_tokens,
        "bytes_per_token": cache.bytes_per_token(),
        "payload_bytes_per_token": bytes_per_token(settings.top_k, settings.vocab, "float16"),
        "dense_bf16_bytes_per_token": 2 * settings.vocab,
        "fill_epoch_s": fill_s,
        "epoch_s": times,
        "median_epoch_s": {name: statistics.median(values) for name, values in times.items()},
        "speedup": speedups,
        "median_speedup": statistics.median(speedups),
        "speedup_spread": [min(speedups), max(speedups)],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny setting: checks the mechanics only")
    for field in Settings.__dataclass_fields__:
        if field != "seed":
            parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=None)
    args = parser.parse_args(argv)
    settings = replace(QUICK) if args.quick else Settings()
    for field in Settings.__dataclass_fields__:
        value = getattr(args, field, None)
        if value is not None:
            setattr(settings, field, value)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    warnings.filterwarnings("ignore")  # self.log outside a Trainer, transformers' notices
    with tempfile.TemporaryDirectory() as directory:
        result = run(settings, Path(directory))
    result["threads"] = torch.get_num_threads()
    print(f"{result['tokens']} cached tokens, k = {settings.top_k}, vocabulary {settings.vocab}: "
          f"{result['bytes_per_token']:.1f} bytes/token on disk (payload {result['payload_bytes_per_token']}, "
          f"dense bf16 logits {result['dense_bf16_bytes_per_token']})")
    print(f"filling epoch (teacher runs, cache written): {result['fill_epoch_s']:.3f} s")
    for name in ("live", "cached"):
        values = ", ".join(f"{t:.3f}" for t in result["epoch_s"][name])
        print(f"{name:>6} epoch: median {result['median_epoch_s'][name]:.3f} s  ({values})")
    low, high = result["speedup_spread"]
    print(f"cached-epoch speed-up (live / cached): median {result['median_speedup']:.2f}x, "
          f"spread {low:.2f}x-{high:.2f}x over {settings.repeats} repeats")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
