"""Install hints match how distill was installed: the checkout's editable form here, one package when one is missing."""

from __future__ import annotations

from pathlib import Path

import distill
from distill import install_hint
from distill.install_hint import install_command, source_checkout

CHECKOUT = Path(distill.__file__).resolve().parent.parent


def test_from_this_checkout_the_hint_is_an_editable_install(monkeypatch, tmp_path):
    assert source_checkout() == CHECKOUT
    monkeypatch.chdir(CHECKOUT)
    assert install_command("export") == 'pip install -e ".[export]"'
    monkeypatch.chdir(tmp_path)
    assert install_command("export") == f'pip install -e "{CHECKOUT}[export]"'


def test_an_installed_package_gets_the_package_extra(monkeypatch):
    monkeypatch.setattr(install_hint, "source_checkout", lambda: None)
    assert install_command("loggers") == "pip install 'distill[loggers]'"


def test_one_missing_package_is_named_alone():
    assert install_command("export", ["onnxruntime"]) == "pip install onnxruntime"
    assert install_command("export", ["onnx", "onnxruntime"]).endswith("[export]\"")
