"""distill's CUDA paths, checked in one short run: precisions, channels_last, compile, the teacher cache, a bf16 teacher.

    python benchmarks/gpu_check.py             # on a machine with a CUDA device: under 8 minutes, no downloads
    python benchmarks/gpu_check.py --dry-run   # the same mechanics on the CPU at tiny sizes (no 16-mixed, no compile)

For each pair (CIFAR-sized inputs: resnet32x4 -> resnet8x4 of distill's CIFAR zoo, and torchvision's
resnet50 -> resnet18) and each precision (32-true, 16-mixed, bf16-mixed) it trains, on synthetic data:

- ``hand``: a bare PyTorch loop (autocast and, for 16-mixed, a GradScaler, as Lightning does),
- ``student_only``: the same loop reading the teacher's logits from memory,
- ``distill``: ``DistillationModule`` under the Lightning Trainer,
- ``distill_cached``: the same reading a teacher-output cache built on the device,

then, at bf16-mixed, ``distill`` with channels_last, with ``torch.compile`` of the student, with the
teacher's weights in bfloat16 (also at 32-true), and with ``data.in_memory`` batches made on the device.
Every run asserts that the teacher's weights are unchanged and every step's loss finite, and times
``--steps`` steps after ``--warmup`` (the device synchronised at both ends). It prints the step times,
distill/hand and distill_cached/student_only per pair and precision, each option against distill, and
writes them with the date and device to ``results/gpu_check.json``. Exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, RandomSampler, TensorDataset  # noqa: E402

from step_time_contenders import CE_WEIGHT, KD_WEIGHT, TEMPERATURE, hand_loss  # noqa: E402

PAIRS = [("resnet32x4", "resnet8x4"), ("resnet50", "resnet18")]
PRECISIONS = ["32-true", "16-mixed", "bf16-mixed"]
CONTENDERS = ["hand", "student_only", "distill", "distill_cached"]
#: (name, precision, options of the distill run): each compared with plain distill at that precision
OPTIONS = [
    ("distill_channels_last", "bf16-mixed", {"channels_last": True}),
    ("distill_compile", "bf16-mixed", {"compile": True}),
    ("distill_teacher_bf16", "bf16-mixed", {"teacher_dtype": "bfloat16"}),
    ("distill_teacher_bf16", "32-true", {"teacher_dtype": "bfloat16"}),
    ("distill_in_memory", "bf16-mixed", {"in_memory": True}),
]


@dataclasses.dataclass
class Setup:
    device: str
    image_size: int = 32
    batch_size: int = 128
    warmup: int = 20
    steps: int = 200
    num_classes: int = 100
    seed: int = 0

    @property
    def num_samples(self) -> int:
        return self.batch_size * (self.warmup + self.steps)


@dataclasses.dataclass
class Case:
    teacher: str
    student: str
    contender: str
    precision: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.teacher}->{self.student} {self.contender} {self.precision}"


class DeviceClock:
    """Counts steps; times the ``steps`` after ``warmup`` with the device synchronised at both ends, keeps the losses."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.count = 0
        self.started = self.finished = None
        self.losses: list[Tensor] = []

    def tick(self, loss: Tensor) -> None:
        self.count += 1
        self.losses.append(loss.detach().float().reshape(()))
        if self.count in (self.setup.warmup, self.setup.warmup + self.setup.steps):
            if self.setup.device == "cuda":
                torch.cuda.synchronize()
            if self.count == self.setup.warmup:
                self.started = time.perf_counter()
            else:
                self.finished = time.perf_counter()

    def seconds_per_step(self) -> float:
        if self.finished is None:
            raise RuntimeError(f"{self.count} steps ran, expected {self.setup.warmup + self.setup.steps}")
        return (self.finished - self.started) / self.setup.steps

    def all_finite(self) -> bool:
        return bool(torch.isfinite(torch.stack(self.losses)).all())


# -- shared pieces --------------------------------------------------------------------------
def make_models(case: Case, setup: Setup) -> tuple[nn.Module, nn.Module]:
    from distill.models import build_model

    torch.manual_seed(setup.seed)
    return build_model(case.teacher, setup.num_classes), build_model(case.student, setup.num_classes)


def make_data(setup: Setup) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(setup.seed)
    size = setup.image_size
    x = torch.randn(setup.num_samples, 3, size, size, generator=generator)
    return x, torch.randint(0, setup.num_classes, (setup.num_samples,), generator=generator)


def train_loader(setup: Setup, dataset: Any) -> DataLoader:
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(setup.seed + 1))
    return DataLoader(dataset, batch_size=setup.batch_size, sampler=sampler, pin_memory=setup.device == "cuda")


def make_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)


def autocast(setup: Setup, precision: str) -> Any:
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    return torch.autocast(setup.device, dtype=dtype, enabled=dtype is not None)


