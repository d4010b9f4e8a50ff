"""Losses saved with a model (model.keras names them, so they are registered for loading)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bigmodels")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against integer labels, with ``label_smoothing`` of the
    target mass spread evenly over the classes (Keras's sparse loss has no smoothing). Soft
    labels (one row of class weights per example, as mixup makes) are taken as they are."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return keras.losses.categorical_crossentropy(
            one_hot_labels(y_true, y_pred), y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _soft(y_true, y_pred) -> bool:
    """Labels with one column per class (mixup's soft labels), not one integer per example."""
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1] != 1


def one_hot_labels(y_true, y_pred):
    """Integer labels as one-hot rows; soft labels as they are."""
    if _soft(y_true, y_pred):
        return y_true
    return ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1])


def integer_labels(y_true, y_pred):
    """Soft labels as their strongest class; integer labels as they are."""
    return ops.argmax(y_true, axis=-1) if _soft(y_true, y_pred) else y_true


@keras.saving.register_keras_serializable(package="bigmodels")
def label_accuracy(y_true, y_pred):
    """Accuracy against integer labels or against soft labels' strongest class."""
    return keras.metrics.sparse_categorical_accuracy(integer_labels(y_true, y_pred), y_pred)


def label_accuracy_metric():
    """``label_accuracy`` under the name "accuracy" (history.csv's and early stopping's key)."""
    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")
