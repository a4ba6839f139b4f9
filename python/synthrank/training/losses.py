"""Losses over group logits shaped [batch, group_size], the positive in column 0 (see data.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Localised contrastive estimation: softmax cross-entropy with the positive as the target."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def bce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Pointwise binary cross-entropy: column 0 labelled 1, the rest 0 (the baseline LCE is compared with)."""
    labels = torch.zeros_like(logits, dtype=torch.float32)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits.float(), labels)


LOSSES = {"lce": lce_loss, "bce": bce_loss}
