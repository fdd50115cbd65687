"""cam_summary aggregation and run labels (no model needed)."""

from __future__ import annotations

import math

import pytest

from lmfloss.cam.selection import round_robin, run_labels
from lmfloss.cam.tables import summarize, write_csv


def _row(run, cls, hit, energy, chance, correct=True):
    return {"run": run, "target": "pred", "true_class": cls, "correct": correct,
            "pointing_hit": hit, "energy_in_box": energy, "box_area_fraction": chance,
            "iou_at_half_max": 0.5, "best_iou": 0.6}


def test_summary_per_class_and_all_with_unscored_rows(tmp_path):
    nan = math.nan
    rows = [
        _row("ce", "a", 1.0, 0.6, 0.2),
        _row("ce", "a", 0.0, 0.2, 0.2, correct=False),
        _row("ce", "b", 1.0, 0.9, 0.3),
        _row("ce", "b", nan, nan, nan),  # no annotation: counted, not scored
        _row("lmf", "a", 0.0, 0.1, 0.2),
    ]
    summary = summarize(rows, ["a", "b", "c"])
    assert [(s["run"], s["class"]) for s in summary] == [
        ("ce", "a"), ("ce", "b"), ("ce", "all"), ("lmf", "a"), ("lmf", "all")]
    ce_all = summary[2]
    assert ce_all["n_images"] == 4 and ce_all["n_scored"] == 3
    assert ce_all["accuracy"] == pytest.approx(3 / 4)
    assert ce_all["pointing_hit_rate"] == pytest.approx(2 / 3)
    assert ce_all["energy_in_box"] == pytest.approx((0.6 + 0.2 + 0.9) / 3)
    assert ce_all["chance"] == pytest.approx(0.7 / 3)
    assert ce_all["energy_over_chance"] == pytest.approx((1.7 / 3) / (0.7 / 3))
    ce_b = summary[1]
    assert ce_b["n_scored"] == 1 and ce_b["energy_in_box"] == pytest.approx(0.9)
    path = write_csv(tmp_path / "s.csv", [{"x": nan, "y": True, "z": 0.123456789}], ["x", "y", "z"])
    assert path.read_text().splitlines() == ["x,y,z", ",1,0.123457"]


def test_run_labels_are_unique(tmp_path):
    a, b = tmp_path / "s1" / "ce", tmp_path / "s2" / "ce"
    assert run_labels([a, b]) == ["s1/ce", "s2/ce"]
    assert run_labels([a, tmp_path / "lmf"]) == ["ce", "lmf"]


def test_round_robin_spreads_over_classes():
    class R:
        def __init__(self, i, label):
            self.id, self.label = f"r{i}", label

    records = [R(i, 0) for i in range(10)] + [R(10, 1), R(11, 2), R(12, 2)]
    chosen = round_robin(records, 5)
    assert [r.id for r in chosen] == ["r0", "r10", "r11", "r1", "r12"]


def test_summary_baselines_and_faithfulness():
    nan = math.nan
    rows = [
        {**_row("lmf", "a", 1.0, 0.6, 0.2), "pointing_hit_shuffled": 0.0, "energy_in_box_shuffled": 0.3,
         "road": 0.4, "road_random": 0.1, "conf_drop": 0.5, "conf_drop_random": 0.2,
         "layer": "layer2.1", "map_size": "8x8", "tolerance": 4.2857, "group": "lmf", "seed": 3},
        {**_row("lmf", "a", 1.0, 0.4, 0.2), "pointing_hit_shuffled": 1.0, "energy_in_box_shuffled": 0.1,
         "road": 0.2, "road_random": 0.0, "conf_drop": 0.3, "conf_drop_random": 0.0,
         "layer": "layer2.1", "map_size": "8x8", "tolerance": 4.2857, "group": "lmf", "seed": 3},
        # Not annotated: no localisation, but its faithfulness counts.
        {**_row("lmf", "a", nan, nan, nan), "pointing_hit_shuffled": nan, "energy_in_box_shuffled": nan,
         "road": 0.0, "road_random": 0.2, "conf_drop": 0.1, "conf_drop_random": 0.1,
         "layer": "layer2.1", "map_size": "8x8", "tolerance": 4.2857, "group": "lmf", "seed": 3},
    ]
    (row, _all) = summarize(rows, ["a"])
    assert (row["layer"], row["map_size"], row["group"], row["seed"]) == ("layer2.1", "8x8", "lmf", 3)
    assert row["pointing_hit_rate"] == 1.0 and row["pointing_shuffled"] == pytest.approx(0.5)
    assert row["pointing_minus_shuffled"] == pytest.approx(0.5)
    assert row["pointing_over_shuffled"] == pytest.approx(2.0)
    assert row["energy_minus_shuffled"] == pytest.approx(0.5 - 0.2)
    assert row["energy_over_shuffled"] == pytest.approx(0.5 / 0.2)
    assert row["road"] == pytest.approx(0.2) and row["road_random"] == pytest.approx(0.1)
    assert row["road_minus_random"] == pytest.approx(0.1)
    assert row["conf_drop_minus_random"] == pytest.approx(0.3 - 0.1)
    # A baseline of 0 has no ratio.
    zero = summarize([{**rows[0], "pointing_hit_shuffled": 0.0}], ["a"])[0]
    assert math.isnan(zero["pointing_over_shuffled"])
