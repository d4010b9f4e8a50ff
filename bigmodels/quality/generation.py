"""How good generated images are, measured with a classifier this package trained on the same data.

Two scores, as the Inception Score and FID do with an ImageNet network, but with a CNN trained
on the GAN's own data (Inception features mean little for 28x28 digits):

* classifier score = exp(E_x KL(p(y|x) || p(y))): high when each sample is confidently one
  class and the classes are balanced; its maximum is the number of classes.
* Fréchet distance between Gaussians fitted to the classifier's penultimate-layer features of
  real test images and of generated images: 0 when the two distributions match.
"""

import warnings

import keras
import numpy as np
from scipy import linalg


def score_parts(probabilities: np.ndarray) -> dict:
    """The two halves of the classifier score, which say why a score is low.

    The mean KL divergence between p(y|x) and p(y) equals H(p(y)) - E_x H(p(y|x)): the entropy
    of the class marginal (ln K when the classes are balanced: low means missing modes) minus
    the mean entropy of each prediction (0 when every sample is confidently one class: high
    means ambiguous or malformed samples). Entropies in nats.
    """
    probabilities = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    marginal = probabilities.mean(axis=0)
    return {
        "class_entropy": float(-(marginal * np.log(marginal)).sum()),
        "prediction_entropy": float(-(probabilities * np.log(probabilities)).sum(axis=1).mean()),
        "confident_share": float((probabilities.max(axis=1) >= 0.9).mean()),
    }


def classifier_score(probabilities: np.ndarray) -> float:
    """exp of the mean KL divergence between p(y|x) and the marginal p(y)."""
    parts = score_parts(probabilities)
    return float(np.exp(parts["class_entropy"] - parts["prediction_entropy"]))


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""

    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root, _ = linalg.sqrtm(covariance_a @ covariance_b, disp=False)
    if not np.isfinite(root).all():  # a singular product: nudge both, as the FID reference code does
        offset = np.eye(len(covariance_a)) * 1e-6
        root = linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a + covariance_b - 2.0 * root.real)
    return float(max(distance, 0.0))


def call_in_batches(model, inputs: np.ndarray, batch_size: int = 500) -> list:
    """The model's outputs on ``inputs``, batch by batch: a list of numpy arrays, one per output.

    A direct call, not ``predict_on_batch``: under a MirroredStrategy (training with
    ``--strategy mirrored``) Keras 3's predict_on_batch returns every row once per replica. Nor
    ``predict``, which leaves a tf.data pipeline running between training epochs.
    """
    batches = [
        model(inputs[start : start + batch_size], training=False)
        for start in range(0, len(inputs), batch_size)
    ]
    outputs = zip(*(batch if isinstance(batch, (list, tuple)) else [batch] for batch in batches), strict=True)
    return [np.concatenate([np.asarray(part) for part in parts]) for parts in outputs]


def _statistics(features: np.ndarray):
    return features.mean(axis=0), np.cov(features, rowvar=False)


class GeneratedImageScorer:
    """Scores uint8 images against real ones with a trained classifier.

    Args:
        classifier: a trained classification model taking uint8 images (a cnn_classifier run).
        real_images: uint8 real images (the test split) whose features are the reference.

    Example:
        scorer = GeneratedImageScorer(load_run_model(classifier_run), test_images)
        scorer.score(generated_uint8)  # {"classifier_score": 9.4, "frechet_distance": 1.8}
    """

    def __init__(self, classifier, real_images: np.ndarray, *, batch_size: int = 500):

        # The penultimate features are the input of the last (softmax) layer.
        self._network = keras.Model(classifier.input, [classifier.layers[-1].input, classifier.output])
        self.batch_size = batch_size
        self.input_shape = tuple(classifier.input_shape[1:])
        features, probabilities = self._features_and_probabilities(real_images)
        self.real_statistics = _statistics(features)
        self.real_classifier_score = classifier_score(probabilities)

    def _features_and_probabilities(self, images: np.ndarray):
        images = np.asarray(images)
        if images.dtype != np.uint8 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"the scorer takes uint8 images of shape {self.input_shape}, got {images.dtype} "
                f"{tuple(images.shape[1:])}"
            )
        features, probabilities = call_in_batches(self._network, images, self.batch_size)
        return features.astype(np.float64), probabilities.astype(np.float64)

    def score(self, images: np.ndarray, drawn_classes: np.ndarray | None = None) -> dict:
        """{"classifier_score", "frechet_distance"} of uint8 images, and the score's parts
        ("class_entropy", "prediction_entropy", "confident_share": see ``score_parts``).

        With ``drawn_classes`` (the class a conditional generator was asked for, per image),
        also "code_accuracy": the share of images the classifier puts in that class.
        """
        if len(images) < 2:
            raise ValueError("scoring needs at least 2 images")
        features, probabilities = self._features_and_probabilities(images)
        scores = {
            "classifier_score": round(classifier_score(probabilities), 4),
            "frechet_distance": round(frechet_distance(*self.real_statistics, *_statistics(features)), 4),
            **{name: round(value, 4) for name, value in score_parts(probabilities).items()},
        }
        if drawn_classes is not None:
            scores["code_accuracy"] = round(float((probabilities.argmax(axis=1) == drawn_classes).mean()), 4)
        return scores
