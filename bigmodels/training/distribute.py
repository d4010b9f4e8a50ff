"""Training on more than one device or machine with tf.distribute.

* ``default``: one device (TensorFlow's default strategy).
* ``mirrored``: ``MirroredStrategy`` over every GPU of this machine, or, without GPUs, over its
  logical CPU devices (``logical_cpus`` splits the CPU into several, which is how the tests and a
  laptop can exercise the multi-device path).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the machines listed in the ``TF_CONFIG``
  environment variable; the chief (task "chief", or worker 0 when there is none) writes the run
  folder, the other workers write to a temporary folder that is deleted.

The strategy must exist before TensorFlow runs any operation, so ``make_strategy`` is the first
thing a training run calls.
"""

import json
import os

import tensorflow as tf
from keras.src.backend.tensorflow import trainer

STRATEGIES = ("default", "mirrored", "multi_worker")


def _split_cpu(count: int) -> None:

    if count < 1:
        raise ValueError(f"--logical-cpus must be at least 1, got {count}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:  # TensorFlow already started its devices in this process
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise ValueError(
                "--logical-cpus must be set before TensorFlow starts; pass it on the command line"
            ) from error


def make_strategy(name: str = "default", *, logical_cpus: int | None = None):
    """Returns the tf.distribute strategy for ``name`` (see the module docstring)."""

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    if logical_cpus:
        _split_cpu(logical_cpus)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "--strategy multi_worker needs the TF_CONFIG environment variable (the cluster and this "
            "machine's task); see the README's multi-machine recipe"
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); see the README's multi-machine recipe"
        ) from error
    patch_keras_for_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True on the one process that writes outputs (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def describe(strategy, name: str) -> dict:
    """What config.json records about how a run was distributed."""
    return {"name": name, "replicas": int(strategy.num_replicas_in_sync)}


def patch_keras_for_multi_worker() -> None:
    """Works around two Keras 3 bugs that stop ``fit`` under MultiWorkerMirroredStrategy.

    keras-team/keras#20585 and tensorflow/tensorflow#72388: Keras 3.15's TensorFlow trainer
    (1) all-reduces the first data batch with a MEAN to build the model symbolically, which fails
    on per-replica values, and (2) reduces the scalar step logs with ``axis=0``, which fails on a
    rank-0 tensor. Both are patched only in processes that train with ``multi_worker``: the build
    uses this worker's local batch (its shapes are all the build needs), and scalar logs are
    reduced without an axis.
    """

    if getattr(trainer, "_bigmodels_patched", False):
        return
    if not hasattr(trainer, "reduce_per_replica") or not hasattr(
        trainer.TensorFlowTrainer, "_maybe_symbolic_build"
    ):
        return  # a Keras whose trainer changed shape: nothing here to patch
    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):

            def reduce(value):
                rank = len(strategy.experimental_local_results(value)[0].shape)
                return strategy.reduce("MEAN", value, axis=0 if rank else None)

            return tf.nest.map_structure(reduce, values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            local = tf.nest.map_structure(
                lambda value: (
                    self.distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value
                ),
                batch,
            )
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=local)

    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._bigmodels_patched = True
