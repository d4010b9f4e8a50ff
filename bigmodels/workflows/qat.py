"""The QAT workflow: fine-tune a trained run with fake quantization into a new run folder whose
export is a full-int8 TFLite file with the learned ranges."""

from pathlib import Path

from bigmodels.compress.clustering import cluster_kernels, zero_keeper
from bigmodels.compress.quantization import folded_layers, quantize_model, refresh_kernel_ranges
from bigmodels.workflows.derived import FineTune, fine_tune_run

QAT_EPOCHS = 3


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

    The new run's model.keras is the quantization-aware model (batch norm folded, fake-quant ops):
    its Keras outputs are what the int8 file computes, to within one output quantization step, and
    ``export_run`` converts it with the learned ranges (full int8 only). A pruned run's zeros stay
    zero; a clustered run keeps at most its K values per kernel (kernels with batch norm folded in
    are clustered again, one int8 range per kernel, so the file holds at most K codes per kernel).

    Args:
        run_dir: a finished classifier run whose model is a chain of layers QAT can simulate.
        out_dir: the new run folder.
        epochs: fine-tuning epochs.
        learning_rate: peak learning rate (default: a tenth of the run's).

    Example:
        qat_dir, metrics = qat_run("saved_models/mnist_80", "saved_models/mnist_80_qat")
        export_run(qat_dir)  # export/model_int8.tflite, scales from the learned ranges
    """

    def plan(task, model, steps, config):
        if task.pruning_target(model) is not model:
            raise ValueError(
                f"quantization-aware training of a {task.name} run is not available (it simulates "
                "classifiers); export this run with PTQ (--quantization int8) instead"
            )
        if "qat" in config:
            raise ValueError(f"'{run_dir}' is already quantization-aware; pass the run it was made from")
        clustering = config.get("clustering")
        qat = quantize_model(model, shared_ranges=clustering is not None)
        if clustering:  # cluster-preserving: the same K per kernel, folded kernels clustered again
            keeper, _ = cluster_kernels(
                qat, clustering["clusters"], kinds=clustering["kinds"], min_weights=clustering["min_weights"],
                seed=config["training"].get("seed", 0),
            )  # fmt: skip
        else:
            keeper = zero_keeper(qat)  # a pruned run's zeros stay zero
        keeper.after_batch = lambda: refresh_kernel_ranges(qat)
        keeper.after_batch()
        record = {"scheme": "int8: per-channel symmetric conv kernels, per-tensor symmetric dense "
                  "kernels, per-tensor asymmetric activations, batch norm folded",
                  "folded_batch_norms": [layer.name for layer in folded_layers(qat)],
                  "shared_ranges": clustering is not None,
                  "preserved_kernels": len(keeper.entries)}  # fmt: skip
        return FineTune(qat, [keeper], record)

    return fine_tune_run(
        run_dir, out_dir, key="qat", from_key="qat_from", plan=plan, epochs=epochs,
        learning_rate=learning_rate, learning_rate_share=0.1, overwrite=overwrite, verbose=verbose,
    )  # fmt: skip
