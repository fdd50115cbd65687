"""Training and evaluation (issue 4): ``fit`` a config into a run directory, read it back.

```python
from lmfloss.config import TrainConfig
from lmfloss.train import fit, load_run

result = fit(TrainConfig(dataset="synthetic", model="resnet18", weights="none",
                         image_size=32, epochs=2), "runs/demo")
run = load_run("runs/demo", checkpoint="best", device="cpu")
```
Modules: ``engine`` (train_one_epoch, evaluate, devices, signals), ``fit`` (the run),
``rundir`` (finished/unfinished run directories, config checks), ``loaders`` (datasets and
DataLoaders per rank), ``checkpoint`` (atomic writes, RNG state), ``distributed``
(torchrun/DDP), ``outputs`` (CSV/JSON/PNG files), ``run`` (load_run, evaluate_run,
predict), ``demo``.
"""

from lmfloss.config import check_config
from lmfloss.train.engine import (
    NonFiniteLossError,
    TrainingInterrupted,
    evaluate,
    resolve_device,
    train_one_epoch,
)
from lmfloss.train.fit import RunResult, fit
from lmfloss.train.run import Run, evaluate_run, load_run, predict
from lmfloss.train.rundir import config_from_run

__all__ = [
    "NonFiniteLossError",
    "Run",
    "RunResult",
    "TrainingInterrupted",
    "check_config",
    "config_from_run",
    "evaluate",
    "evaluate_run",
    "fit",
    "load_run",
    "predict",
    "resolve_device",
    "train_one_epoch",
]
