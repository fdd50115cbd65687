"""Class names (lmfloss.data.records): an order that does not depend on the hash seed, and
labels that look alike or look missing named, not silently kept apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from data_helpers import csv_dataset
from lmfloss.data import load_splits
from lmfloss.errors import DataError


def test_class_order_is_independent_of_hash_seed(tmp_path):
    code = ("import json; from lmfloss.data.records import order_class_names as o; "
            "print(json.dumps([o(['10', '2', '1', '03'], 't'), "
            "o(['nevus', 'Melanoma', 'bcc', 'akiec', 'vasc', 'df'], 't')]))")
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, timeout=120, check=True)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == [["1", "2", "03", "10"], ["Melanoma", "akiec", "bcc", "df", "nevus", "vasc"]]

    from lmfloss.data.records import order_class_names

    with pytest.raises(DataError, match=r"'01' and '1'"):
        order_class_names(["1", "01", "2"], "t")
    table = csv_dataset(tmp_path, n=2, labels=("1", "01", "2"))
    with pytest.raises(DataError, match=r"'01' and '1'.*same number") as info:
        load_splits("csv", csv=table)
    assert str(table) in str(info.value)


def test_labels_differing_by_case_or_looking_missing_warn(tmp_path, caplog):
    table = csv_dataset(tmp_path, n=2, labels=("Benign", "benign", "nan", "malignant"))
    with caplog.at_level("WARNING"):
        splits = load_splits("csv", csv=table)
    assert splits.class_names == ["Benign", "benign", "malignant", "nan"]  # kept, in code-point order
    messages = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name == "lmfloss.data.records"]
    case = [m for m in messages if "differ only by case" in m]
    missing = [m for m in messages if "look like missing values" in m]
    assert len(case) == 1 and "'Benign' and 'benign'" in case[0]
    assert len(missing) == 1 and "'nan'" in missing[0]
    assert not any("'malignant'" in m for m in messages)
