"""The cluster workflow: fine-tune a trained run with weight clustering into a new run folder."""

from pathlib import Path

from bigmodels.compress.clustering import check_cluster_count, cluster_kernels, distinct_values
from bigmodels.compress.pruning import KINDS
from bigmodels.workflows.derived import FineTune, fine_tune_run

CLUSTER_EPOCHS = 4


def cluster_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    clusters: int = 16,
    initialization: str = "kmeans++",
    epochs: int = CLUSTER_EPOCHS,
    learning_rate: float | None = None,
    kinds=KINDS,
    min_weights: int = 0,
    preserve_sparsity: bool = True,
    overwrite: bool = False,
    verbose: int = 1,
) -> tuple[Path, dict]:
    """Clusters a trained run's kernels (TFMOT's cluster_weights semantics) and fine-tunes the
    shared values into a new run folder with plain weights (at most ``clusters`` distinct values
    per kernel; a pruned run's zeros stay exactly zero, zero being one of the ``clusters``).

    Args:
        run_dir: a finished run (for a DCGAN the generator is clustered).
        out_dir: the new run folder.
        clusters: shared values per kernel (at least 2, at most the smallest kernel's size).
        initialization: "kmeans++", "linear" or "density" (TFMOT's CentroidInitialization).
        epochs: fine-tuning epochs of the centroids.
        learning_rate: peak learning rate (default: a tenth of the run's).
        kinds: layer kinds whose kernels are clustered.
        min_weights: kernels with fewer weights stay as they are.
        preserve_sparsity: keep zeros as a fixed centroid (a pruned run stays as sparse).

    Example:
        clustered_dir, metrics = cluster_run("saved_models/mnist_80", "saved_models/mnist_80_c16")
    """
    check_cluster_count(clusters, [])  # before minutes of loading

    def plan(task, model, steps, config):
        target = task.pruning_target(model)
        keeper, kernels = cluster_kernels(
            target, clusters, method=initialization, kinds=kinds, min_weights=min_weights,
            preserve_sparsity=preserve_sparsity, seed=config["training"].get("seed", 0),
        )  # fmt: skip
        record = {"clusters": clusters, "initialization": initialization, "kinds": list(kinds),
                  "min_weights": min_weights, "preserve_sparsity": preserve_sparsity,
                  "kernels": kernels}  # fmt: skip
        clustered = {entry["weight"] for entry in kernels}

        def measure(saved):
            counts = [
                e for e in distinct_values(task.pruning_target(saved), kinds) if e["weight"] in clustered
            ]
            return {"distinct_values_per_weight": counts}

        return FineTune(model, [keeper], record, measure)

    return fine_tune_run(
        run_dir, out_dir, key="clustering", from_key="clustered_from", plan=plan, epochs=epochs,
        learning_rate=learning_rate, learning_rate_share=0.1, overwrite=overwrite, verbose=verbose,
    )  # fmt: skip
