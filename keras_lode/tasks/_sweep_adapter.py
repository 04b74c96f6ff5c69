"""`TaskSpec` -> `keras_lode.sweep.Task` (kept apart so `keras_lode.tasks` loads without sweep)."""

from __future__ import annotations


def to_sweep_task(spec):
    """The `keras_lode.sweep.Task` that runs `spec` (same model, data, optimizer, P, grid)."""
    from keras_lode.sweep import Task

    return Task(
        name=spec.name,
        build_model=spec.build_model,
        load_data=spec.load_data,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        points_per_epoch=spec.points_per_epoch,
        make_optimizer=spec.make_optimizer,
        # RunRecorder's "accuracy" is per position for sequence outputs, i.e. next-token
        # accuracy for the text task; the task's own name for it goes into the metadata.
        metric="accuracy",
        peak_lrs=tuple(spec.lr_grid),
        seeds=(0, 1),
        meta={"scale": spec.scale, "metric_name": spec.metric_name},
    )
