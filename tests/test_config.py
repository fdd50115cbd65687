"""TrainConfig: a fact about a key (its role) declared once, on the field."""

from __future__ import annotations

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
