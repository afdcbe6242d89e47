"""Open-loop rollouts, video grid layout and labels, error metrics, plots and files (worldmodels/viz/)."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch import nn

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, LossOutput, WorldModel, as_observations
from worldmodels.viz.errors import PSNR_CAP_DB, prediction_errors, save_errors
from worldmodels.viz.openloop import imagine_report, log_openloop, openloop, rollout_errors, tensorboard_openloop
from worldmodels.viz.plots import PANEL_SIZE, errors_figure, errors_image, plot_errors
from worldmodels.viz.video import (
    CONTEXT_COLOR,
    IMAGINED_COLOR,
    LABEL_COLOR,
    STEP_COLOR,
    draw_label,
    text_size,
    video_grid,
    write_video,
)


def render(position: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Integer position [..., 2] -> uint8 image [..., 3, size, size]: channels 0, 1 hold p, channel 2 holds 0."""
    p = position.round().clamp(0, 255).to(torch.uint8)
    img = torch.cat([p, torch.zeros_like(p[..., :1])], dim=-1)  # [...,3]
    return img[..., None, None].expand(*img.shape, size, size).contiguous()


class LineWorld(WorldModel):
    """Exact toy world model: the state is the position p encoded in the pixels; p_{h+1} = p_h + a_h.

    Its open-loop predictions are perfect iff ``openloop`` feeds the actions taken at rows
    C-1 .. C+H-2 (the alignment rule); it records the actions ``imagine`` received.
    """

    action_dim, feature_dim, image_shape = 2, 2, (3, 8, 8)
    has_decoder, has_reward = True, True

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.imagined_actions = None

    def initial_state(self, batch_size):
        return TensorDict({keys.LATENT: torch.zeros(batch_size, 2)}, [batch_size])

    def observe(self, obs, prev_action, is_first, state=None):
        pixels = as_observations(obs)[keys.PIXELS]
        return TensorDict({keys.LATENT: pixels[..., :2, 0, 0].float()}, pixels.shape[:2])

    def imagine(self, state, actions, horizon=None):
        self.imagined_actions = actions.clone()
        latent = state[keys.LATENT][:, None] + actions.cumsum(1)  # [N,H,2]
        return TensorDict({keys.LATENT: latent, keys.ACTION: actions}, actions.shape[:2])

    def features(self, state):
        return state[keys.LATENT] * self.scale

    def embed_goal(self, pixels):
        return pixels[..., :2, 0, 0].float()

    def reward(self, state):
        return state[keys.LATENT][..., :1] / 100.0

    def decode(self, state):
        return render(state[keys.LATENT]).float() / 255.0

    def loss(self, batch):
        zero = self.scale.sum() * 0
        return LossOutput(zero, TensorDict({}, []), self.observe(batch[keys.PIXELS], None, None))


def line_batch(batch_size=3, length=12, seed=0):
    """Replay rows obeying keys.py: action[t] taken at t, prev_action[t] = action[t-1], reward on arrival."""
    gen = torch.Generator().manual_seed(seed)
    action = torch.randint(-1, 2, (batch_size, length, 2), generator=gen).float()
    action[:, -1] = 0  # no action on the last row
    p0 = torch.randint(100, 150, (batch_size, 1, 2), generator=gen).float()
    position = torch.cat([p0, p0 + action[:, :-1].cumsum(1)], dim=1)  # p[t+1] = p[t] + action[t]
    prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], dim=1)
    is_first = torch.zeros(batch_size, length, 1, dtype=torch.bool)
    is_first[:, 0] = True
    reward = position[..., :1] / 100.0
    reward[:, 0] = 0
    td = {keys.PIXELS: render(position), keys.ACTION: action, keys.PREV_ACTION: prev_action,
          keys.IS_FIRST: is_first, keys.REWARD: reward, keys.STATE: position}  # fmt: skip
    return TensorDict(td, [batch_size, length])


