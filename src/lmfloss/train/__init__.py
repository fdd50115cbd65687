"""Training and evaluation (issue 4): ``fit`` a config into a run directory, read it back.

```python
from lmfloss.config import TrainConfig
from lmfloss.train import fit, load_run

result = fit(TrainConfig(dataset="synthetic", model="resnet18", weights="none",
                         image_size=32, epochs=2), "runs/demo")
run = load_run("runs/demo", checkpoint="best", device="cpu")
```
Modules: ``engine`` (train_one_epoch, evaluate, devices, signals), ``fit`` (the run),
``checks`` (is a config trainable?), ``loaders`` (datasets and DataLoaders per rank),
``checkpoint`` (torch checkpoints, RNG state), ``distributed`` (torchrun/DDP), ``plots``
(the run's pictures), ``run`` (load_run, evaluate_run, predict), ``demo``. The run
directory's format belongs to :mod:`lmfloss.rundir`.
"""

from lmfloss.config import check_config
from lmfloss.errors import TrainingInterrupted
from lmfloss.train.engine import (
    NonFiniteLossError,
    evaluate,
    resolve_device,
    train_one_epoch,
)
from lmfloss.train.fit import RunResult, fit
from lmfloss.train.run import Run, evaluate_run, load_run, predict

__all__ = [
    "NonFiniteLossError",
    "Run",
    "RunResult",
    "TrainingInterrupted",
    "check_config",
    "evaluate",
    "evaluate_run",
    "fit",
    "load_run",
    "predict",
    "resolve_device",
    "train_one_epoch",
]
