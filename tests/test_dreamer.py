"""DreamerV2 world model: interface, KL balancing in the loss, straight-through gradients, learning."""

import pytest
import torch
from tensordict import TensorDict

from planners.actor_critic import ImaginationActorCritic
from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, check_world_model
from worldmodels.core.config import ActorCriticConfig, DreamerConfig
from worldmodels.models.distributions import categorical_kl, kl_balanced
from worldmodels.models.dreamer import DreamerV2
from worldmodels.training.step import make_model_optimizer



def _tiny(**overrides):
    base = dict(deter_dim=32, hidden_dim=32, stoch_dim=4, classes=4, cnn_depth=4, mlp_layers=1, mlp_units=32)
    base.update(overrides)
    return DreamerConfig(**base)


def _batch(b=2, t=4, a=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    prev_action = torch.rand(b, t, a, generator=gen) * 2 - 1
    prev_action[:, 0] = 0
    is_terminal = torch.zeros_like(is_first)
    is_terminal[0, -1] = True
    return TensorDict(
        {
            keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=gen),
            keys.PREV_ACTION: prev_action,
            keys.REWARD: torch.rand(b, t, 1, generator=gen),
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: is_terminal,
        },
        batch_size=[b, t],
    )


@pytest.mark.parametrize("overrides", [{}, {"pred_discount": True}, {"classes": 0, "stoch_dim": 6}])
def test_check_world_model(overrides):
    model = DreamerV2(_tiny(**overrides), action_dim=2)
    check_world_model(model)
    post = model.observe(_batch()[keys.PIXELS], _batch()[keys.PREV_ACTION], _batch()[keys.IS_FIRST])
    if model.rssm.categorical:
        stoch = post[keys.STOCH]
        assert stoch.shape == (2, 4, 4, 4)
        torch.testing.assert_close(stoch.detach(), stoch.detach().round())  # one-hot (up to straight-through rounding)
        torch.testing.assert_close(stoch.detach().sum(-1), torch.ones(2, 4, 4))
    assert model.feature_dim == 32 + (16 if model.rssm.categorical else 6)
    assert model.has_continuation == overrides.get("pred_discount", False)


def test_defaults_are_dmc_vision_sizes():
    model = DreamerV2(DreamerConfig(), action_dim=6)
    assert model.feature_dim == 200 + 32 * 32  # deter 200 + 32x32 one-hot (dmc_vision)
    assert model.encoder.output_dim == 32 * 48  # cnn_depth 48
    assert isinstance(model.rssm.gru, torch.nn.Module) and hasattr(model.rssm.gru, "norm")  # LayerNorm GRU
    with pytest.raises(CapabilityError):
        model.continuation(model.initial_state(1))


def test_loss_metrics_and_kl_term_match_kl_balanced():
    torch.manual_seed(0)
    model = DreamerV2(_tiny(pred_discount=True), action_dim=2)
    out = model.loss(_batch())
    for name in ("loss/image", "loss/reward", "loss/kl", "loss/discount", "loss/total", "kl/raw"):
        assert out.metrics[name].dim() == 0 and torch.isfinite(out.metrics[name])
    post = out.posterior
    prior = model.rssm.prior(post[keys.DETER])
    raw = categorical_kl(post[keys.LOGITS], prior[keys.LOGITS]).mean()
    torch.testing.assert_close(out.metrics["kl/raw"], raw.detach())
    # free nats after averaging (free_avg): loss/kl = max(mean KL, 1.0) for both balanced terms
    torch.testing.assert_close(out.metrics["loss/kl"], raw.detach().clamp(min=1.0))
    m = out.metrics
    total = m["loss/image"] + m["loss/reward"] + m["loss/kl"] + m["loss/discount"]
    torch.testing.assert_close(m["loss/total"], total)


def test_kl_balancing_splits_gradients_between_prior_and_posterior():
    model = DreamerV2(_tiny(kl_balance=0.8, kl_free=0.0), action_dim=2)
    gen = torch.Generator().manual_seed(1)
    post_logits = torch.randn(3, 5, 4, 4, generator=gen, requires_grad=True)
    prior_logits = torch.randn(3, 5, 4, 4, generator=gen, requires_grad=True)
    post = TensorDict({keys.LOGITS: post_logits}, batch_size=[3, 5])
    prior = TensorDict({keys.LOGITS: prior_logits}, batch_size=[3, 5])
    model.kl_loss(post, prior).loss.backward()
    # plain KL gradients, by hand: d mean KL(q||p) / d logits
    q = post_logits.detach().clone().requires_grad_()
    p = prior_logits.detach().clone().requires_grad_()
    categorical_kl(q, p).mean().backward()
    torch.testing.assert_close(prior_logits.grad, 0.8 * p.grad)  # alpha trains the prior
    torch.testing.assert_close(post_logits.grad, 0.2 * q.grad)  # 1 - alpha trains the posterior
    torch.testing.assert_close(model.kl_loss(post, prior).loss, kl_balanced(post, prior, 0.8, 0.0).loss)


