"""A convolutional VAE built from a plain params dict.

    params = {"latent_dim": 8, "n_layers": 3, "filters": 32, "dense_units": 64,
              "loss": "bce", "beta": 1.0, "predictor": False}

Encoder: `n_layers` 3x3 conv layers of `filters` channels, then a dense layer of
`dense_units`, then z_mean and z_log_var of size `latent_dim`. Only the first two conv layers
downsample (stride 2: 28 -> 14 -> 7); later ones keep 7x7, so every layer count fits a 28x28
image and the decoder (transposed convolutions in mirror order) lands back on 28x28 exactly.
Decoder: dense `dense_units` -> dense to the encoder's last feature map -> transposed convs ->
a 1-channel sigmoid conv giving the pixel means in [0, 1].

Loss = reconstruction (summed over pixels: binary cross-entropy, or squared error / (2 * 0.1^2))
       + beta * KL(q(z|x) || N(0, I))
       [+ predictor_weight * cross-entropy of a 2-hidden-layer digit classifier on z_mean]
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from search import defaults
from search.errors import UsageError

IMAGE_SHAPE = (28, 28, 1)
LOSSES = defaults.LOSS_CHOICES
MSE_SIGMA = 0.1  # the `mse` loss is the NLL of N(x_hat, sigma^2) per pixel, up to a constant
# 28 -> 14 -> 7; a third stride would give 4, which 2x upsampling cannot undo
DOWNSAMPLING_LAYERS = 2

DEFAULTS: dict[str, Any] = defaults.MODEL  # one place: search/defaults.py


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and refuse values no model can be built from."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise UsageError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
    full = {**DEFAULTS, **params}
    for name in ("latent_dim", "n_layers", "filters", "dense_units"):
        if int(full[name]) != full[name] or full[name] < 1:
            raise UsageError(f"{name} must be a positive integer, got {full[name]!r}")
        full[name] = int(full[name])
    if full["loss"] not in LOSSES:
        raise UsageError(f"loss must be one of {', '.join(LOSSES)}, got {full['loss']!r}")
    if not full["beta"] >= 0:
        raise UsageError(f"beta must be >= 0, got {full['beta']!r}")
    full["predictor"] = bool(full["predictor"])
    return full


class Sampling(layers.Layer):
    """z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I) (the reparameterisation trick).

    Always float32, whatever the global policy: under mixed_float16 exp(z_log_var / 2)
    overflows float16 (max 65504) from z_log_var ~ 22 on, where float32 is fine.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, z_mean, z_log_var):
        z_mean = ops.cast(z_mean, "float32")
        z_log_var = ops.cast(z_log_var, "float32")
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator, dtype="float32")
        return z_mean + ops.exp(0.5 * z_log_var) * eps


def _strides(layer: int) -> int:
    return 2 if layer < DOWNSAMPLING_LAYERS else 1


