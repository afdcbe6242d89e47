"""GPU-ready learner switches, checked on CPU: compiled networks give the eager loss, bfloat16 autocast
trains, and float16 (which needs CUDA's GradScaler) is refused on CPU with one sentence.

Float16 with a GradScaler and CUDA graphs can only be checked on a GPU (benchmarks/bench_gpu.py); the
CUDA-graph test here runs only where CUDA is present."""

import pytest
import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.core.config import ConfigError, DreamerConfig, PlaNetConfig, load_config
from worldmodels.models.dreamer import DreamerV2
from worldmodels.models.planet import PlaNet
from worldmodels.training.step import FLOAT32, Precision, compile_networks, gradient_step, make_model_optimizer

TINY_PLANET = PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=1)


def tiny_batch(b=2, t=5, action_dim=2) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict({
        keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=g),
        keys.ACTION: torch.rand(b, t, action_dim, generator=g) * 2 - 1,
        keys.PREV_ACTION: torch.rand(b, t, action_dim, generator=g) * 2 - 1,
        keys.REWARD: torch.rand(b, t, 1, generator=g),
        keys.IS_FIRST: is_first,
        keys.IS_TERMINAL: torch.zeros_like(is_first),
    }, batch_size=[b, t])  # fmt: skip


def tiny_planet() -> PlaNet:
    torch.manual_seed(0)
    return PlaNet(TINY_PLANET, action_dim=2)


def test_compile_networks_picks_the_networks_and_keeps_checkpoint_keys():
    model = tiny_planet()
    names_before = list(model.state_dict())
    assert compile_networks(model) == ["encoder", "rssm.prior_net", "decoder", "reward_head"]
    assert list(model.state_dict()) == names_before  # in place: checkpoints load either way
    dreamer = DreamerV2(DreamerConfig(deter_dim=16, hidden_dim=16, stoch_dim=4, classes=4, cnn_depth=4, mlp_layers=1,
                                      mlp_units=16), action_dim=2)  # fmt: skip
    assert "rssm.gru" in compile_networks(dreamer)  # the LayerNorm-GRU cell, reused at every step of the scan


@pytest.mark.slow
def test_compiled_update_matches_eager_loss():
    eager, compiled = tiny_planet(), tiny_planet()
    compile_networks(compiled)
    batch = tiny_batch()
    losses = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        opt = make_model_optimizer(TINY_PLANET, model)
        values = []
        for update in range(3):
            torch.manual_seed(10 + update)  # the same sampling noise for both
            metrics, _ = gradient_step(model, opt, TINY_PLANET.grad_clip, batch, update)
            values.append(float(metrics["train/loss/total"]))
        losses[name] = values
    assert losses["eager"][0] != losses["eager"][2]  # the updates changed the model
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4)


def test_bf16_autocast_update_trains_with_finite_loss():
    model = tiny_planet()
    batch = tiny_batch()
    torch.manual_seed(1)
    fp32 = float(model.loss(batch).loss.detach())
    opt = make_model_optimizer(TINY_PLANET, model)
    bf16 = Precision("bf16", "cpu")
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    metrics, out = gradient_step(model, opt, TINY_PLANET.grad_clip, batch, 0, bf16)
    loss = float(metrics["train/loss/total"])
    assert torch.isfinite(torch.tensor(loss))
    assert loss != fp32 and loss == pytest.approx(fp32, rel=0.05)  # autocast ran, in bfloat16's precision
    assert all(v.dtype == torch.float32 for v in out.posterior.values() if v.is_floating_point())  # behaviour: fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert FLOAT32.dtype is None


def test_float16_on_cpu_is_refused_with_one_sentence():
    with pytest.raises(ConfigError, match=r"train.precision.*CUDA GPU"):
        load_config(None, ["device=cpu", "train.precision=16"])
    with pytest.raises(ConfigError, match=r"needs a CUDA GPU.*use train.precision=bf16 or 32"):
        Precision(16, "cpu")  # device=auto resolved to the CPU: refused before any episode is collected
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(None, ["train.precision=fp8"])
    assert load_config(None, ["train.precision=bf16", "train.compile=true"]).train.precision == "bf16"
    assert load_config(None, ["device=auto", "train.precision=16"]).train.precision == 16  # a GPU may be there


