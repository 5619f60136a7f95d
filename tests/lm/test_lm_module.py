"""DistillationModule on Hugging Face causal LMs from Python: token metrics with the mask, models in train mode."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from distill import DistillationModule
from distill.data import LanguageModelDataModule, TextClassificationDataModule
from distill.losses import TokenCrossEntropy, TokenKL
from distill.lm.training import CausalLMTraining
from distill.models import build_model


@pytest.fixture
def pairs_data(tmp_path, tiny_tokenizer_dir):
    rows = [{"prompt": f"The for {'loop ' * (i % 3)}", "completion": " statement is a block"} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return LanguageModelDataModule(train_file=str(path), tokenizer=str(tiny_tokenizer_dir), block_size=16, batch_size=4,
                                   val_fraction=0.25, test_fraction=0.25)


class EvalModeAtFitStart(L.Callback):
    """Records the student's (or trained model's) modules that are in eval mode when fit starts."""

    def on_train_start(self, trainer, pl_module):
        model = getattr(pl_module, "student", None) or pl_module.model
        self.in_eval = [name for name, m in model.named_modules() if not m.training]


def test_token_agreement_and_accuracy_count_only_loss_tokens(pairs_data, make_gpt2, fast_trainer):
    torch.manual_seed(0)
    teacher, student = make_gpt2(300), make_gpt2(300, width=16)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0), "ce": TokenCrossEntropy(0.5)})
    metrics = fast_trainer().validate(module, datamodule=pairs_data, verbose=False)[0]
    # by hand: position t predicts token t+1, counted where labels[t+1] != -100
    agree = correct = count = 0
    student.eval(), teacher.eval()
    with torch.no_grad():
        for batch in pairs_data.val_dataloader():
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            s, t = student(**inputs).logits, teacher(**inputs).logits
            for b in range(len(s)):
                for pos in range(s.shape[1] - 1):
                    target = int(batch["labels"][b, pos + 1])
                    if target == -100:
                        continue
                    count += 1
                    agree += int(s[b, pos].argmax() == t[b, pos].argmax())
                    correct += int(s[b, pos].argmax() == target)
    assert count > 0
    assert metrics["val/agreement"] == pytest.approx(agree / count)
    assert metrics["val/acc"] == pytest.approx(correct / count)


def test_causal_lm_student_and_trained_teacher_start_fit_in_train_mode(pairs_data, save_tiny_gpt2, fast_trainer):
    folder = save_tiny_gpt2("teacher")
    student = build_model("hf_causal_lm", 300, config_from=str(folder), config={"num_hidden_layers": 1}, init_layers=1)
    teacher = build_model("hf_causal_lm", 300, path=str(folder))
    for module in (DistillationModule(student, teacher, {"kd": TokenKL()}), CausalLMTraining(build_model("hf_causal_lm", 300, path=str(folder)))):
        seen = EvalModeAtFitStart()
        fast_trainer(callbacks=[seen], limit_train_batches=1, limit_val_batches=0).fit(module, datamodule=pairs_data)
        assert seen.in_eval == []
    assert not teacher.training  # the frozen teacher stays in eval mode


def test_sequence_classifier_from_pretrained_starts_fit_in_train_mode(tiny_bert, tiny_tokenizer, sentiment_files, fast_trainer):
    """The hf_sequence_classification path had the same bug: from_pretrained's eval mode kept by Lightning, both when
    a saved teacher is fine-tuned first (SupervisedModule, as the run trains it) and when a saved student is distilled."""
    from distill.losses import KD
    from distill.supervised import SupervisedModule

    folder = tiny_bert("bert")
    data = TextClassificationDataModule(train_file=str(sentiment_files["train"]), val_file=str(sentiment_files["val"]),
                                        test_file=str(sentiment_files["test"]), tokenizer=str(folder), batch_size=4)
    student = build_model("hf_sequence_classification", 2, path=str(folder))
    teacher = build_model("hf_sequence_classification", 2, path=str(folder))
    seen = EvalModeAtFitStart()
    fast_trainer(callbacks=[seen], limit_train_batches=1, limit_val_batches=0).fit(
        DistillationModule(student, teacher, {"kd": KD()}), datamodule=data)
    assert seen.in_eval == []
    fine_tuned = EvalModeAtFitStart()
    fast_trainer(callbacks=[fine_tuned], limit_train_batches=1, limit_val_batches=0).fit(
        SupervisedModule(build_model("hf_sequence_classification", 2, path=str(folder))), datamodule=data)
    assert fine_tuned.in_eval == []
