"""Quality and stability evaluation of a face-swap model (DESIGN section 6).

- `metrics`: masked L1 / PSNR / SSIM, identity centroid, margin and retrieval.
- `geometry`: landmark error, head pose (solvePnP), box jitter, crop change.
- `faces`: reconstruction, identity and attribute scores of a model on face crops;
  `evaluate_periodic` for logging during training.
- `report`: `evaluate(...)` writes report.json, report.md and plots (the video
  stability of a converted clip comes from `converter.stability`, passed in).

Reference:
    - docs/REFERENCE.md section 3 (the small-scale proxy of the field's protocol).
"""

from faceswap_gan.evaluation.faces import evaluate_periodic
from faceswap_gan.evaluation.geometry import (
    frame_change,
    head_pose,
    inter_ocular_distance,
    jitter,
    landmark_error,
    pose_difference,
)
from faceswap_gan.evaluation.metrics import (
    centroid,
    cosine_similarity,
    identity_margin,
    masked_l1,
    masked_psnr,
    masked_ssim,
    retrieve,
)
from faceswap_gan.evaluation.report import evaluate

__all__ = [
    "centroid",
    "cosine_similarity",
    "evaluate",
    "evaluate_periodic",
    "frame_change",
    "head_pose",
    "identity_margin",
    "inter_ocular_distance",
    "jitter",
    "landmark_error",
    "masked_l1",
    "masked_psnr",
    "masked_ssim",
    "pose_difference",
    "retrieve",
]
