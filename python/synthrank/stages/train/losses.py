"""Losses over group logits shaped [batch, group_size], the positive in column 0 (see data.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def lce_loss(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Localised contrastive estimation: softmax cross-entropy with the positive as the target."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def bce_loss(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Pointwise binary cross-entropy: column 0 labelled 1, the rest 0 (the baseline LCE is compared with)."""
    labels = torch.zeros_like(logits, dtype=torch.float32)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits.float(), labels)


def listwise_kl(logits: torch.Tensor, teacher: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher / temperature) || softmax(logits)) per list, averaged: listwise distillation."""
    if teacher is None:
        raise ValueError("listwise distillation needs the teacher's scores")
    target = F.log_softmax(teacher.float() / temperature, dim=-1)
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), target, log_target=True, reduction="batchmean")


def lce_with_kl(
    weight: float, temperature: float
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """LCE on the LLM's labels plus `weight` x listwise KL to the teacher's scores of the same group."""

    def loss(logits: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        return lce_loss(logits) + weight * listwise_kl(logits, teacher, temperature)

    return loss


LOSSES = {"lce": lce_loss, "bce": bce_loss}
