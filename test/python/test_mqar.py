"""examples/python/train_mqar.py: a short run trains the same model with attnc and SDPA to the same losses.

Both runs start from the same weights and batches, so their loss curves may
differ only by float rounding: a wrong forward or backward kernel makes
them part within a few steps. Skipped where torch does not import.
"""
import importlib.util
import pathlib

import pytest

torch = pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "train_mqar.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_mqar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attnc_and_sdpa_train_alike():
    example = load_example()
    losses_a, losses_s, acc_a, acc_s = example.main(
        ["--steps", "30", "--batch", "16", "--plot", "", "--every", "10"])
    assert len(losses_a) == len(losses_s) == 30
    for step, (a, s) in enumerate(zip(losses_a, losses_s)):
        assert abs(a - s) <= 1e-3 * abs(s), f"step {step}: attnc {a}, sdpa {s}"
    assert losses_a[-1] < losses_a[0]  # it learns (the first steps fit the value range)
    assert 0 <= acc_a <= 1 and abs(acc_a - acc_s) <= 0.05


def test_bad_arguments_are_refused(capsys):
    example = load_example()
    with pytest.raises(SystemExit):
        example.main(["--pairs", "40", "--seq-len", "64"])
    assert "4*pairs <= seq-len" in capsys.readouterr().err
    for bad, said in ((["--steps", "0"], "must be"), (["--every", "0"], "must be"),
                      (["--lr", "-1"], "must be"),
                      (["--plot", "/nonexistent-dir/x.png"], "no such directory")):
        with pytest.raises(SystemExit):
            example.main(bad)
        assert said in capsys.readouterr().err