def test_openloop_feeds_the_actions_taken_and_is_exact_on_a_perfect_model():
    model, batch, c, h = LineWorld(), line_batch(length=12), 4, 7
    rollout = openloop(model, batch, context=c, horizon=h)
    # imagine got the actions taken at rows C-1 .. C+H-2, i.e. prev_action of rows C .. C+H-1
    assert torch.equal(model.imagined_actions, batch[keys.ACTION][:, c - 1 : c - 1 + h])
    assert torch.equal(model.imagined_actions, batch[keys.PREV_ACTION][:, c : c + h])
    assert not torch.equal(model.imagined_actions, batch[keys.ACTION][:, c : c + h])  # the off-by-one differs
    assert rollout.truth.shape == rollout.model.shape == (3, c + h, 3, 8, 8)
    assert rollout.truth.dtype == torch.float32 and float(rollout.truth.max()) <= 1.0
    assert torch.equal(rollout.model, rollout.truth)  # exact open-loop prediction
    assert torch.allclose(rollout.reward_pred[:, 1:], rollout.reward_true[:, 1:])
    errors = rollout_errors(rollout)
    assert np.all(errors.mse == 0) and np.all(errors.psnr == PSNR_CAP_DB) and np.all(errors.latent_mse == 0)


def test_openloop_misaligned_actions_would_show_as_error():
    model, batch = LineWorld(), line_batch(length=12)
    shifted = batch.clone()
    shifted[keys.PREV_ACTION] = batch[keys.ACTION]  # feed action[t] where prev_action[t] belongs
    errors = rollout_errors(openloop(model, shifted, context=4, horizon=7))
    assert np.all(errors.mse[:4] == 0) and np.all(errors.mse[4:] > 0)
    assert np.all(errors.latent_mse[:4] == 0) and np.all(errors.latent_mse[4:] > 0)


def test_openloop_warns_when_the_window_crosses_an_episode_start():
    batch = line_batch(length=12)
    batch[keys.IS_FIRST][:, 6] = True
    with pytest.warns(UserWarning, match="episode start"):
        openloop(LineWorld(), batch, context=4, horizon=7)


def test_openloop_checks_length_and_decoder():
    model = LineWorld()
    with pytest.raises(ValueError, match="T >= context \\+ horizon = 13"):
        openloop(model, line_batch(length=12), context=5, horizon=8)
    with pytest.raises(ValueError, match="context >= 1"):
        openloop(model, line_batch(), context=0, horizon=3)
    model.has_decoder = False
    with pytest.raises(CapabilityError, match="probe"):
        openloop(model, line_batch(), context=2, horizon=3)


def test_openloop_context_matches_posterior_reconstruction_on_planet():
    from worldmodels.core.config import PlaNetConfig
    from worldmodels.models.planet import PlaNet

    torch.manual_seed(0)
    cfg = PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=1)
    model = PlaNet(cfg, action_dim=2, image_shape=(3, 64, 64))
    gen = torch.Generator().manual_seed(1)
    b, t, c, h = 2, 8, 3, 5
    batch = TensorDict(
        {keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=gen),
         keys.PREV_ACTION: torch.rand(b, t, 2, generator=gen) * 2 - 1,
         keys.IS_FIRST: torch.zeros(b, t, 1, dtype=torch.bool),
         keys.REWARD: torch.rand(b, t, 1, generator=gen)}, [b, t])  # fmt: skip
    batch[keys.IS_FIRST][:, 0] = True
    torch.manual_seed(5)
    rollout = openloop(model, batch, context=c, horizon=h)
    assert model.training  # mode restored
    torch.manual_seed(5)
    with torch.no_grad():
        model.eval()
        post = model.observe(batch[keys.PIXELS][:, :c], batch[keys.PREV_ACTION][:, :c], batch[keys.IS_FIRST][:, :c])
        recon = model.decode(post)
    assert torch.allclose(rollout.model[:, :c], recon)
    assert rollout.model.shape == (b, c + h, 3, 64, 64) and rollout.reward_pred.shape == (b, c + h, 1)
    assert float(rollout.model.min()) >= 0 and float(rollout.model.max()) <= 1


