"""Loss terms of faceswap-GAN v2.2 (`networks/losses.py`), as pure functions.

Images are `(B, H, W, 3)` float32 in [-1, 1]; alpha masks and eye masks are
`(B, H, W, 1)` in [0, 1]; discriminator outputs are `(B, 8, 8, 1)` unbounded scores.
Every function returns a scalar and applies no weight: `LossWeights` is applied in one
place, `generator_terms` / `discriminator_terms` below.

Notation (REFERENCE 1.3): `real` = target face, `warped` = distorted input,
`rgb` = raw decoder RGB, `alpha` = decoder mask, `fake = alpha*rgb + (1-alpha)*warped`.
"""

from keras import ops


def l1(a, b):
    """Mean absolute error."""
    return ops.mean(ops.abs(a - b))


def l2(a, b):
    """Mean squared error."""
    return ops.mean(ops.square(a - b))


def masked_l1(a, b, mask):
    """mean(|mask * (a - b)|), the eye-weighted term; mask broadcasts over channels."""
    return ops.mean(ops.abs(mask * (a - b)))


def first_order(x, axis):
    """|finite difference| along rows (axis=1) or columns (axis=2), cropped to
    (B, H-1, W-1, C) as the original's `first_order`."""
    if axis == 1:
        return ops.abs(x[:, :-1, :-1, :] - x[:, 1:, :-1, :])
    return ops.abs(x[:, :-1, :-1, :] - x[:, :-1, 1:, :])


def composite(alpha, rgb, warped):
    """Masked output `alpha * rgb + (1 - alpha) * warped`."""
    return alpha * rgb + (1.0 - alpha) * warped


# --- Adversarial terms (LSGAN: D(real) -> 1, D(fake) -> 0; Mao et al., 2017) ---


def mixup_lsgan_d(pred_mixup, lam):
    """D loss on mixup input `lam*[real,warped] + (1-lam)*[fake,warped]`: regress `lam`.

    Reference: mixup, Zhang et al. 2018 (arXiv 1710.09412), as used by faceswap-GAN.
    """
    return l2(pred_mixup, lam * ops.ones_like(pred_mixup))


def lsgan_g(pred_fake):
    """G loss: push D(fake) to 1."""
    return l2(pred_fake, ops.ones_like(pred_fake))


def lsgan_d(pred_real, pred_fake):
    """Plain LSGAN, D side: (E[(D(r) - 1)^2] + E[D(f)^2]) / 2 (Mao et al. 2017).

    faceswap-GAN v2.2's "relativistic_avg_LSGAN" uses this for the masked fake."""
    return (ops.mean(ops.square(pred_real - 1.0)) + ops.mean(ops.square(pred_fake))) / 2


def ralsgan_d(pred_real, pred_fake):
    """Relativistic average LSGAN, D side, as faceswap-GAN v2.2 writes it
    (`networks/losses.py`, used for the raw RGB output): real target 1, fake target 0,
    (E[(D(r) - E_batch D(f) - 1)^2] + E[(D(f) - E_batch D(r))^2]) / 2.

    Reference: Jolicoeur-Martineau 2018 (arXiv 1807.00734); v2.2 keeps LSGAN's 0
    target for the fake instead of the paper's -1.
    """
    real_rel = pred_real - ops.mean(pred_fake, axis=0)
    fake_rel = pred_fake - ops.mean(pred_real, axis=0)
    return (ops.mean(ops.square(real_rel - 1.0)) + ops.mean(ops.square(fake_rel))) / 2


def ralsgan_g(pred_real, pred_fake):
    """Relativistic average LSGAN, G side (v2.2): the D targets swapped,
    (E[(D(r) - E_batch D(f))^2] + E[(D(f) - E_batch D(r) - 1)^2]) / 2."""
    real_rel = pred_real - ops.mean(pred_fake, axis=0)
    fake_rel = pred_fake - ops.mean(pred_real, axis=0)
    return (ops.mean(ops.square(real_rel)) + ops.mean(ops.square(fake_rel - 1.0))) / 2


# --- Reconstruction and edges ---


def reconstruction(real, rgb):
    """L1 between the raw decoder RGB and the target."""
    return l1(rgb, real)


def eye_reconstruction(real, rgb, eye_mask):
    """mean(|eye_mask * (rgb - real)|): reconstruction inside the eyes."""
    return masked_l1(rgb, real, eye_mask)


def intermediate_reconstruction(real, intermediates):
    """Sum of L1 between each intermediate output (B, s, s, 3) and the target resized to
    s (bilinear). 0 when there are none (R = 64)."""
    total = 0.0
    for image in intermediates:
        size = ops.shape(image)[1]
        total = total + l1(image, ops.image.resize(real, (size, size), "bilinear"))
    return total


def edge(real, rgb):
    """L1 of first-order differences along rows plus along columns."""
    return l1(first_order(rgb, 1), first_order(real, 1)) + l1(
        first_order(rgb, 2), first_order(real, 2)
    )


def eye_edge(real, rgb, eye_mask):
    """Edge term inside the eyes; the mask is resized to (H-1, W-1) as the original."""
    h, w = ops.shape(real)[1] - 1, ops.shape(real)[2] - 1
    mask = ops.image.resize(eye_mask, (h, w), "bilinear")
    return masked_l1(first_order(rgb, 1), first_order(real, 1), mask) + masked_l1(
        first_order(rgb, 2), first_order(real, 2), mask
    )


# --- Perceptual ---


def instance_normalize(features, epsilon=1e-3):
    """v2.2's normalisation of perceptual features: keras-contrib
    `InstanceNormalization()` (axis=None, never trained, so gamma 1 and beta 0),
    i.e. `(x - mean) / (std + epsilon)` with mean and std per sample over H, W and C
    of `(B, H, W, C)` features. The `w_pl` weights were tuned with this."""
    mean = ops.mean(features, axis=(1, 2, 3), keepdims=True)
    std = ops.std(features, axis=(1, 2, 3), keepdims=True)
    return (features - mean) / (std + epsilon)


def perceptual(real_features, fake_features, w_pl):
    """sum_i w_pl[i] * mean((IN(real_i) - IN(fake_i))^2) over the 4 feature scales,
    ordered deepest first as `w_pl` (w_pl[0] -> 7x7, ..., w_pl[3] -> 112x112).

    Weighted inside because the four weights define the term (REFERENCE 1.3).
    """
    return sum(
        w * l2(instance_normalize(r), instance_normalize(f))
        for w, r, f in zip(w_pl, real_features, fake_features)
    )


# --- Alpha mask regularisers ---


def mask_l1(alpha):
    """mean|alpha|: pushes the mask toward sparsity."""
    return ops.mean(ops.abs(alpha))


def mask_hinge(alpha, margin):
    """mean(max(0, margin - alpha)) (the original's hinge mode with margin m_mask)."""
    return ops.mean(ops.maximum(0.0, margin - alpha))


def mask_total_variation(alpha):
    """mean|d alpha/dy| + mean|d alpha/dx| (first-order differences)."""
    return ops.mean(first_order(alpha, 1)) + ops.mean(first_order(alpha, 2))


def cyclic(real, rgb_cycle, alpha_cycle, alpha_fake):
    """v2.2's `cyclic_loss(netGA, netGB, real_A)`: with `fake = G_B(real_A)` and
    `cycle = G_A(rgb of fake)`, L1(rgb of cycle, real_A) + 0.1 * L1(alpha of cycle,
    alpha of fake)."""
    return l1(rgb_cycle, real) + 0.1 * l1(alpha_cycle, alpha_fake)
