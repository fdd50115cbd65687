"""Is a config trainable? Names of the dataset, model and loss and the loss's parameters,
checked before anything is loaded (``fit``) or any trial runs (``lmfloss sweep``, also
``--dry-run``)."""

from __future__ import annotations

from lmfloss.config import TrainConfig, check_config


def check_trainable(config: TrainConfig) -> TrainConfig:
    """Check ``config`` against the registries; return it unchanged.

    Checks :func:`lmfloss.config.check_config` (values and choices), the dataset adapter
    name, the model name and its stem, the loss name, its parameter names and values (the
    loss is built for a two-class dummy count, or K classes when a parameter lists K values).

    Raises:
        ValueError: naming the key and the value, with the valid ones.
    """
    from lmfloss.data import get_adapter
    from lmfloss.losses import build_loss
    from lmfloss.models import check_model

    check_config(config)
    get_adapter(config.dataset)
    check_model(config.model, config.stem)
    lengths = [len(v) for v in config.loss_params.values() if isinstance(v, (list, tuple))]
    k = lengths[0] if lengths else 2
    try:
        build_loss(config.loss, [10 * (j + 1) for j in range(k)], **config.loss_params)
    except ValueError as exc:
        raise ValueError(f"loss {config.loss!r} with loss_params {config.loss_params}: {exc}") from None
    return config