def test_online_loop_trains_in_the_configured_precision(tmp_path, monkeypatch):
    import worldmodels.training.online as online
    from tests.test_training import tiny_config
    from worldmodels.methods import train
    from worldmodels.training.logger import read_metrics

    seen, original = [], online.learner_update

    def spy(*args):
        seen.append(args[-1])
        return original(*args)

    monkeypatch.setattr(online, "learner_update", spy)
    run = train(tiny_config("train.precision=bf16", "train.eval_every=0", "train.total_episodes=2",
                            "train.final_eval_episodes=0"), run_dir=tmp_path / "run")  # fmt: skip
    assert seen and all(p.dtype is torch.bfloat16 for p in seen)
    losses = [r["train/loss/total"] for r in read_metrics(run) if "train/loss/total" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    if not torch.cuda.is_available():  # device=auto resolved to the CPU: refused before any episode
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            train(tiny_config("device=auto", "train.precision=16"), run_dir=tmp_path / "fp16")
        assert not (tmp_path / "fp16" / "replay" / "replay.json").exists()


def test_static_resets_scan_equals_the_default_scan():
    """``RSSM.static_resets`` (the CUDA-graph path) masks every step without reading ``is_first`` on the
    host; the posteriors are the same numbers as the default scan's, resets mid-sequence included."""
    model = tiny_planet()
    b, t = 3, 6
    g = torch.Generator().manual_seed(2)
    embeds = torch.randn(b, t, model.rssm.embed_dim, generator=g)
    actions = torch.rand(b, t, 2, generator=g) * 2 - 1
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0], is_first[1, 3] = True, True  # one row starts a new episode at step 3
    posts = []
    for static in (False, True):
        model.rssm.static_resets = static
        torch.manual_seed(4)
        posts.append(model.rssm.observe(embeds, actions, is_first))
    for key in posts[0].keys():
        assert torch.allclose(posts[0][key], posts[1][key], atol=1e-6), key
    # without the reset the row's later states differ: the mask matters in both paths
    model.rssm.static_resets = True
    torch.manual_seed(4)
    no_reset = model.rssm.observe(embeds, actions, torch.zeros_like(is_first).index_fill_(1, torch.tensor([0]), True))
    assert not torch.allclose(no_reset[keys.DETER][1, 3:], posts[1][keys.DETER][1, 3:])


def test_cuda_graph_refusals_name_what_is_allowed():
    with pytest.raises(ConfigError, match=r"train.cuda_graph.*precision 32 or bf16"):
        load_config(None, ["train.cuda_graph=true", "train.precision=16"])
    from worldmodels.training.cuda_graph import check_graphable

    with pytest.raises(ConfigError, match=r"needs a CUDA GPU.*train.cuda_graph=false"):
        check_graphable(tiny_planet(), "cpu", FLOAT32)
    from worldmodels.training.learner_setup import prepare_learner

    cfg = load_config(None, ["device=cpu", "train.cuda_graph=true"])
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        prepare_learner(cfg, tiny_planet(), "cpu")
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="supports the RSSM models"):
            check_graphable(torch.nn.Linear(2, 2), "cuda", FLOAT32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_update_matches_eager_updates():
    from worldmodels.training.cuda_graph import GraphedUpdate

    batch = tiny_batch().to("cuda")
    losses = {}
    for name in ("eager", "graph"):
        model = tiny_planet().to("cuda")
        opt = make_model_optimizer(TINY_PLANET, model)
        precision = Precision(32, "cuda")
        if name == "graph":
            precision.graph = GraphedUpdate(model, precision, warmup=2)
        values = []
        for update in range(6):  # 2 warm-up, capture at 3, replays after
            torch.manual_seed(10 + update)
            metrics, _ = gradient_step(model, opt, TINY_PLANET.grad_clip, batch, update, precision)
            values.append(float(metrics["train/loss/total"]))
        losses[name] = values
    # the graph's sampling noise comes from its own Philox offsets, so replays match eager in level, not bits
    assert losses["graph"][:2] == pytest.approx(losses["eager"][:2], rel=1e-5)
    assert losses["graph"][2:] == pytest.approx(losses["eager"][2:], rel=0.05)
    assert losses["graph"][-1] < losses["graph"][2]
