"""TrainConfig: a fact about a key (its role) declared once, on the field."""

from __future__ import annotations

import pytest

from lmfloss.config import TrainConfig, diff_configs, keys_with_role


def test_key_roles_are_one_list_for_resume_sweep_and_report():
    runtime = keys_with_role("runtime")
    # The three copies disagreed on these: csv and root are where the data is (its identity is
    # the fingerprint), skip_bad_images changes what is trained, epochs may grow on resume only.
    assert {"csv", "root", "cache_dir", "device", "workers", "bootstrap"} <= runtime
    assert "skip_bad_images" not in runtime and "epochs" not in runtime
    assert keys_with_role("resumable") == {"epochs"}
    a = TrainConfig(csv="/a/x.csv", epochs=5).to_dict()
    b = TrainConfig(csv="/b/x.csv", epochs=9).to_dict()
    assert diff_configs(a, b, ignore_roles=("runtime", "resumable")) == []
    assert [k for k, *_ in diff_configs(a, b, ignore_roles=("runtime",))] == ["epochs"]
    c = TrainConfig(skip_bad_images=True).to_dict()
    assert [k for k, *_ in diff_configs(TrainConfig().to_dict(), c, ignore_roles=("runtime", "resumable"))] == [
        "skip_bad_images"]


def test_exponent_numbers_read_as_numbers_in_files_set_and_sweeps(tmp_path):
    """PyYAML (YAML 1.1) reads ``5e-4`` as a string; a user means a number, everywhere."""
    from lmfloss.config import build_config, load_config_file, parse_key_values
    from lmfloss.sweep.parse import yaml_scalar

    path = tmp_path / "c.yaml"
    path.write_text("weight_decay: 5e-4\nlr: 1E-3\nepochs: 3\nroot: 1e-folder\n")
    assert load_config_file(path) == {"weight_decay": 0.0005, "lr": 0.001, "epochs": 3, "root": "1e-folder"}
    assert parse_key_values(["lr=3e-4", "epochs=2e1", "seed=7"]) == {"lr": 0.0003, "epochs": 20.0, "seed": 7}
    assert yaml_scalar("5e-4") == 0.0005 and yaml_scalar("5e") == "5e"
    config = build_config(path, {"lr": None})
    assert (config.weight_decay, config.lr) == (0.0005, 0.001)


def test_a_config_from_a_pipe_or_device_reads(tmp_path):
    """bash's --config <(echo ...) is a pipe and /dev/null a device: both read as files."""
    import os
    import threading

    from lmfloss.config import load_config_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("epochs: 2\n"))
    writer.start()
    assert load_config_file(fifo) == {"epochs": 2}
    writer.join(timeout=10)
    assert load_config_file("/dev/null") == {}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config_file(tmp_path / "missing.yaml")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_config_file(tmp_path)


def test_a_data_csv_that_is_a_pipe_is_refused_in_one_line(tmp_path):
    """A dataset CSV is read more than once (identity, split), so a pipe would hang: refused."""
    import os

    from lmfloss.fileio import read_csv_rows

    fifo = tmp_path / "rows"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a pipe or device, not a file"):
        read_csv_rows(fifo, ["path"])
