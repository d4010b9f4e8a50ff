"""Weight clustering (weight sharing) for Keras 3 models, with TFMOT's semantics and no wrapper layers.

TFMOT's ``cluster_weights`` refuses Keras 3 models, so this is ours. Each clustered kernel gets K
centroids (linear, k-means++ or density initialization, as TFMOT's ``CentroidInitialization``)
and every weight an assignment to one of them. The kernel variable itself holds the clustered
values: after every training batch a callback moves each centroid by the mean of the updates its
weights received (the gradient gathered per cluster, applied through the optimizer's step) and
writes the centroids back, so between batches a kernel has at most K distinct values. Nothing
wraps the layers, so stripping is a plain copy, and saving, loading and export work as usual.

Sparsity-preserving clustering keeps zero as a fixed centroid of its own: a pruned weight stays
exactly zero (the K includes it). Cluster-preserving QAT clusters the quantization-aware model's
kernels again with the same K: a kernel that was not changed keeps its values and assignments,
and one with batch norm folded in (its channels scaled apart) gets K values for the whole kernel
again, so the int8 file holds at most K codes per kernel (see quantization's shared ranges).
"""

import keras
import numpy as np

from bigmodels.compress.pruning import KINDS, prunable_weights, strip_pruning

INITIALIZATIONS = ("linear", "kmeans++", "density")


def initial_centroids(values: np.ndarray, count: int, method: str, seed: int = 0) -> np.ndarray:
    """``count`` centroids for the weights ``values`` (TFMOT's CentroidInitialization).

    linear: evenly spaced between the smallest and largest weight; density: at evenly spaced
    quantiles (more centroids where weights are dense); kmeans++: each next centroid drawn with
    probability proportional to the squared distance to the nearest chosen one.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if method == "linear":
        return np.linspace(flat.min(), flat.max(), count)
    if method == "density":
        return np.quantile(flat, (np.arange(count) + 0.5) / count)
    if method != "kmeans++":
        raise ValueError(f"unknown centroid initialization '{method}'; choose {', '.join(INITIALIZATIONS)}")
    generator = np.random.default_rng(seed)
    centroids = [flat[generator.integers(len(flat))]]
    for _ in range(count - 1):
        distance = np.min((flat[:, None] - np.asarray(centroids)[None, :]) ** 2, axis=1)
        total = distance.sum()
        pick = generator.choice(len(flat), p=distance / total) if total > 0 else generator.integers(len(flat))
        centroids.append(flat[pick])
    return np.sort(np.asarray(centroids))


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The index of each weight's nearest centroid."""
    return np.argmin(np.abs(np.asarray(values)[..., None] - centroids), axis=-1)


def check_cluster_count(clusters: int, sizes: list[int]) -> None:
    """Refuses a count that cannot compress (1 cluster) or exceeds the weights of a kernel."""
    if clusters < 2:
        raise ValueError(f"--clusters must be at least 2 (1 cluster is a constant kernel), got {clusters}")
    if sizes and clusters > min(sizes):
        raise ValueError(
            f"--clusters {clusters} is more than the {min(sizes)} weights of the smallest clustered "
            f"kernel; use at most {min(sizes)} or raise --min-weights"
        )


class ClusterKeeper(keras.callbacks.Callback):
    """Keeps kernels clustered (and zeros zero) through training: after each batch every cluster's
    weights are replaced by their mean, which moves the shared value by the mean update.

    Args:
        entries: (variable, cluster id per weight or None, fixed-zero mask or None) per kernel;
            ids None keeps only the zeros (pruning-preserving fine-tuning).
        after_batch: called after the kernels are written (QAT refreshes its kernel ranges).
    """

    def __init__(self, entries, after_batch=None):
        super().__init__()
        self.entries, self.after_batch = entries, after_batch

    def project(self) -> None:
        for variable, ids, zeros in self.entries:
            values = np.asarray(variable.numpy())
            if ids is not None:
                sums = np.bincount(ids.ravel(), weights=values.ravel().astype(np.float64))
                counts = np.maximum(np.bincount(ids.ravel()), 1)
                values = (sums / counts)[ids].astype(values.dtype)
            if zeros is not None:
                values = np.where(zeros, 0, values).astype(values.dtype)
            variable.assign(values)
        if self.after_batch:
            self.after_batch()

    def on_train_batch_end(self, batch, logs=None):
        self.project()


def cluster_kernels(model, clusters: int, *, method="kmeans++", kinds=KINDS, min_weights=0,
                    preserve_sparsity=True, seed=0) -> tuple[ClusterKeeper, list[dict]]:  # fmt: skip
    """Clusters the model's kernels in place; returns the callback that keeps them clustered
    while fine-tuning, and the plan (per kernel: path, shape, clusters, zero centroid or not).

    With ``preserve_sparsity`` a kernel that has zeros keeps them as one fixed centroid and gets
    ``clusters - 1`` trained ones, so it still holds at most ``clusters`` distinct values.
    """
    if method not in INITIALIZATIONS:
        raise ValueError(f"unknown centroid initialization '{method}'; choose {', '.join(INITIALIZATIONS)}")
    chosen = [e for e in prunable_weights(model, kinds) if int(np.prod(e[1].shape)) >= min_weights]
    if not chosen:
        raise ValueError(f"the model has no kernel of kind(s) {', '.join(kinds)} to cluster")
    check_cluster_count(clusters, [int(np.prod(variable.shape)) for _, variable, _, _ in chosen])
    entries, plan = [], []
    for path, variable, _, _ in chosen:
        values = np.asarray(variable.numpy())
        zeros = (values == 0) if preserve_sparsity and np.any(values == 0) else None
        live = values[~zeros] if zeros is not None else values.ravel()
        count = min(clusters - (zeros is not None), len(np.unique(live)))
        centroids = initial_centroids(live, count, method, seed)
        ids = assign(values, centroids)
        if zeros is not None:  # the zeros are a group of their own: no centroid's mean counts them
            ids = np.where(zeros, count, ids)
        entries.append((variable, ids, zeros))
        clusters_here = int(count + (zeros is not None))
        plan.append(
            {
                "weight": path,
                "shape": list(values.shape),
                "clusters": clusters_here,
                "zero_centroid": zeros is not None,
            }
        )
    keeper = ClusterKeeper(entries)
    keeper.project()  # the first projection: every weight takes its centroid's value
    return keeper, plan


def zero_keeper(model, after_batch=None) -> ClusterKeeper:
    """Keeps every kernel's zeros exactly zero through further training (pruning-preserving)."""
    entries = []
    for _, variable, _, _ in prunable_weights(model):
        values = np.asarray(variable.numpy())
        if np.any(values == 0):
            entries.append((variable, None, values == 0))
    return ClusterKeeper(entries, after_batch)


def distinct_values(model, kinds=KINDS) -> list[dict]:
    """Per kernel: path and the number of distinct values (what clustering bounds)."""
    return [
        {"weight": path, "distinct": int(len(np.unique(np.asarray(variable.numpy()))))}
        for path, variable, _, _ in prunable_weights(model, kinds)
    ]


# A clustered model's kernels already hold the shared values and nothing wraps its layers, so
# stripping is the same plain copy as after pruning.
strip_clustering = strip_pruning
