"""LEXA's pieces of the training loop (``worldmodels.training.online.train`` with ``method: lexa``).

* :func:`collect_agent`: which policy collects the next episode -- the explorer, or the achiever
  practising a goal image drawn from the replay (LEXA ``expl_every_ep``: they alternate).
* :func:`log_goal_success`: every ``lexa.goal_eval_every`` episodes, the achiever's success rate on a
  goal task set, measured from the true state, and the explorer's imagined intrinsic reward next to
  that of random actions from the same replay starts; only logged (never a training signal).
"""

from __future__ import annotations

from worldmodels.core import keys


def collect_agent(behaviour, replay, episode_index: int):
    """The agent for training episode ``episode_index``: the explorer on every ``explorer_every``-th
    episode, otherwise the achiever toward an image drawn uniformly from the replay.

    Returns:
        a :class:`planners.agents.PolicyAgent`.
    """
    from planners.agents import PolicyAgent

    model = behaviour.model
    if episode_index % behaviour.config.explorer_every == 0:
        return PolicyAgent(model, behaviour.explorer_policy(sample=True))
    goal = replay.sample(batch_size=1, sequence_length=1)[keys.PIXELS][0, 0]  # [C,H,W]
    return PolicyAgent(model, behaviour.achiever_policy(goal, sample=True))


def log_goal_success(run, step: int) -> float:
    """Run the achiever on every goal of the configured goal set once; log and return the success rate.

    Logged scalars: ``eval/goal_success`` (at the last step), ``eval/goal_reached`` (at any step),
    ``eval/goal_distance`` (true-state distance at the last step, mean over goals), and
    ``eval/explorer/intrinsic`` / ``eval/random/intrinsic``: the mean imagined intrinsic reward of the
    explorer and of uniform random actions from the starts of one replay batch
    (:func:`explorer_vs_random_on_replay`).
    """
    from worldmodels.evaluation.goal_sets import goal_agent_factory, run_goal_set

    cfg = run.cfg
    task_set = cfg.lexa.goal_eval_set or cfg.env.goal_set
    agent_for = goal_agent_factory(cfg, run.model, run.behaviour)
    result = run_goal_set(cfg, run.model, task_set, agent_for, episodes=1, progress=False)
    intrinsic = explorer_vs_random_on_replay(run.model, run.behaviour, run.replay, cfg.replay.batch_size,
                                             cfg.replay.sequence_length, batches=1)  # fmt: skip
    run.logger.scalars(
        {
            "eval/goal_success": result["success_rate"],
            "eval/goal_reached": result["reached_rate"],
            "eval/goal_distance": result["final_distance"],
            "eval/explorer/intrinsic": intrinsic["explorer"],
            "eval/random/intrinsic": intrinsic["random"],
        },
        step,
    )
    return result["success_rate"]


def explorer_vs_random_on_replay(model, behaviour, replay, batch_size: int, sequence_length: int,
                                 batches: int = 1) -> dict[str, float]:  # fmt: skip
    """:meth:`LexaBehaviour.explorer_vs_random` from the posterior states of ``batches`` replay batches
    (filtered with ``model.observe``), averaged over the batches.

    Returns:
        ``{"explorer": float, "random": float}``.
    """
    import torch

    totals = {"explorer": 0.0, "random": 0.0}
    for _ in range(batches):
        batch = replay.sample(batch_size, sequence_length)
        with torch.no_grad():
            start = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST]).reshape(-1)
        for name, value in behaviour.explorer_vs_random(start).items():
            totals[name] += value / batches
    return totals