def build_encoder(p: dict[str, Any]) -> keras.Model:
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for i in range(p["n_layers"]):
        x = layers.Conv2D(p["filters"], 3, strides=_strides(i), padding="same", activation="relu")(
            x
        )
    x = layers.Flatten()(x)
    x = layers.Dense(p["dense_units"], activation="relu")(x)
    # float32 heads keep the KL term stable under mixed precision
    z_mean = layers.Dense(p["latent_dim"], name="z_mean", dtype="float32")(x)
    z_log_var = layers.Dense(p["latent_dim"], name="z_log_var", dtype="float32")(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(p: dict[str, Any]) -> keras.Model:
    side = IMAGE_SHAPE[0] // 2 ** min(p["n_layers"], DOWNSAMPLING_LAYERS)
    z = keras.Input(shape=(p["latent_dim"],), name="z")
    x = layers.Dense(p["dense_units"], activation="relu")(z)
    x = layers.Dense(side * side * p["filters"], activation="relu")(x)
    x = layers.Reshape((side, side, p["filters"]))(x)
    for i in reversed(range(p["n_layers"])):
        x = layers.Conv2DTranspose(
            p["filters"], 3, strides=_strides(i), padding="same", activation="relu"
        )(x)
    pixel_means = layers.Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float32")(x)
    return keras.Model(z, pixel_means, name="decoder")


def build_predictor(p: dict[str, Any]) -> keras.Model:
    """Digit classifier on z_mean: ties the latent space to the labels when switched on."""
    z_mean = keras.Input(shape=(p["latent_dim"],), name="z_mean")
    x = layers.Dense(p["dense_units"], activation="relu")(z_mean)
    x = layers.Dense(p["dense_units"], activation="relu")(x)
    digit_probs = layers.Dense(10, activation="softmax", dtype="float32")(x)
    return keras.Model(z_mean, digit_probs, name="predictor")


class VAE(keras.Model):
    """Encoder + sampling + decoder; `compute_loss` holds the ELBO terms, named as in the math."""

    def __init__(self, params: dict[str, Any], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = check_params(params)
        self.encoder = build_encoder(self.params)
        self.decoder = build_decoder(self.params)
        self.predictor = build_predictor(self.params) if self.params["predictor"] else None
        self.sampling = Sampling(seed)
        names = ["loss", "reconstruction_loss", "kl_loss"]
        if self.predictor is not None:
            names += ["predictor_loss", "predictor_accuracy"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def build(self, input_shape=None):
        # The sub-models are functional and already built; nothing is left to create.
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        # At evaluation the reconstruction is the decoder's mean at z = z_mean: deterministic.
        z = self.sampling(z_mean, z_log_var) if training else z_mean
        outputs = {
            "reconstruction": self.decoder(z, training=training),
            "z_mean": z_mean,
            "z_log_var": z_log_var,
        }
        if self.predictor is not None:
            outputs["digit_probs"] = self.predictor(z_mean, training=training)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = ops.cast(x, "float32")
        reconstruction = ops.cast(y_pred["reconstruction"], "float32")
        # Every loss term in float32, whatever the policy (the heads are float32 already).
        z_mean = ops.cast(y_pred["z_mean"], "float32")
        z_log_var = ops.cast(y_pred["z_log_var"], "float32")
        if self.params["loss"] == "bce":
            # mean over the (single) channel
            per_pixel = keras.losses.binary_crossentropy(images, reconstruction)
        else:
            # Gaussian decoder with fixed sigma: with sigma = 1 the KL term outweighs the
            # reconstruction and the posterior collapses to the mean digit.
            per_pixel = ops.squeeze(ops.square(images - reconstruction), axis=-1) / (
                2 * MSE_SIGMA**2
            )
        reconstruction_loss = ops.mean(ops.sum(per_pixel, axis=(1, 2)))
        kl_loss = ops.mean(
            -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        )
        loss = reconstruction_loss + self.params["beta"] * kl_loss
        values = {"reconstruction_loss": reconstruction_loss, "kl_loss": kl_loss}
        if self.predictor is not None and y is not None:
            # Label -1 marks unlabeled extra images: they train the VAE but not the predictor.
            labelled = ops.cast(ops.greater_equal(y, 0), "float32")
            labels = ops.maximum(y, 0)
            probs = ops.cast(y_pred["digit_probs"], "float32")
            per_image = keras.losses.sparse_categorical_crossentropy(labels, probs)
            n_labelled = ops.maximum(ops.sum(labelled), 1.0)
            predictor_loss = ops.sum(per_image * labelled) / n_labelled
            predicted = ops.argmax(probs, axis=1)
            hits = ops.cast(ops.equal(predicted, ops.cast(labels, "int64")), "float32")
            values["predictor_loss"] = predictor_loss
            values["predictor_accuracy"] = ops.sum(hits * labelled) / n_labelled
            loss = loss + self.params["predictor_weight"] * predictor_loss
        values["loss"] = loss
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return loss


def build_vae(params: dict[str, Any], seed: int | None = None) -> VAE:
    """The model a trial's params describe, built (weights created) and ready to compile."""
    vae = VAE(params, seed=seed)
    vae(ops.zeros((1, *IMAGE_SHAPE)))
    return vae


def count_params(vae: VAE) -> int:
    return int(sum(int(ops.size(w)) for w in vae.trainable_weights))
