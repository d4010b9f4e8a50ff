"""Training a DCGAN into a run folder: sample grids, a GIF, TensorBoard images, scores per epoch."""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from bigmodels.lite.latents import code_categories
from bigmodels.quality.generation import call_in_batches
from bigmodels.training.callbacks import DivergenceGuard, SaveOnImprovement, run_folder_callbacks, start_fresh

SAMPLES_FOLDER = "samples"
GRID_SIDE = 8  # an 8x8 grid of samples from fixed latent vectors
SCORE_SEED = 12345  # latent vectors used for every quality score, so scores are comparable


def fixed_latents(count: int, latent_size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, latent_size)).astype(np.float32)


def drawn_classes(model, latents: np.ndarray):
    """The class each latent vector asks for when the code was learned from labels, else None."""
    if not getattr(model, "code_from_labels", False):
        return None
    return code_categories(latents, model.code_classes)


def generate_uint8(generator, latents: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """uint8 images from latent vectors (the same mapping the exported generator applies)."""
    (images,) = call_in_batches(generator, latents, batch_size)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int = GRID_SIDE) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*H, columns*W, C) picture with 1-pixel gaps."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    grid = np.zeros((rows * (height + 1) - 1, columns * (width + 1) - 1, channels), np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = image
    return grid


def save_png(grid: np.ndarray, path: Path, scale: int = 3) -> None:

    picture = Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)


class GANMonitor(keras.callbacks.Callback):
    """Every epoch: a PNG grid from fixed latents, the grid in TensorBoard, the epoch time, the
    quality score (every ``score_every`` epochs), and metrics.json updated so a running job can be
    watched. At the end: an animated GIF of the grids.
    """

    def __init__(
        self, run_dir: Path, *, scorer=None, score_samples: int = 2000, score_every: int = 1, verbose: int = 1
    ):
        super().__init__()
        self.verbose = verbose
        self.run_dir, self.scorer = Path(run_dir), scorer
        self.score_samples, self.score_every = score_samples, max(1, score_every)
        self.samples = self.run_dir / SAMPLES_FOLDER
        self.scores, self.seconds = [], []

    def on_train_begin(self, logs=None):

        self.samples.mkdir(parents=True, exist_ok=True)
        latent_size = self.model.latent_size
        self.grid_latents = fixed_latents(GRID_SIDE * GRID_SIDE, latent_size, self.model.seed)
        self.score_latents = fixed_latents(self.score_samples, latent_size, SCORE_SEED)
        self.writer = tf.summary.create_file_writer(str(self.run_dir / "logs" / "samples"))
        history = self.run_dir / "score_history.json"
        if history.is_file():  # a resumed run keeps the scores of the epochs it already did
            kept = json.loads(history.read_text())
            self.scores, self.seconds = kept["score_per_epoch"], kept["seconds_per_epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):

        self.seconds.append(round(time.perf_counter() - self._started, 2))
        grid = image_grid(generate_uint8(self.model.sampling_generator, self.grid_latents))
        save_png(grid, self.samples / f"epoch_{epoch + 1:03d}.png")
        with self.writer.as_default():
            tf.summary.image("samples", grid[None], step=epoch + 1)
        if self.scorer is not None and (
            (epoch + 1) % self.score_every == 0 or epoch + 1 == self.params["epochs"]
        ):
            score = self.scorer.score(
                generate_uint8(self.model.sampling_generator, self.score_latents),
                drawn_classes(self.model, self.score_latents),
            )
            self.scores.append({"epoch": epoch + 1, **score})
            with self.writer.as_default():
                for name, value in score.items():
                    tf.summary.scalar(name, value, step=epoch + 1)
            if self.verbose:
                print(f"epoch {epoch + 1}: {score}", flush=True)
        partial = {"score_per_epoch": self.scores, "seconds_per_epoch": self.seconds}
        (self.run_dir / "score_history.json").write_text(json.dumps(partial, indent=2) + "\n")

    def on_train_end(self, logs=None):

        frames = [Image.open(path) for path in sorted(self.samples.glob("epoch_*.png"))]
        if frames:
            frames[0].save(
                self.samples / "progression.gif",
                save_all=True,
                append_images=frames[1:],
                duration=400,
                loop=0,
            )


def fit_gan(
    model,
    dataset,
    run_dir: Path,
    *,
    epochs: int,
    learning_rate: float,
    seed: int,
    scorer=None,
    score_samples: int = 2000,
    score_every: int = 1,
    verbose: int = 1,
    callbacks: list | None = None,
) -> dict:
    """Trains a compiled-on-the-spot DCGAN on the training images; writes the run's files.

    Files: model.keras (the whole DCGAN, both optimizers included, saved every epoch),
    history.csv (d_loss, g_loss), logs/ (TensorBoard scalars and sample grids), samples/ (one
    PNG per epoch and progression.gif), score_history.json, backup/ (lets a killed run resume;
    deleted when training finishes).

    Returns:
        {"epochs_trained", "training_seconds", "seconds_per_epoch", "score_per_epoch"}.
    """

    keras.utils.set_random_seed(seed)
    start_fresh(run_dir, logs=("history.csv", "score_history.json"))
    model.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    images = dataset.pipeline("train")
    if not model.code_from_labels:  # an unconditional GAN never sees the labels
        images = images.map(lambda x, y: x, num_parallel_calls=tf.data.AUTOTUNE)
    guard = DivergenceGuard()
    monitor = GANMonitor(
        run_dir, scorer=scorer, score_samples=score_samples, score_every=score_every, verbose=verbose
    )
    checkpoint = SaveOnImprovement(model, run_dir / "model.keras", keep_best=False)
    all_callbacks = [*run_folder_callbacks(run_dir, guard), checkpoint, monitor, *(callbacks or [])]
    started = time.perf_counter()
    history = model.fit(images, epochs=epochs, callbacks=all_callbacks, verbose=verbose, shuffle=False)
    guard.raise_if_diverged(run_dir, learning_rate)
    return {
        "epochs_trained": len(history.history.get("d_loss", [])),
        "training_seconds": round(time.perf_counter() - started, 2),
        "seconds_per_epoch": monitor.seconds,
        "score_per_epoch": monitor.scores,
    }