def test_video_grid_documented_size_borders_and_grey_error():
    b, t, h, w, c, u, border = 2, 6, 8, 10, 2, 3, 2
    truth = torch.rand(b, t, 3, h, w, generator=torch.Generator().manual_seed(0))
    frames = video_grid(truth, truth.clone(), context=c, upscale=u, border=border)
    tile_h, tile_w, head = u * h + 2 * border, u * w + 2 * border, 7 * u
    assert frames.shape == (t, head + 3 * tile_h, b * tile_w, 3) and frames.dtype == np.uint8
    for step in range(t):
        color = CONTEXT_COLOR if step < c else IMAGINED_COLOR
        for row in range(3):
            for col in range(b):
                y, x = head + row * tile_h, col * tile_w
                tile = frames[step, y : y + tile_h, x : x + tile_w]
                for corner in (tile[0, 0], tile[-1, -1], tile[border - 1, tile_w // 2], tile[tile_h // 2, -1]):
                    assert tuple(corner) == color
                inner = tile[border:-border, border:-border]
                if row == 2:  # model == truth -> grey error
                    assert set(np.unique(inner)) <= {127, 128}
                else:  # truth / model tiles are the frame upscaled (nearest)
                    expect = np.rint(truth[col, step].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                    assert np.array_equal(inner, expect.repeat(u, 0).repeat(u, 1))
    header = frames[:, :head]
    assert header[0].max() == 255 and not np.array_equal(header[1], header[2])  # step numbers differ
    labelled = video_grid(truth, truth, context=c, upscale=u, label="PROBE")
    assert np.array_equal(labelled[:, head:], frames[:, head:])
    assert (labelled[:, :head] == (255, 220, 0)).all(-1).any()  # yellow label ink


def test_video_grid_error_sign_and_channel_handling():
    truth = torch.zeros(1, 2, 2, 4, 4)  # two channels (Two Rooms)
    model = truth.clone()
    model[:, :, 0] = 1.0  # over-prediction in channel 0 -> error 1.0 (bright), others grey
    frames = video_grid(truth, model, context=1, upscale=1, border=1)
    error = frames[0, 7 + 2 * 6 + 1 : 7 + 2 * 6 + 5, 1:5]
    assert (error == (255, 128, 128)).all()


def ink(image, color):
    """bool [H, W]: pixels exactly ``color``."""
    return (image == color).all(-1)


def test_draw_label_inks_its_box_exactly_and_clips_at_the_edges():
    img = np.zeros((30, 80, 3), np.uint8)
    draw_label(img, "18", 5, 4, 10, (255, 0, 0))
    width, height = text_size("18", 10)
    assert 8 <= height <= 10 and width > 0
    rows, cols = np.nonzero(img.any(-1))
    assert rows.min() >= 4 and rows.max() < 4 + height and cols.min() >= 5 and cols.max() < 5 + width
    assert rows.max() - rows.min() + 1 == height  # digits fill the cap height
    assert np.array_equal(img.any(-1), ink(img, (255, 0, 0)))  # no anti-aliased blends
    other = draw_label(np.zeros_like(img), "10", 5, 4, 10, (255, 0, 0))
    assert not np.array_equal(img, other)
    assert text_size("18", 20)[0] > width  # taller text is wider
    wide = draw_label(np.zeros((12, 60, 3), np.uint8), "PROBE", -3, 2, 10)
    narrow = draw_label(np.zeros((12, 12, 3), np.uint8), "PROBE", -3, 2, 10)  # clipped on both sides
    assert narrow.shape == (12, 12, 3) and np.array_equal(narrow, wide[:, :12]) and narrow[:, -1].any()


def test_video_grid_header_text_stays_in_the_header_in_its_place():
    truth = torch.rand(3, 12, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    u, border, head = 2, 2, 14
    plain = video_grid(truth, truth, context=4, upscale=u, border=border)
    labelled = video_grid(truth, truth, context=4, upscale=u, border=border, label="PROBE")
    width = labelled.shape[2]
    assert np.array_equal(labelled[:, head:], plain[:, head:])
    for t in (0, 7, 11):
        header = labelled[t, :head]
        assert np.array_equal(header.any(-1), ink(header, STEP_COLOR) | ink(header, LABEL_COLOR))
        step_cols = np.flatnonzero(ink(header, STEP_COLOR).any(0))
        label_cols = np.flatnonzero(ink(header, LABEL_COLOR).any(0))
        assert step_cols.min() >= 1 and step_cols.max() < 1 + text_size(str(t), head - 2)[0]
        assert label_cols.min() > step_cols.max() + 4 and label_cols.max() >= width - 1 - 4  # right-aligned
        assert np.array_equal(ink(header, STEP_COLOR), ink(plain[t, :head], STEP_COLOR))
        assert ink(labelled[t, head:], LABEL_COLOR).sum() == ink(plain[t, head:], LABEL_COLOR).sum()
    one = video_grid(truth[:1], truth[:1], context=4, upscale=u, border=border, label="PROBE DECODER " * 3)
    header = one[-1, :head]  # the label cannot fit: smallest size, clipped at the right edge, not over "11"
    label_cols = np.flatnonzero(ink(header, LABEL_COLOR).any(0))
    assert label_cols.min() > np.flatnonzero(ink(header, STEP_COLOR).any(0)).max() and header[:, -3:].any()


def test_prediction_errors_hand_values():
    truth = torch.zeros(2, 3, 1, 2, 2)
    model = truth.clone()
    model[0] += 0.1  # mse 0.01 -> 20 dB
    model[1] += 0.01  # mse 1e-4 -> 40 dB
    model[:, 2] = 0  # last step exact -> cap
    errors = prediction_errors(truth, model, context=1)
    assert np.allclose(errors.mse, [0.00505, 0.00505, 0.0])
    assert np.allclose(errors.psnr, [30.0, 30.0, PSNR_CAP_DB])
    assert errors.step.tolist() == [0, 1, 2] and errors.reward_pred is None


def test_write_video_mp4_and_gif_read_back(tmp_path):
    truth = torch.rand(2, 7, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    frames = video_grid(truth, truth.flip(1), context=3, upscale=2)
    for name in ("v.mp4", "v.gif"):
        path = write_video(frames, tmp_path / name, fps=5)
        back = iio.imread(path)
        assert path.name == name and back.shape == frames.shape
    odd = write_video(np.zeros((4, 9, 11, 3), np.uint8), tmp_path / "odd.mp4")
    assert iio.imread(odd).shape == (4, 10, 12, 3)  # padded to even sizes for yuv420p
    two = np.zeros((3, 6, 6, 2), np.uint8)
    two[..., 1] = 200  # Two Rooms walls channel -> green
    two[np.arange(3), 0, 0, 0] = [0, 100, 200]  # distinct frames (a GIF merges identical ones)
    back = iio.imread(write_video(two, tmp_path / "two.gif"))
    assert back.shape == (3, 6, 6, 3) and np.all(back[:, 1:, 1:, 1] > 150) and np.all(back[:, 1:, 1:, 0] < 50)
    with pytest.raises(ValueError, match="mp4 or .gif"):
        write_video(frames, tmp_path / "v.avi")


def test_imagine_report_files_and_metrics(tmp_path):
    model, batch = LineWorld(), line_batch(batch_size=2, length=12)
    report = imagine_report(model, batch, tmp_path / "out" / "openloop.gif", context=3, horizon=8, upscale=1)
    assert iio.imread(report["video"]).shape[0] == 11 == report["num_frames"]
    assert iio.imread(report["plot"]).ndim == 3
    rows = open(report["csv"]).read().splitlines()
    assert rows[0] == "step,mse,psnr,reward_pred,reward_true,latent_mse" and len(rows) == 12
    data = json.loads(open(report["json"]).read())
    assert data["context"] == 3 and len(data["mse"]) == 11 and data["reward_pred"] is not None
    assert report["mse_imagined"] == 0.0 and report["psnr_imagined"] == PSNR_CAP_DB and not report["probe"]


def test_errors_files_without_reward(tmp_path):
    errors = prediction_errors(torch.zeros(1, 4, 3, 2, 2), torch.full((1, 4, 3, 2, 2), 0.5), context=2)
    rows = open(save_errors(errors, tmp_path / "e.csv")).read().splitlines()
    assert rows[1] == "0,0.25,6.020599913279624,,," and len(rows) == 5
    assert json.loads(save_errors(errors, tmp_path / "e.json").read_text())["reward_true"] is None
    assert iio.imread(plot_errors(errors, tmp_path / "e.png")).shape[1] == 480


def test_error_plot_png_has_one_panel_per_quantity_and_draws_the_curves(tmp_path):
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 10, 3, 4, 4, generator=gen)
    model = (truth + 0.1 * torch.rand(2, 10, 3, 4, 4, generator=gen)).clamp(0, 1)
    rewards = torch.rand(2, 10, 1, generator=gen), torch.rand(2, 10, 1, generator=gen)
    full = prediction_errors(truth, model, 3, *rewards, latent_error=torch.rand(2, 10, generator=gen))
    image = iio.imread(plot_errors(full, tmp_path / "plot.png"))
    width, height = PANEL_SIZE
    assert image.shape == (4 * height, width, 3) and image.dtype == np.uint8
    assert np.array_equal(image, errors_image(full))
    assert (image.reshape(-1, 3) != 255).any(-1).mean() > 0.02  # not blank
    for panel, color in enumerate([(31, 119, 180), (44, 160, 44), (214, 39, 40), (148, 103, 189)]):
        strip = image[panel * height : (panel + 1) * height]  # tab:blue MSE, tab:green PSNR, red reward, purple
        assert ink(strip, color).sum() > 50
    bare = prediction_errors(truth, model, 3)
    assert errors_image(bare).shape == (2 * height, width, 3)
    marker = [line for line in errors_figure(bare).axes[0].lines if line.get_linestyle() == "--"]
    assert len(marker) == 1 and np.allclose(marker[0].get_xdata(), 2.5)  # between context and imagined
    assert not any(line.get_linestyle() == "--" for line in errors_figure(bare._replace(context=None)).axes[0].lines)


def test_error_plot_leaves_gaps_for_non_finite_values():
    errors = prediction_errors(torch.zeros(1, 6, 3, 2, 2), torch.full((1, 6, 3, 2, 2), 0.5), context=2)
    errors = errors._replace(mse=np.array([0.25, np.nan, 0.3, np.inf, -np.inf, 0.2]))
    ax = errors_figure(errors).axes[0]
    y = ax.lines[0].get_ydata()
    assert np.isnan(y[[1, 3, 4]]).all() and np.allclose(y[[0, 2, 5]], [0.25, 0.3, 0.2])
    low, high = ax.get_ylim()
    assert 0.1 < low < 0.2 and 0.3 < high < 0.4  # limits from the finite values only
    assert errors_image(errors).shape == (2 * PANEL_SIZE[1], PANEL_SIZE[0], 3)


def test_tensorboard_openloop_writes_images_and_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    model, batch = LineWorld(), line_batch(batch_size=2, length=12)
    rollout = openloop(model, batch, context=2, horizon=10)
    frames = video_grid(rollout.truth, rollout.model, 2)
    writer = SummaryWriter(str(tmp_path))
    tensorboard_openloop(writer, "openloop", frames, rollout_errors(rollout), step=7)
    writer.close()
    events = EventAccumulator(str(tmp_path)).Reload()
    assert {"openloop/frames", "openloop/errors"} <= set(events.Tags()["images"])
    scalars = set(events.Tags()["scalars"])
    assert {"openloop/mse/h1", "openloop/mse/h5", "openloop/mse/h10", "openloop/psnr/imagined"} <= scalars
    assert events.Scalars("openloop/mse/h10")[0].step == 7


def test_log_openloop_for_the_training_loop(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    model, batch = LineWorld(), line_batch(batch_size=2, length=12)
    scalars = log_openloop(None, model, batch, step=3, context=2, horizon=10, video_path=tmp_path / "v.gif")
    assert scalars["openloop/mse/h10"] == 0.0 and "openloop/latent_mse/imagined" in scalars
    assert iio.imread(tmp_path / "v.gif").shape[0] == 12
    writer = SummaryWriter(str(tmp_path / "tb"))
    assert log_openloop(writer, model, batch, step=3, context=2, horizon=10) == scalars
    writer.close()
