"""The trainer registry: a trainer whose backend extra is missing is a clear error naming the
extra to install (the CLI prints it, exit status 2), never a bare ModuleNotFoundError."""

from __future__ import annotations

import pytest

from rlbench import trainers
from rlbench.cli import main
from rlbench.trainers import BackendMissing, BuiltinTrainer, backend_available, config_class


@pytest.fixture
def fake_trainer(monkeypatch):
    monkeypatch.setitem(trainers.BACKEND_PACKAGES, "nosuch", ("nosuch_backend_pkg",))
    monkeypatch.setitem(trainers.TRAINERS, "fake", BuiltinTrainer(
        "fake", "nosuch", "nosuch_backend_pkg.trainer", "a trainer whose backend is absent"))


def test_missing_backend_is_a_clear_error(fake_trainer) -> None:
    assert not backend_available("nosuch")
    with pytest.raises(BackendMissing, match=r"pip install 'rlbench\[nosuch\]'"):
        config_class("fake")


def test_cli_reports_a_missing_backend_without_a_traceback(fake_trainer, capsys) -> None:
    assert main(["train", "fake", "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlbench: error: the fake trainer needs the nosuch backend")


def test_installed_backends_are_reported_available() -> None:
    for spec in trainers.TRAINERS.values():
        try:
            config_class(spec.algo)
        except BackendMissing:
            assert not backend_available(spec.backend)
        else:
            assert backend_available(spec.backend)
