"""``lmfloss losses`` prints the registry; a bad name is one line on stderr and exit 2."""

from __future__ import annotations

from lmfloss.cli import main
from lmfloss.losses import LOSSES, loss_parameters


def test_losses_lists_every_loss_with_parameters(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert names == list(LOSSES)
    assert "gamma=1.5" in out and "scale=30.0" in out and "drw_epoch=None" in out
    for name in LOSSES:
        for param in loss_parameters(name):
            assert f"{param}=" in out


def test_losses_single_name(capsys):
    assert main(["losses", "lmf"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lmf ") and "alpha=1.0, beta=1.0" in out and "ldam " not in out


def test_losses_unknown_name(capsys):
    assert main(["losses", "lfm"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "unknown loss 'lfm'" in err and "'lmf'" in err