def teacher_logits(teacher: nn.Module, x: Tensor, setup: Setup) -> Tensor:
    with torch.inference_mode():
        return torch.cat([teacher(b.to(setup.device)).float().cpu() for b in x.split(setup.batch_size)]).clone()


# -- the contenders ----------------------------------------------------------------------------
def run_hand(case: Case, setup: Setup, teacher: nn.Module, student: nn.Module, clock: DeviceClock, **_: Any) -> None:
    teacher.eval().requires_grad_(False)
    student.train()
    optimizer = make_optimizer(student.parameters())
    scaler = torch.amp.GradScaler(setup.device, enabled=case.precision == "16-mixed")
    x, y = make_data(setup)
    if case.contender == "student_only":
        dataset, teacher_outputs = TensorDataset(x, y, teacher_logits(teacher, x, setup)), True
    else:
        dataset, teacher_outputs = TensorDataset(x, y), False
    for batch in train_loader(setup, dataset):
        batch = [t.to(setup.device, non_blocking=True) for t in batch]
        with autocast(setup, case.precision):
            if teacher_outputs:
                logits = batch[2]
            else:
                with torch.inference_mode():
                    logits = teacher(batch[0])
                logits = logits.clone()  # out of inference mode
            loss = hand_loss(student(batch[0]), logits, batch[1])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        clock.tick(loss)


