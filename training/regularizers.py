"""Fine-tuning regularisers, each switched by one ``TrainConfig`` field and off by default.

* ``param_groups``: AdamW groups with layer-wise learning-rate decay (``layer_lr_decay``):
  the top encoder layer trains at ``lr``, each layer below at ``decay`` times the one above,
  the embeddings at ``decay ** num_layers``; the fresh heads at ``head_lr``. Lower layers
  hold general language knowledge that a few thousand tweets should nudge, not overwrite.
  No weight decay on biases and LayerNorm weights.
* ``EmbeddingAdversary``: FGM (``pgd_steps`` 1) or PGD (``pgd_steps`` K) on the word
  embedding matrix (Miyato et al. 2017; Madry et al. 2018): after the normal backward
  pass, move the embeddings by ``epsilon`` along the normalised gradient (PGD: K smaller
  steps, projected back onto the epsilon ball), add the gradient of the loss at that
  point, restore the embeddings. Costs one (FGM) or K (PGD) extra forward+backward.
* ``WeightEma``: an exponential moving average of the trainable weights, used for
  validation and for the saved model (with the usual warm-up of the decay, so the
  average is not dominated by the random initial heads).
* ``symmetric_kl``: R-Drop (Liang et al. 2021): each batch runs twice with independent
  dropout masks and the two predictive distributions are pulled together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EmbeddingAdversary", "WeightEma", "param_groups", "symmetric_kl"]

_LAYER = re.compile(r"\.layer\.(\d+)\.")


def _depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, num_layers + 1 above the last layer."""
    if not name.startswith("encoder."):
        return num_layers + 1
    match = _LAYER.search(name)
    if match is not None:
        return int(match.group(1)) + 1
    return 0 if "embeddings" in name else num_layers + 1


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    head_lr: float,
    weight_decay: float,
    layer_lr_decay: float,
    num_layers: int,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: (depth, decay or not) for the encoder, one for the heads."""
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = _depth(name, num_layers)
        is_head = not name.startswith("encoder.")
        decays = param.ndim >= 2  # biases and LayerNorm weights are not decayed
        group_lr = head_lr if is_head else lr * layer_lr_decay ** max(0, num_layers - depth)
        key = (depth if not is_head else num_layers + 2, decays)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": group_lr,
                "weight_decay": weight_decay if decays or is_head else 0.0,
            }
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of (KL(a||b) + KL(b||a)) / 2 between two predictive distributions."""
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return 0.5 * (kl_ab + kl_ba)


class EmbeddingAdversary:
    """FGM/PGD perturbation of the word embeddings; ``attack`` runs after ``loss.backward()``.

    With frozen embeddings (LoRA) there is no embedding gradient and ``attack`` does nothing.
    """

    def __init__(self, model: nn.Module, embeddings: nn.Parameter, epsilon: float, steps: int):
        if epsilon <= 0 or steps < 1:
            raise ValueError("epsilon must be > 0 and steps >= 1")
        self.embeddings = embeddings
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.epsilon = epsilon
        self.steps = steps

    def _direction(self) -> torch.Tensor | None:
        grad = self.embeddings.grad
        if grad is None:
            return None
        norm = torch.linalg.vector_norm(grad)
        if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
            return None
        return grad / norm

    def attack(self, loss_fn: Callable[[], torch.Tensor]) -> float:
        """Add the gradient of ``loss_fn()`` at the perturbed embeddings; returns that loss.

        FGM: one step of size epsilon. PGD: ``steps`` steps of epsilon / steps, each
        projected onto the epsilon ball around the clean embeddings; intermediate gradients
        only steer the attack, the last one is added to the clean gradient.
        """
        direction = self._direction()
        if direction is None:
            return 0.0
        origin = self.embeddings.detach().clone()
        clean = [None if p.grad is None else p.grad.clone() for p in self.params]
        try:
            for k in range(self.steps):
                with torch.no_grad():
                    self.embeddings.add_(direction, alpha=self.epsilon / self.steps)
                    delta = self.embeddings - origin
                    norm = float(torch.linalg.vector_norm(delta))
                    if norm > self.epsilon:
                        self.embeddings.copy_(origin + delta * (self.epsilon / norm))
                if k == self.steps - 1:
                    break
                for p in self.params:  # PGD: the next direction from this point alone
                    p.grad = None
                loss_fn().backward()
                direction = self._direction()
                if direction is None:
                    break
            for p, g in zip(self.params, clean, strict=True):
                p.grad = g
            adv_loss = loss_fn()
            adv_loss.backward()
        finally:
            with torch.no_grad():
                self.embeddings.copy_(origin)
        return float(adv_loss.detach())


class WeightEma:
    """Exponential moving average of a model's trainable parameters."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError("decay must be in (0, 1)")
        self.decay = decay
        self.updates = 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the live ones after."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, live, strict=True):
                    p.copy_(v)
