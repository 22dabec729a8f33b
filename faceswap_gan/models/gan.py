"""FaceSwapGAN: shared encoder, two decoders, two conditional discriminators."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from faceswap_gan import losses
from faceswap_gan.config import (
    ArchConfig,
    LossConfig,
    LossWeights,
    Stage,
    mixed_precision_name,
)
from faceswap_gan.models.networks import (
    build_decoder,
    build_discriminator,
    build_encoder,
)
from faceswap_gan.optimizers import FusedAdam

DIRECTIONS = ("AtoB", "BtoA")
G_LEARNING_RATE = 1e-4  # v2.2's lrG, times lr_factor.
D_LEARNING_RATE = 2e-4  # v2.2's lrD, times lr_factor.
# The Adam class `compile` builds: the fused kernel (same math and variables as
# keras.optimizers.Adam, which benchmarks/model_speed.py --optimizer keras sets).
ADAM = FusedAdam
NETWORKS = ("encoder", "decoder_A", "decoder_B", "netDA", "netDB")
# Faces per forward pass at inference (`transform`, `swap`, evaluation, previews).
# Self-attention at 64x64 holds (B, 4096, 4096) float32 maps, 64 MiB per face for
# each of its two copies (scores, softmax): 8 faces add about 0.7 GB to the process
# (standard 64 px model, CPU), 16 about 1.2 GB.
INFERENCE_BATCH = 8
MIXUP_DRAWS = 4  # Mixup weights per iteration: D of A, D of B, PL of A, PL of B.
MIXUP_ALPHA = 0.2  # lambda ~ Beta(0.2, 0.2), as v2.2.
_MIXUP_STREAM = 2  # Third seed word of mixup_lambdas' rng (dataset.py uses 1).


def mixup_lambdas(seed: int, step: int) -> np.ndarray:
    """The mixup weights of training iteration `step`, drawn outside the step.

    A pure function of `(seed, step)`: `np.random.default_rng([seed, step, 2])`
    draws lambda ~ Beta(0.2, 0.2) (v2.2's mixup) for the D losses of A and B and the
    perceptual mixups of A and B. Drawn on the host, not in the step, because the
    Gamma op behind a Beta draw has no XLA kernel; a function of the step, so a
    resumed run draws the same weights and every replica and worker of a
    distributed step uses the same ones.

    Args:
        seed: int >= 0 (TrainConfig.seed).
        step: int >= 0. The iteration (0 for the first).

    Returns:
        `(4,)` float32 in [0, 1]: (D of A, D of B, PL of A, PL of B).

    Reference:
        - Zhang et al., 2018, mixup: Beyond Empirical Risk Minimization
          (https://arxiv.org/abs/1710.09412); shaoanlu/faceswap-GAN v2.2,
          `networks/losses.py` (`tf.contrib.distributions.Beta(0.2, 0.2)`, one
          scalar draw per loss per step).
    """
    rng = np.random.default_rng([int(seed), int(step), _MIXUP_STREAM])
    return rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, MIXUP_DRAWS).astype(np.float32)


def _as_list(outputs) -> list:
    """Decoder outputs as a list: Keras returns a bare tensor for a one-output model
    (R = 64, no intermediate RGB outputs)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


class FaceSwapGAN(keras.Model):
    """faceswap-GAN v2.2 as one `keras.Model` (Keras 3 custom `train_step`).

    Holds `encoder`, `decoder_A`, `decoder_B`, `netDA`, `netDB` (REFERENCE 1.2). Faces
    are `(B, R, R, 3)` float32 RGB in [-1, 1]; eye masks `(B, R, R, 1)` in [0, 1].

    Args:
        arch: ArchConfig. The architecture.
        loss: LossConfig. Loss options (the schedule can change use_PL, mask loss mode,
            m_mask and lr_factor later with `set_stage`, without retracing).
        loss_weights: LossWeights.
        perceptual_model: keras.Model or None. Maps (B, R, R, 3) [-1, 1] to 4 feature
            maps (`faceswap_gan.perceptual.build_perceptual_model`); needed for use_PL.
        seed: int. Seed of the mixup Beta draws made inside the step (only when
            `train_step` is not given `mixup_lambdas`).

    The update scheme is v2.2's (`FaceswapGANModel.train_one_batch_D/_G`): each
    iteration steps both discriminators on one pair of batches, then generator A
    (encoder + decoder_A, its own Adam) and then generator B (encoder + decoder_B, its
    own Adam) on a fresh pair, so the shared encoder is stepped twice per iteration.

    Reference:
        - shaoanlu/faceswap-GAN v2.2, `networks/faceswap_gan_model.py`.
    """

    def __init__(
        self,
        arch: ArchConfig,
        loss: LossConfig | None = None,
        loss_weights: LossWeights | None = None,
        perceptual_model=None,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.arch = arch
        self.loss_config = loss or LossConfig()
        self.loss_weights = loss_weights or LossWeights()
        self.encoder = build_encoder(arch)
        self.decoder_A = build_decoder(arch, "decoder_A")
        self.decoder_B = build_decoder(arch, "decoder_B")
        self.netDA = build_discriminator(arch, "netDA")
        self.netDB = build_discriminator(arch, "netDB")
        self.perceptual_model = perceptual_model
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Schedule state as variables: a stage change does not retrace the step.
        self.use_pl = keras.Variable(
            float(self.loss_config.use_PL), trainable=False, name="use_pl"
        )
        self.use_hinge = keras.Variable(
            float(self.loss_config.use_mask_hinge_loss),
            trainable=False,
            name="use_hinge",
        )
        self.m_mask = keras.Variable(
            float(self.loss_config.m_mask), trainable=False, name="m_mask"
        )
        self._inference = {}

    @property
    def image_size(self) -> int:
        return self.arch.image_size

    @property
    def discriminator_variables(self):
        return self.netDA.trainable_variables + self.netDB.trainable_variables

    def generator_side_variables(self, side: str) -> list:
        """Variables that generator `side` ("A" or "B") updates: encoder + decoder."""
        decoder = self.decoder_A if side == "A" else self.decoder_B
        return self.encoder.trainable_variables + decoder.trainable_variables

    @property
    def optimizers(self) -> dict:
        """{"g_a", "g_b", "d"}: the three Adams, in checkpoint order."""
        return {
            "g_a": self.g_optimizer_a,
            "g_b": self.g_optimizer_b,
            "d": self.d_optimizer,
        }

    def compile(self, mixed_precision: bool | str = False, **kwargs):
        """Three Adams (beta_1 0.5), as v2.2: one per generator (encoder + its decoder)
        at lrG = 1e-4 x lr_factor, and one for the two discriminators at lrD = 2e-4 x
        lr_factor (their variables are disjoint, so one Adam equals v2.2's two).
        Each is `ADAM`, `FusedAdam` (Keras Adam's math and variables, one fused
        kernel per variable). Builds every optimizer so its state can be restored
        before the first step.

        Args:
            mixed_precision: `TrainConfig.mixed_precision` ("off", "float16",
                "bfloat16", or a bool). "float16" (or True) wraps each Adam in
                `LossScaleOptimizer`: float16's range would flush small gradients
                to zero. "bfloat16" has float32's exponent range and needs no loss
                scaling (Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep
                Learning Training"). The dtype policy itself is set by the caller
                before the model is built (`keras.config.set_dtype_policy`).

        Raises:
            FaceswapError: another `mixed_precision` value.
        """
        super().compile(**kwargs)
        lr = self.loss_config.lr_factor
        loss_scaled = mixed_precision_name(mixed_precision) == "float16"

        def adam(base, variables):
            optimizer = ADAM(base * lr, beta_1=0.5)
            if loss_scaled:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(variables)
            return optimizer

        self.g_optimizer_a = adam(G_LEARNING_RATE, self.generator_side_variables("A"))
        self.g_optimizer_b = adam(G_LEARNING_RATE, self.generator_side_variables("B"))
        self.d_optimizer = adam(D_LEARNING_RATE, self.discriminator_variables)

    def set_stage(self, stage: Stage) -> None:
        """Applies a stage's loss switches and learning-rate factor (Adam kept).

        The stage's lr_factor multiplies the run's own `LossConfig.lr_factor`."""
        self.use_pl.assign(float(stage.use_PL))
        self.use_hinge.assign(float(stage.use_mask_hinge_loss))
        self.m_mask.assign(float(stage.m_mask))
        factor = self.loss_config.lr_factor * stage.lr_factor
        for name, optimizer in self.optimizers.items():
            base = D_LEARNING_RATE if name == "d" else G_LEARNING_RATE
            optimizer.learning_rate.assign(base * factor)

    def swap_decoders(self) -> None:
        """Exchanges the weights of decoder_A and decoder_B (v2.2 late-stage trick)."""
        weights_a = self.decoder_A.get_weights()
        self.decoder_A.set_weights(self.decoder_B.get_weights())
        self.decoder_B.set_weights(weights_a)

    def _generate(self, decoder, warped, training=True):
        """-> (intermediate RGBs, alpha (B,R,R,1), rgb (B,R,R,3), fake (B,R,R,3))."""
        outputs = _as_list(
            decoder(self.encoder(warped, training=training), training=training)
        )
        alpha, rgb = ops.split(outputs[-1], [1], axis=-1)  # gradient: one concat
        return outputs[:-1], alpha, rgb, losses.composite(alpha, rgb, warped)

    def _lambdas(self, lambdas):
        """The step's 4 mixup weights (D of A, D of B, PL of A, PL of B), float32.

        Given (`mixup_lambdas`, drawn outside the step): used as they are, so the
        step compiles with XLA and every replica of a distributed step mixes with
        the same weights. None: drawn here, lambda ~ Beta(0.2, 0.2) from the
        model's SeedGenerator (a Gamma op, which XLA cannot compile)."""
        if lambdas is None:
            return keras.random.beta(
                (MIXUP_DRAWS,), MIXUP_ALPHA, MIXUP_ALPHA, seed=self.seed_generator
            )
        lambdas = ops.cast(ops.convert_to_tensor(lambdas), "float32")
        # A per-example (B, 4) copy (split over replicas like the batch): row 0.
        return lambdas if len(lambdas.shape) == 1 else lambdas[0]

    def _d_loss(self, net_d, decoder, warped, real, lam):
        """v2.2's `adversarial_loss`, D side, for the masked and the raw fake."""
        _, _, rgb, fake = self._generate(decoder, warped)
        fake, rgb = ops.stop_gradient(fake), ops.stop_gradient(rgb)
        cond_real = ops.concatenate([real, warped], axis=-1)  # (B, R, R, 6)
        if self.loss_config.gan_training == "relativistic_avg_LSGAN":
            # Masked fake: plain LSGAN; raw RGB: relativistic (fake target 0).
            pred_real = net_d(cond_real)
            return losses.lsgan_d(
                pred_real, net_d(ops.concatenate([fake, warped], -1))
            ) + losses.ralsgan_d(pred_real, net_d(ops.concatenate([rgb, warped], -1)))
        lam = ops.cast(lam, cond_real.dtype)
        return sum(
            losses.mixup_lsgan_d(
                net_d(lam * cond_real + (1 - lam) * ops.concatenate([f, warped], -1)),
                lam,
            )
            for f in (fake, rgb)
        )

    def _g_terms(self, net_d, decoder, other, warped, real, eyes, lam):
        """Weighted generator terms of one side, by name (REFERENCE 1.3)."""
        w = self.loss_weights
        intermediates, alpha, rgb, fake = self._generate(decoder, warped)
        pred_fake, pred_rgb = (
            net_d(ops.concatenate([f, warped], -1)) for f in (fake, rgb)
        )
        adversarial = losses.lsgan_g(pred_fake)
        if self.loss_config.gan_training == "relativistic_avg_LSGAN":
            pred_real = net_d(ops.concatenate([real, warped], -1))
            adversarial = adversarial + losses.ralsgan_g(pred_real, pred_rgb)
        else:
            adversarial = adversarial + losses.lsgan_g(pred_rgb)
        terms = {
            "adversarial": w.w_D * adversarial,
            "reconstruction": w.w_recon
            * (
                losses.reconstruction(real, rgb)
                + losses.intermediate_reconstruction(real, intermediates)
            )
            + w.w_eyes * losses.eye_reconstruction(real, rgb, eyes),
            "edge": w.w_edge * losses.edge(real, rgb)
            + w.w_eyes * losses.eye_edge(real, rgb, eyes),
            "mask": self.use_hinge
            * w.w_mask_hinge
            * losses.mask_hinge(alpha, self.m_mask)
            + (1 - self.use_hinge) * w.w_mask_l1 * losses.mask_l1(alpha)
            + w.w_mask_tv * losses.mask_total_variation(alpha),
            "perceptual": self._perceptual(real, rgb, fake, lam),
        }
        if self.loss_config.use_cyclic_loss:
            # v2.2: the other generator runs on the real target; only this side's
            # variables are stepped (the caller's tape), so `other` is not updated.
            _, alpha_other, rgb_other, _ = self._generate(other, real)
            _, alpha_cycle, rgb_cycle, _ = self._generate(decoder, rgb_other)
            terms["cyclic"] = w.w_cyclic * losses.cyclic(
                real, rgb_cycle, alpha_cycle, alpha_other
            )
        return terms

    def _perceptual(self, real, rgb, fake, lam):
        if self.perceptual_model is None:
            return ops.zeros(())
        lam = ops.cast(lam, rgb.dtype)

        def features(images):
            # Under a mixed policy the perceptual net computes in float16/bfloat16;
            # the loss is computed in float32, like the generator's heads.
            return [ops.cast(f, "float32") for f in self.perceptual_model(images)]

        def compute():
            mixup = lam * rgb + (1 - lam) * fake  # mixup of raw and masked output
            return losses.perceptual(
                features(real), features(mixup), self.loss_weights.w_pl
            )

        return tf.cond(self.use_pl > 0.5, compute, lambda: tf.zeros(()))

    @staticmethod
    def _apply(optimizer, tape, loss, variables):
        # Per-replica losses are batch means; the optimizer sums replica gradients.
        # A LossScaleOptimizer unscales in `apply` (its `scale_loss` ran in the tape).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(loss, variables)
        optimizer.apply([g / replicas for g in grads], variables)

    def train_step(self, data):
        """One v2.2 iteration: both D steps on `d_batch`, then G_A and G_B on `g_batch`.

        Args:
            data: `(d_batch, g_batch)` or `(d_batch, g_batch, lambdas)`. The batches
                are each `((warped, target, eyes) of A, the same of B)`: faces
                `(B, R, R, 3)` float32 in [-1, 1], eyes `(B, R, R, 1)`; v2.2 draws
                fresh batches for the D and the G steps. `lambdas`: the mixup
                weights in [0, 1], float32 `(4,)` (or `(B, 4)` with equal rows, row 0
                used), from `mixup_lambdas(seed, step)`; they are needed to compile
                the step with XLA (`jit_compile=True`). Without them the step draws
                its own from `seed_generator`, which XLA cannot compile.

        Returns every loss term by name: "d_a/total", "g_a/adversarial", ...
        """
        d_batch, g_batch, *rest = data
        lambdas = self._lambdas(rest[0] if rest else None)
        (warped_a, real_a, _), (warped_b, real_b, _) = d_batch
        # 1. Discriminators, both sides, on the current generators' outputs.
        with tf.GradientTape() as tape:
            d_a = self._d_loss(self.netDA, self.decoder_A, warped_a, real_a, lambdas[0])
            d_b = self._d_loss(self.netDB, self.decoder_B, warped_b, real_b, lambdas[1])
            d_total = d_a + d_b + sum(self.netDA.losses) + sum(self.netDB.losses)
            scaled = self._scale(self.d_optimizer, d_total)
        self._apply(self.d_optimizer, tape, scaled, self.discriminator_variables)
        logs = {"d_a/total": d_a, "d_b/total": d_b}
        # 2. Generator A (encoder + decoder_A), then generator B (encoder + decoder_B).
        sides = (
            ("a", self.netDA, self.decoder_A, self.decoder_B, self.g_optimizer_a),
            ("b", self.netDB, self.decoder_B, self.decoder_A, self.g_optimizer_b),
        )
        for i, ((side, net_d, decoder, other, optimizer), batch) in enumerate(
            zip(sides, g_batch)
        ):
            with tf.GradientTape() as tape:
                terms = self._g_terms(net_d, decoder, other, *batch, lambdas[2 + i])
                decay = sum(self.encoder.losses) + sum(decoder.losses)
                total = sum(terms.values()) + decay
                scaled = self._scale(optimizer, total)
            self._apply(
                optimizer, tape, scaled, self.generator_side_variables(side.upper())
            )
            logs.update({f"g_{side}/{k}": v for k, v in terms.items()})
            logs[f"g_{side}/weight_decay"] = decay
            logs[f"g_{side}/total"] = total
        logs["g/total"] = logs["g_a/total"] + logs["g_b/total"]
        return logs

    @staticmethod
    def _scale(optimizer, loss):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.scale_loss(loss)
        return loss

    def transform(
        self, faces, decoder: str, batch_size: int = INFERENCE_BATCH
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs encoder + decoder_`decoder` ("A" or "B") on faces, in bounded batches.

        The network sees at most `batch_size` faces per forward pass, so its memory
        does not grow with N (self-attention at 64x64 holds a 4096 x 4096 float32
        map, 64 MiB, per face); the outputs equal one pass over all faces.

        Args:
            faces: `(N, R, R, 3)` float32 RGB in [-1, 1] (N may be 0).
            decoder: "A" or "B".
            batch_size: int >= 1. Faces per forward pass (default `INFERENCE_BATCH`).

        Returns:
            numpy float32 (alpha `(N, R, R, 1)` in [0, 1], rgb `(N, R, R, 3)` in
            [-1, 1], masked `(N, R, R, 3)` = alpha * rgb + (1 - alpha) * faces).

        Raises:
            ValueError: unknown decoder, wrong input shape or `batch_size < 1`.
        """
        if decoder not in ("A", "B"):
            raise ValueError(f"decoder must be 'A' or 'B'; got {decoder!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
        faces = np.asarray(faces, dtype=np.float32)
        if faces.ndim != 4 or faces.shape[1:] != tuple(self.arch.image_shape):
            raise ValueError(
                f"faces must be (B, {self.image_size}, {self.image_size}, 3) "
                f"float32 in [-1, 1]; got shape {faces.shape}."
            )
        if decoder not in self._inference:
            net = self.decoder_A if decoder == "A" else self.decoder_B
            inputs = keras.Input(self.arch.image_shape)
            final = _as_list(net(self.encoder(inputs)))[-1]
            self._inference[decoder] = keras.Model(inputs, final)
        size = self.image_size
        alpha = np.empty((len(faces), size, size, 1), np.float32)
        rgb = np.empty((len(faces), size, size, 3), np.float32)
        for start in range(0, len(faces), int(batch_size)):
            chunk = faces[start : start + int(batch_size)]
            out = np.asarray(
                self._inference[decoder].predict_on_batch(chunk), dtype=np.float32
            )
            alpha[start : start + len(chunk)] = out[..., :1]
            rgb[start : start + len(chunk)] = out[..., 1:]
        return alpha, rgb, alpha * rgb + (1 - alpha) * faces

    def swap(self, faces, direction: str = "AtoB", batch_size: int = INFERENCE_BATCH):
        """Swaps faces: "AtoB" runs decoder_B on A faces, "BtoA" decoder_A on B faces.

        Runs in forward passes of at most `batch_size` faces (see `transform`).

        Args:
            faces: `(N, R, R, 3)` float32 RGB in [-1, 1].
            direction: "AtoB" or "BtoA".
            batch_size: int >= 1. Faces per forward pass (default `INFERENCE_BATCH`).

        Returns:
            (alpha `(N, R, R, 1)` in [0, 1], rgb `(N, R, R, 3)` in [-1, 1], masked
            `(N, R, R, 3)` in [-1, 1]) numpy float32, with
            masked = alpha * rgb + (1 - alpha) * faces.

        Raises:
            ValueError: unknown direction, wrong input shape or `batch_size < 1`.
        """
        if direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be one of {DIRECTIONS}; got {direction!r}."
            )
        return self.transform(faces, "B" if direction == "AtoB" else "A", batch_size)
