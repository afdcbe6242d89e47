"""``worldmodels imagine RUN_DIR``: load a trained run and render its open-loop imagination report.

Held-out sequences come from fresh episodes (``source="random"``: random actions, never seen in
training; the default) or from the run's replay (``source="replay"``: its most recent episodes).
Models without a decoder are shown through a probe decoder trained on their frozen features
(``worldmodels/models/probe.py``), cached as ``RUN_DIR/probe.pt`` and labelled in the video.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tensordict import TensorDict

from worldmodels.core.paths import writable_directory, writable_file
from worldmodels.data.collect import collect_episode
from worldmodels.data.replay import SequenceReplay
from worldmodels.data.rows import steps_to_rows
from worldmodels.methods import load_trained
from worldmodels.models.probe import ProbeDecoder, train_probe
from worldmodels.training.offline import ensure_dataset
from worldmodels.viz.openloop import imagine_report


def fresh_sequences(env, count: int, length: int) -> TensorDict:
    """``count`` random-action episodes as replay rows, cut to ``length`` -> TensorDict ``[count, length]``."""
    rows = []
    for _ in range(count):
        episode = steps_to_rows(collect_episode(env))
        if episode.shape[0] < length:
            raise ValueError(
                f"Episodes of this run have {episode.shape[0]} observations; context + horizon ({length}) must not exceed it."
            )
        rows.append(episode[:length])
    return torch.stack(rows)


def replay_sequences(cfg, run_dir: Path, count: int, length: int):
    """The last ``count`` episodes of the run's replay, cut to ``length`` -> ``[count, length]``."""
    replay = SequenceReplay(run_dir / "replay", capacity=cfg.replay.capacity)
    episodes = [replay.episode(i) for i in range(replay.num_episodes)]
    episodes = [e for e in episodes if e.shape[0] >= length][-count:]
    if not episodes:
        raise ValueError(f"The run's replay has no episode with {length} observations (context + horizon).")
    return torch.stack([e[:length] for e in episodes])


def training_batches(trained, run_dir: Path, batch_size: int, length: int):
    """A ``() -> TensorDict [B, T]`` sampler over the run's own training data: its offline dataset
    (offline methods) or its replay (online methods), on the model's device."""
    cfg, device = trained.cfg, trained.model.device
    if trained.method.loop == "offline":
        store = ensure_dataset(cfg, run_dir, device=device)
    else:
        store = SequenceReplay(run_dir / "replay", capacity=cfg.replay.capacity, device=device)
    return lambda: store.sample(batch_size, length)


def load_or_train_probe(trained, run_dir: Path, steps: int = 2000):
    """The run's probe decoder (trained once on the run's training frames, cached as ``probe.pt``)."""
    model = trained.model
    path = run_dir / "probe.pt"
    probe = ProbeDecoder(model.feature_dim, model.image_shape).to(model.device)
    if path.is_file():
        probe.load_state_dict(torch.load(path, map_location=model.device))
        return probe
    sample = training_batches(trained, run_dir, 16, min(8, trained.cfg.replay.sequence_length))
    probe = train_probe(model, sample, steps=steps, probe=probe)
    torch.save(probe.state_dict(), path)
    return probe


def imagine_run(run_dir, episodes: int = 6, context: int = 5, horizon: int = 45, out=None,
                device=None, source: str = "random", probe_steps: int = 2000) -> dict:  # fmt: skip
    """Write the open-loop video (truth | model | error), error plot, CSV and JSON for a run."""
    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1, got context={context}, horizon={horizon}.")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}.")
    run_dir = Path(run_dir)
    if out is not None:
        writable_file(out, "--out", (".mp4", ".gif"))  # before the work, not after it
    trained = load_trained(run_dir, device=device, render=True)
    cfg, env, model = trained.cfg, trained.env, trained.model
    if not model.has_decoder and not cfg.env.renders():  # the probe learns from the run's stored pixels
        env.close()
        raise ValueError(
            f"This run's model reads only the observation vector (env.observation: {cfg.env.observation}) and its "
            "replay holds no pixels to train a probe decoder on; train with env.render: true to view its imagination."
        )
    length = context + horizon
    if source == "random":
        batch = fresh_sequences(env, episodes, length)
    elif source == "replay":
        batch = replay_sequences(cfg, run_dir, episodes, length)
    else:
        raise ValueError(f"source must be 'random' or 'replay', got {source!r}.")
    env.close()
    probe = None if model.has_decoder else load_or_train_probe(trained, run_dir, steps=probe_steps)
    out = Path(out) if out else writable_directory(run_dir / "videos", "the run's videos folder") / "openloop.mp4"
    batch = batch.to(model.device)
    with torch.no_grad():
        return imagine_report(model, batch, out, context=context, horizon=horizon, probe=probe)

