"""Is a config trainable? Names of the dataset, model and loss and the loss's parameters,
checked before anything is loaded (``fit``) or any trial runs (``lmfloss sweep``, also
``--dry-run``)."""

from __future__ import annotations

from lmfloss.config import TrainConfig, check_config
from lmfloss.data.adapters import resolve_config
from lmfloss.models import check_model
from lmfloss.task import get_task


def check_trainable(config: TrainConfig) -> TrainConfig:
    """Check ``config`` against the registries; return it unchanged.

    Checks :func:`lmfloss.config.check_config` (values and choices), the dataset adapter
    name and the task it gives, the model name and its stem, the loss name (for the task),
    its parameter names and values (the loss is built for a two-class dummy count, or K
    classes when a parameter lists K values).

    Returns:
        ``config`` with the task's keys settled (:func:`lmfloss.data.adapters.resolve_config`:
        a multi-label dataset's task, its ``score_by`` and selection metric).

    Raises:
        ValueError: naming the key and the value, with the valid ones.
    """
    check_config(config)
    config = resolve_config(config)
    check_model(config.model, config.stem)
    lengths = [len(v) for v in config.loss_params.values() if isinstance(v, (list, tuple))]
    k = lengths[0] if lengths else 2
    task = get_task(config)
    try:
        task.build_loss(config.loss, task.example_counts(k), **config.loss_params)
    except ValueError as exc:
        if "tasks only" in str(exc):
            raise ValueError(str(exc)) from None
        raise ValueError(f"loss {config.loss!r} with loss_params {config.loss_params}: {exc}") from None
    return config
