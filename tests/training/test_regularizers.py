"""Layer-wise LR decay, FGM/PGD, the weight EMA and R-Drop's KL, on small real modules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.support.tiny_model import make_tiny_model
from training.regularizers import EmbeddingAdversary, WeightEma, param_groups, symmetric_kl


def test_layer_wise_decay_gives_each_depth_its_rate() -> None:
    model, _ = make_tiny_model()  # 2 encoder layers
    groups = param_groups(
        model.train(), lr=1e-4, head_lr=1e-3, weight_decay=0.01, layer_lr_decay=0.5, num_layers=2
    )
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(rate) == len(named)  # every parameter in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(named)
    for name, p in named.items():
        lr, wd = rate[id(p)]
        if name.startswith(("sentiment_head", "topic_head")):
            assert lr == 1e-3
        elif "embeddings" in name:
            assert lr == pytest.approx(1e-4 * 0.25), name
        elif ".layer.0." in name:
            assert lr == pytest.approx(1e-4 * 0.5), name
        elif ".layer.1." in name:
            assert lr == pytest.approx(1e-4), name
        if name.startswith("encoder.") and (name.endswith("bias") or "LayerNorm" in name):
            assert wd == 0.0, name


def test_no_decay_means_one_rate_for_the_encoder() -> None:
    model, _ = make_tiny_model()
    groups = param_groups(
        model, lr=2e-5, head_lr=1e-3, weight_decay=0.0, layer_lr_decay=1.0, num_layers=2
    )
    assert {g["lr"] for g in groups} == {2e-5, 1e-3}


def test_symmetric_kl_matches_the_definition() -> None:
    a = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
    p, q = a.softmax(-1), b.softmax(-1)
    kl_pq = (p * (p / q).log()).sum(-1).mean()
    kl_qp = (q * (q / p).log()).sum(-1).mean()
    assert float(symmetric_kl(a, b)) == pytest.approx(float(kl_pq + kl_qp) / 2, rel=1e-5)
    assert float(symmetric_kl(a, a)) == pytest.approx(0.0, abs=1e-7)


def _setup() -> tuple[torch.nn.Module, torch.nn.Parameter, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model, tokenizer = make_tiny_model()
    model.train()
    batch = tokenizer(["shares fall", "profit jumps on strong sales"], padding=True)
    ids = torch.tensor(batch["input_ids"])
    mask = torch.tensor(batch["attention_mask"])
    emb = model.encoder.get_input_embeddings().weight
    return model, emb, ids, mask


@pytest.mark.parametrize("steps", [1, 3])
def test_adversary_perturbs_within_epsilon_adds_a_gradient_and_restores(steps: int) -> None:
    model, emb, ids, mask = _setup()
    model.eval()  # no dropout: the clean and adversarial losses are comparable
    labels = torch.tensor([0, 2])

    def loss_fn() -> torch.Tensor:
        return F.cross_entropy(model(ids, mask).sentiment_logits, labels)

    clean_weights = emb.detach().clone()
    loss_fn().backward()
    clean_grad = emb.grad.detach().clone()
    distances: list[float] = []

    def watched() -> torch.Tensor:
        distances.append(float(torch.linalg.vector_norm(emb.detach() - clean_weights)))
        return loss_fn()

    eps = 0.5
    adv_loss = EmbeddingAdversary(model, emb, eps, steps).attack(watched)
    assert len(distances) == steps  # one loss per step (PGD) or one (FGM)
    assert distances[-1] == pytest.approx(eps, rel=1e-3) if steps == 1 else distances[-1] <= eps
    assert all(d <= eps * (1 + 1e-4) for d in distances)
    assert torch.equal(emb.detach(), clean_weights)  # restored exactly
    assert not torch.allclose(emb.grad, clean_grad)  # the adversarial gradient was added
    with torch.no_grad():
        clean_loss = float(loss_fn())
    assert adv_loss > clean_loss  # a step up the gradient raises the loss


def test_adversary_without_gradient_does_nothing() -> None:
    model, emb, _, _ = _setup()
    calls: list[int] = []
    assert EmbeddingAdversary(model, emb, 1.0, 1).attack(lambda: calls.append(1)) == 0.0
    assert calls == []


def test_ema_follows_the_warmed_up_average_and_swaps_back() -> None:
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema = WeightEma(layer, decay=0.9)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        ema.update()
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * value
    with ema.applied():
        assert float(layer.weight.detach()) == pytest.approx(expected)
    assert float(layer.weight.detach()) == 4.0
    assert not math.isclose(expected, 4.0)


def test_ema_rejects_a_decay_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightEma(torch.nn.Linear(1, 1), 1.0)
