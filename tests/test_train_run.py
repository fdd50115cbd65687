"""A loaded run (lmfloss.train.run): predict preprocesses images as training did."""

from __future__ import annotations

import numpy as np
import torch

from lmfloss.config import TrainConfig
from lmfloss.data import dataset_for, splits_for
from lmfloss.data.dataset import resize_array
from lmfloss.train.run import Run


def test_predict_preprocessing_is_the_training_resize_for_array_datasets():
    """Run.preprocess resized arrays with PIL while array datasets train on torch's
    antialiased resize (pixels off by one in ~17% of places): now one function."""
    config = TrainConfig(dataset="synthetic", image_size=40, model="resnet18", weights="none")
    run = Run(run_dir=None, config=config, model=None, class_names=[], epoch=0, device=torch.device("cpu"))
    splits = splits_for(config)
    record = splits.records("test")[3]
    raw = splits.load_image(record)  # 64 px, as stored
    served = run.preprocess(raw)
    trained = dataset_for(config, "test", splits)[3][0]
    assert served.shape == trained.shape == (3, 40, 40)
    assert torch.equal(served, trained)
    # and that is torch's antialiased bilinear, not PIL's
    expected = resize_array(raw[None], 40)[0].transpose(2, 0, 1) / 255.0
    assert np.allclose(served.numpy(), expected, atol=1e-7)