def test_kl_balance_scales_prior_network_gradient_inside_the_loss():
    # The prior net only enters the loss through the KL: its gradient is alpha * dKL/dp.
    grads = {}
    for alpha in (0.8, 0.5):
        torch.manual_seed(0)
        model = DreamerV2(_tiny(kl_balance=alpha, kl_free=0.0), action_dim=2)
        torch.manual_seed(1)
        model.loss(_batch()).loss.backward()
        grads[alpha] = torch.cat([p.grad.flatten() for p in model.rssm.prior_net.parameters()])
    assert grads[0.5].abs().sum() > 0
    torch.testing.assert_close(grads[0.8], 0.8 * grads[0.5], rtol=1e-4, atol=1e-7)


def test_straight_through_gradient_reaches_the_encoder_from_the_image_loss():
    torch.manual_seed(0)
    model = DreamerV2(_tiny(), action_dim=2)
    batch = _batch(t=1)  # with T = 1 the embedding reaches the features only through stoch
    post = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    torch.testing.assert_close(post[keys.STOCH].detach().sum(-1), torch.ones(2, 1, 4))  # forward value is one-hot
    ((model.decode(post) - 0.5) ** 2).sum().backward()
    encoder_grad = sum(p.grad.abs().sum() for p in model.encoder.parameters())
    assert encoder_grad > 0


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = DreamerV2(_tiny(learning_rate=3e-3), action_dim=2)
    opt = make_model_optimizer(model.config, model)
    batch = _batch(seed=3)
    colours = torch.rand(2, 4, 3, 1, 1, generator=torch.Generator().manual_seed(4))  # learnable, not noise
    batch[keys.PIXELS] = (colours * 255).to(torch.uint8).expand(-1, -1, -1, 64, 64).contiguous()
    losses = []
    for _ in range(25):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), model.config.grad_clip)
        opt.step()
        losses.append(out.metrics["loss/image"].item())
    assert min(losses[-5:]) < 0.7 * losses[0], losses  # ~530 -> ~280 in 25 steps


def test_decoupled_weight_decay_matches_dreamerv2():
    model = DreamerV2(_tiny(learning_rate=1e-3, weight_decay=1e-2), action_dim=2)
    opt = make_model_optimizer(model.config, model)
    w = model.reward_head.net[0].weight
    before = w.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradient: only the decay acts, w <- (1 - wd) w
    torch.testing.assert_close(w.detach(), 0.99 * before)


def test_actor_critic_update_on_tiny_dreamer():
    torch.manual_seed(0)
    model = DreamerV2(_tiny(pred_discount=True), action_dim=2)
    ac = ImaginationActorCritic(model, ActorCriticConfig(horizon=4, layers=1, units=32))
    actor_opt, critic_opt = ac.optimizers()
    out = model.loss(_batch())
    actor_before = [p.detach().clone() for p in ac.actor_parameters()]
    metrics = ac.train_step(
        out.posterior, is_terminal=_batch()[keys.IS_TERMINAL], actor_opt=actor_opt, critic_opt=critic_opt
    )
    assert all(p.grad is None for p in model.parameters())  # the world model is untouched
    assert any(not torch.equal(a, p) for a, p in zip(actor_before, ac.actor_parameters()))
    for name in ("loss/actor", "loss/critic", "grad_norm/actor", "critic/target"):
        assert torch.isfinite(metrics[name])
    action = ac.policy(sample=False)(model.features(out.posterior[:, -1]))
    assert action.shape == (2, 2) and action.abs().max() <= 1


def test_dynamics_gradient_reaches_the_actor_through_the_categorical_rssm():
    torch.manual_seed(0)
    model = DreamerV2(_tiny(), action_dim=2)
    ac = ImaginationActorCritic(model, ActorCriticConfig(horizon=4, layers=1, units=32, actor_entropy=0.0))
    start = model.loss(_batch()).posterior
    loss, _ = ac.loss(start)
    loss.backward()  # with no entropy term, the actor's only gradient path is through the model
    assert sum(p.grad.abs().sum() for p in ac.actor_parameters()) > 0
    assert all(p.grad is None for p in model.parameters())