def run_distill(
    case: Case, setup: Setup, teacher: nn.Module, student: nn.Module, clock: DeviceClock, cache_dir: str, **_: Any
) -> None:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from distill import DistillationModule
    from distill.data import TensorClassificationDataset
    from distill.data.in_memory import InMemoryLoader
    from distill.losses import KD, CrossEntropy
    from distill.teachers.output_cache import TeacherOutputCache

    options = case.options
    if options.get("channels_last"):
        for model in (student, teacher):
            model.to(memory_format=torch.channels_last)
    if options.get("compile"):
        student.compile()
    cached = case.contender == "distill_cached"
    x, y = make_data(setup)
    cache = None
    if cached:
        key = {"gpu_check": case.teacher, "samples": setup.num_samples, "size": setup.image_size, "seed": setup.seed}
        fixed = DataLoader(TensorClassificationDataset(x, y, with_index=True), batch_size=setup.batch_size)
        cache = TeacherOutputCache.open_or_build(cache_dir, key, teacher.to(setup.device), fixed, device=setup.device)
    module = DistillationModule(
        student,
        teacher,
        loss={"kd": KD(temperature=TEMPERATURE, weight=KD_WEIGHT), "ce": CrossEntropy(weight=CE_WEIGHT)},
        optimizer=make_optimizer,
        teacher_outputs=cache,
        teacher_dtype=options.get("teacher_dtype"),
    )
    if options.get("in_memory"):
        torch.manual_seed(setup.seed + 1)
        train = InMemoryLoader(x, y, setup.batch_size, shuffle=True, device=setup.device)
    else:
        train = train_loader(setup, TensorClassificationDataset(x, y, with_index=cached))

    class Clock(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
            clock.tick(outputs["loss"])

    with tempfile.TemporaryDirectory(prefix="distill-gpu-check-") as run_dir:
        trainer = L.Trainer(
            max_epochs=1,
            accelerator="gpu" if setup.device == "cuda" else "cpu",
            devices=1,
            precision=case.precision,
            log_every_n_steps=10,
            logger=CSVLogger(run_dir, name="logs", version=""),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            default_root_dir=run_dir,
            callbacks=[Clock()],
        )
        trainer.fit(module, train_dataloaders=train)


RUNNERS = {"hand": run_hand, "student_only": run_hand}


def run_case(case: Case, setup: Setup, cache_dir: str) -> dict[str, Any]:
    from distill.models.fingerprint import weights_sha256

    torch.manual_seed(setup.seed)
    teacher, student = make_models(case, setup)
    teacher.to(setup.device)
    student.to(setup.device)
    before = weights_sha256(teacher)
    clock = DeviceClock(setup)
    if setup.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    RUNNERS.get(case.contender, run_distill)(case, setup, teacher, student, clock, cache_dir=cache_dir)
    teacher.float()  # a bfloat16 teacher goes back to float32, exactly (every bfloat16 is a float32)
    expected = before
    if case.options.get("teacher_dtype"):
        # its weights were rounded to bfloat16 once, on purpose: compare with that rounding of the start
        torch.manual_seed(setup.seed)
        reference, _ = make_models(case, setup)
        expected = weights_sha256(reference.to(torch.bfloat16).float())
    result = {
        **dataclasses.asdict(case),
        "seconds_per_step": clock.seconds_per_step(),
        "wall_s": time.perf_counter() - started,
        "loss_finite": clock.all_finite(),
        "teacher_unchanged": weights_sha256(teacher) == expected,
        "peak_device_mb": torch.cuda.max_memory_allocated() / 2**20 if setup.device == "cuda" else None,
    }
    return result


# -- the plan and the report ----------------------------------------------------------------------
def plan(pairs: list[tuple[str, str]], precisions: list[str], compile: bool) -> list[Case]:
    cases = []
    for teacher, student in pairs:
        for precision in precisions:
            cases += [Case(teacher, student, contender, precision) for contender in CONTENDERS]
        for name, precision, options in OPTIONS:
            if precision in precisions and (compile or not options.get("compile")):
                cases.append(Case(teacher, student, name, precision, options))
    return cases


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step time of each contender over its reference's at the same pair and precision (and peak device memory)."""
    by_key = {(r["teacher"], r["student"], r["contender"], r["precision"]): r for r in results}
    rows = []
    for (teacher, student, contender, precision), result in by_key.items():
        denominator = {"distill": "hand", "distill_cached": "student_only"}.get(contender)
        if denominator is None and contender.startswith("distill_"):
            denominator = "distill"
        other = by_key.get((teacher, student, denominator, precision))
        if other is None:
            continue
        pair = f"{teacher}->{student}"
        rows.append({
            "pair": pair, "precision": precision, "ratio": f"{contender}/{denominator}",
            "value": result["seconds_per_step"] / other["seconds_per_step"],
        })
        if result.get("peak_device_mb") and other.get("peak_device_mb"):
            rows.append({
                "pair": pair, "precision": precision, "ratio": f"{contender}/{denominator} (peak device memory)",
                "value": result["peak_device_mb"] / other["peak_device_mb"],
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny sizes: checks the mechanics")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 200; dry run 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 20; dry run 1)")
    parser.add_argument("--batch-size", type=int, help="default 128 (dry run 4)")
    parser.add_argument("--precisions", nargs="+", help="default all three (dry run: 32-true bf16-mixed)")
    parser.add_argument("--pairs", nargs="+", help="teacher:student (default resnet32x4:resnet8x4 resnet50:resnet18)")
    parser.add_argument("--contenders", nargs="+", help="run only these (hand, distill, distill_compile, ...)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="runs left when this is spent are skipped")
    parser.add_argument("--json", type=Path, help="where to write results (default results/gpu_check.json; dry run: none)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 0
    dry = args.dry_run
    setup = Setup(
        device="cpu" if dry else "cuda",
        image_size=8 if dry else 32,
        batch_size=args.batch_size or (4 if dry else 128),
        warmup=args.warmup or (1 if dry else 20),
        steps=args.steps or (2 if dry else 200),
        num_classes=10 if dry else 100,
    )
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else ([("resnet8", "resnet8")] if dry else PAIRS)
    precisions = args.precisions or (["32-true", "bf16-mixed"] if dry else PRECISIONS)
    cases = plan(pairs, precisions, compile=not dry)  # compiling on the CPU takes minutes
    if args.contenders:
        cases = [case for case in cases if case.contender in args.contenders]
    device_name = "cpu (dry run)" if dry else torch.cuda.get_device_name()
    print(f"{device_name}: {len(cases)} runs, {setup}", flush=True)
    started, results, skipped = time.perf_counter(), [], []
    with tempfile.TemporaryDirectory(prefix="distill-gpu-check-cache-") as cache_dir:
        for case in cases:
            if time.perf_counter() - started > args.budget_s:
                skipped.append(case.name)
                continue
            result = run_case(case, setup, cache_dir)
            results.append(result)
            verdict = "ok" if result["loss_finite"] and result["teacher_unchanged"] else "FAILED"
            memory = "" if result["peak_device_mb"] is None else f", peak {result['peak_device_mb']:.0f} MB"
            print(f"{case.name:<60} {result['seconds_per_step'] * 1000:8.2f} ms/step{memory}  {verdict}", flush=True)
    rows = ratios(results)
    print("\n| pair | precision | ratio | value |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['pair']} | {row['precision']} | {row['ratio']} | {row['value']:.3f} |")
    failed = [r for r in results if not (r["loss_finite"] and r["teacher_unchanged"])]
    for name in skipped:
        print(f"skipped (over the {args.budget_s:.0f} s budget): {name}")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name,
        "torch": torch.__version__,
        "setup": dataclasses.asdict(setup),
        "wall_s": time.perf_counter() - started,
        "results": results,
        "ratios": rows,
        "skipped": skipped,
        "failed": [r["teacher"] + "->" + r["student"] + " " + r["contender"] + " " + r["precision"] for r in failed],
    }
    path = args.json or (None if dry else HERE / "results" / "gpu_check.json")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
        print(f"results written to {path}")
    print(f"{len(results)} runs in {report['wall_s']:.0f} s; {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


if __name__ == "__main__":
    sys.exit(main())
