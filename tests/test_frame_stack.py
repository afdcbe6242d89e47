"""Frame stacking (``model.frame_stack``): the stacking rule by hand, PLDM's observe/goal/loss with
stacks, config validation, and that stacks make a second-order system's action inferable."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.core.config import ConfigError, PLDMConfig, load_config
from worldmodels.core.interface import check_world_model
from worldmodels.models.frame_stack import repeat_frame, stack_frames
from worldmodels.models.pldm import PLDM

TINY = dict(encoder_channels=(4, 8), encoder_blocks=1, norm_groups=4, input_pool=2, latent_dim=16,
            predictor_hidden=16, idm_hidden=16, learning_rate=2e-3)  # fmt: skip


def tiny_model(k: int, seed: int = 0, image_shape=(3, 16, 16), **overrides) -> PLDM:
    torch.manual_seed(seed)
    return PLDM(PLDMConfig(**(TINY | {"frame_stack": k} | overrides)), action_dim=2, image_shape=image_shape)


def _ids(stack: torch.Tensor) -> list:
    """Frame ids of a stack of id-valued frames ``[B, T, k, 1, 1, 1]`` -> nested lists."""
    return stack[..., 0, 0, 0].tolist()


def test_stack_frames_by_hand_restarts_at_episode_starts_and_uses_history():
    px = torch.arange(10, 15).view(1, 5, 1, 1, 1)  # frames 10..14
    first = torch.tensor([[False, False, True, False, False]]).view(1, 5, 1)
    # without history row 0 is an episode start; row 2 starts another one
    assert _ids(stack_frames(px, first, 3)) == [[[10, 10, 10], [10, 10, 11], [12, 12, 12], [12, 12, 13], [12, 13, 14]]]
    # with history (frames 8, 9 before row 0), rows 0-1 reach back into it
    history = torch.tensor([8, 9]).view(1, 2, 1, 1, 1)
    assert _ids(stack_frames(px, first, 3, history))[0][:2] == [[8, 9, 10], [9, 10, 11]]
    # an is_first at row 0 ignores the history
    first0 = torch.tensor([[True, False, False, False, False]]).view(1, 5, 1)
    assert _ids(stack_frames(px, first0, 3, history))[0][:2] == [[10, 10, 10], [10, 10, 11]]
    assert _ids(stack_frames(px, first, 1)) == [[[10], [11], [12], [13], [14]]]
    with pytest.raises(ValueError, match="frame history must have shape"):
        stack_frames(px, first, 3, history[:, :1])
    assert _ids(repeat_frame(torch.full((2, 1, 1, 1), 7), 3)) == [[7, 7, 7], [7, 7, 7]]


def test_pldm_with_stacks_passes_check_world_model_and_carries_frames_in_its_state():
    model = tiny_model(2)
    check_world_model(model, length=4)  # the time-VICReg terms need 3 rows after the 1 of history
    assert model.encoder.image_shape == (6, 16, 16)
    assert model.initial_state(4)[keys.FRAMES].shape == (4, 1, 3, 16, 16)


@pytest.mark.parametrize("k", [2, 3])
def test_observe_one_row_at_a_time_equals_observe_on_the_whole_sequence(k):
    model = tiny_model(k).eval()
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (2, 6, 3, 16, 16), dtype=torch.uint8, generator=gen)
    is_first = torch.zeros(2, 6, 1, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True  # a second episode in sequence 1
    prev = torch.zeros(2, 6, 2)
    with torch.no_grad():
        whole = model.observe(pixels, prev, is_first)
        state, rows = None, []
        for t in range(6):
            out = model.observe(pixels[:, t : t + 1], prev[:, t : t + 1], is_first[:, t : t + 1], state=state)
            state = out[:, -1]
            rows.append(out[keys.LATENT][:, 0])
    torch.testing.assert_close(torch.stack(rows, 1), whole[keys.LATENT])
    assert whole[keys.FRAMES].shape == (2, 6, k - 1, 3, 16, 16)
    torch.testing.assert_close(whole[keys.FRAMES][:, -1, -1], pixels[:, -1])  # the newest frame last


def test_a_goal_image_is_embedded_as_the_goal_held_still():
    model = tiny_model(2).eval()
    goal = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    still = goal[:, None].expand(3, 4, 3, 16, 16)  # the same frame for 4 rows
    first = torch.zeros(3, 4, 1, dtype=torch.bool)
    first[:, 0] = True
    with torch.no_grad():
        observed = model.observe(still, torch.zeros(3, 4, 2), first)[keys.LATENT]  # [3,4,Z]
        embedded = model.embed_goal(goal)  # [3,Z]
    for t in range(4):
        torch.testing.assert_close(observed[:, t], embedded)


def test_loss_trains_on_rows_with_full_stacks_and_checks_the_window_length():
    model = tiny_model(3)
    gen = torch.Generator().manual_seed(1)
    batch = TensorDict({keys.PIXELS: torch.randint(0, 256, (4, 6, 3, 16, 16), dtype=torch.uint8, generator=gen),
                        keys.ACTION: torch.rand(4, 6, 2, generator=gen)}, batch_size=[4, 6])  # fmt: skip
    out = model.loss(batch)
    assert out.posterior.batch_size == torch.Size([4, 6])
    z = out.posterior[keys.LATENT][:, 2:]  # the 4 rows with 3 real frames
    torch.testing.assert_close(out.metrics["loss/time_sim"], ((z[:, 1:] - z[:, :-1]) ** 2).mean())
    with pytest.raises(ValueError, match="frame_stack 3 needs windows of at least 4 rows"):
        model.loss(batch[:, :3])
    with pytest.raises(ValueError, match=r"T - \(frame_stack - 1\) >= 3"):
        model.loss(batch[:, :4])


def test_config_rejects_bad_stacks_in_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="model.frame_stack"):
        PLDMConfig(frame_stack=0)
    path = tmp_path / "c.yaml"
    path.write_text("method: pldm\nenv: {suite: dmc, domain: point_mass, task: easy}\n"
                    "model: {frame_stack: 4}\nreplay: {sequence_length: 4}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"replay.sequence_length.*>= model.frame_stack \+ 1 = 5"):
        load_config(path)


def _second_order_batch(n: int, t: int, gen: torch.Generator) -> TensorDict:
    """A dot on a 16x16 frame whose *velocity* the action changes: v' = v + a/2, x' = x + v' (px).
    Two consecutive frames show v' but not v (|v| <= 1.5 at the start), so with one frame per input
    the best IDM leaves ~0.30 of the action's variance 1/3; two frames per input show both
    velocities. Starts in [7, 9] px, so 4 rows stay (nearly) inside the frame."""
    actions = torch.rand(n, t, 2, generator=gen) * 2 - 1  # [N,T,2]
    pos = torch.rand(n, 2, generator=gen) * 2 + 7
    vel = (torch.rand(n, 2, generator=gen) * 2 - 1) * 1.5
    grid = torch.arange(16.0)
    frames = []
    for i in range(t):
        img = torch.exp(-((grid[None, :, None] - pos[:, None, None, 0]) ** 2
                          + (grid[None, None, :] - pos[:, None, None, 1]) ** 2) / 2.0)  # [N,16,16]
        frames.append((img * 255).to(torch.uint8))
        vel = vel + 0.5 * actions[:, i]
        pos = pos + vel
    pixels = torch.stack(frames, 1)[:, :, None].expand(n, t, 3, 16, 16).contiguous()
    return TensorDict({keys.PIXELS: pixels, keys.ACTION: actions}, batch_size=[n, t])


def _held_out_idm(k: int, seed: int = 0, updates: int = 300) -> float:
    model = tiny_model(k, seed=seed, input_pool=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(updates):
        out = model.loss(_second_order_batch(32, 4, gen))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    with torch.no_grad():
        return float(model.loss(_second_order_batch(256, 4, torch.Generator().manual_seed(99))).metrics["loss/idm"])


def test_stacked_frames_make_a_second_order_action_inferable():
    """Chance for the IDM is Var(U[-1, 1]) = 1/3."""
    single, stacked = _held_out_idm(1), _held_out_idm(2)
    assert stacked < 0.6 * single, (single, stacked)
