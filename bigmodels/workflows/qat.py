"""The QAT workflow: fine-tune a trained run with fake quantization into a new run folder whose
export is a full-int8 TFLite file with the learned ranges."""

from pathlib import Path

from bigmodels.compress.clustering import cluster_kernels, zero_keeper
from bigmodels.compress.quantization import (
    describe_quantization,
    quantize_model,
    refresh_kernel_ranges,
)
from bigmodels.run_folder import read_run
from bigmodels.workflows.derived import FineTune, fine_tune_run

QAT_EPOCHS = 3
# Fine-tuning rate as a share of the source run's. QAT alone only adapts the weights to int8: on
# the MNIST CNN a hundredth kept the int8 file at 99.46% (a tenth: 99.39%, PTQ: 99.46%). After
# clustering, the folded kernels are clustered again and their shared values must move: there the
# source's own rate gave 99.17% at 9,830 B gzip (a tenth: 99.10%).
QAT_LEARNING_RATE_SHARE = 0.01
CLUSTERED_QAT_LEARNING_RATE_SHARE = 1.0
KEPT_START_UNLESS_BEATEN = (
    "the best validation epoch if it beats the calibrated start by more than one standard error, "
    "else the start"
)


def qat_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = QAT_EPOCHS,
    learning_rate: float | None = None,
    overwrite: bool = False,
    verbose: int = 1,
) -> tuple[Path, dict]:
    """Quantization-aware fine-tuning of a trained run (pruned and clustered runs included).

    The new run's model.keras is the quantization-aware model (fake-quant ops; batch norm folded
    in the CNN classifiers): for a chain of layers its Keras outputs are what the int8 file
    computes, to within one output quantization step; in the text models and the DCGAN's
    generator, layers with sublayers (a Transformer block) are simulated at their boundaries.
    ``export_run`` converts it with the learned ranges (full int8 only). The ranges start from a
    calibration on training examples (latent vectors for a generator), as PTQ's, and a classifier
    keeps that start unless an epoch beats it on validation by more than one standard error, so
    fine-tuning that does not clearly help leaves PTQ's model (a clustered run keeps its last
    epoch: its start, clustered again, is not PTQ's). A pruned run's zeros stay zero; a clustered
    run keeps at most its K values per kernel (kernels with batch norm folded in are clustered
    again, one int8 range per kernel, so the file holds at most K codes per kernel).

    Args:
        run_dir: a finished run (classifier or DCGAN) whose layers QAT can simulate (not
            recurrent layers or Lambda).
        out_dir: the new run folder.
        epochs: fine-tuning epochs.
        learning_rate: peak learning rate (default: a hundredth of the run's, or the run's own for
            a clustered run, whose shared values are fitted again).

    Example:
        qat_dir, metrics = qat_run("saved_models/mnist_80", "saved_models/mnist_80_qat")
        export_run(qat_dir)  # export/model_int8.tflite, scales from the learned ranges
    """

    _, source_config = read_run(run_dir)
    clustered = "clustering" in source_config

    def plan(task, model, steps, config):
        if "qat" in config:
            raise ValueError(f"'{run_dir}' is already quantization-aware; pass the run it was made from")
        clustering = config.get("clustering")
        trained, qat = task.with_quantization_aware(
            model, lambda network: quantize_model(network, shared_ranges=clustering is not None)
        )
        if clustering:  # cluster-preserving: the same K per kernel, folded kernels clustered again
            keeper, _ = cluster_kernels(
                qat, clustering["clusters"], kinds=clustering["kinds"], min_weights=clustering["min_weights"],
                seed=config["training"].get("seed", 0),
            )  # fmt: skip
        else:
            keeper = zero_keeper(qat)  # a pruned run's zeros stay zero
        keeper.after_batch = lambda: refresh_kernel_ranges(trained)
        keeper.after_batch()
        # A plain or pruned classifier's calibrated start is what PTQ exports: it is kept unless an
        # epoch beats it clearly. A clustered run's start has its folded kernels clustered again, a
        # model nobody measured: its shared values are refitted and the last epoch is kept.
        keep_best = clustering is None and task.keeps_best_epoch
        record = {**describe_quantization(qat), "shared_ranges": clustering is not None,
                  "preserved_kernels": len(keeper.entries),
                  "start": "ranges calibrated on the export's PTQ calibration inputs",
                  "kept": KEPT_START_UNLESS_BEATEN if keep_best else "the last epoch"}  # fmt: skip

        def calibrate(dataset):
            task.calibrate_quantized(trained, qat, dataset)
            refresh_kernel_ranges(trained)

        return FineTune(trained, [keeper], record, before_fit=calibrate, keep_best=keep_best)

    return fine_tune_run(
        run_dir, out_dir, key="qat", from_key="qat_from", plan=plan, epochs=epochs,
        learning_rate=learning_rate, overwrite=overwrite, verbose=verbose,
        learning_rate_share=CLUSTERED_QAT_LEARNING_RATE_SHARE if clustered else QAT_LEARNING_RATE_SHARE,
    )  # fmt: skip
