"""Planners and behaviour learners that act through the WorldModel interface.

Public API: :class:`CEMPlanner`, :class:`MPPIPlanner`, :class:`ICEMPlanner`, :class:`GradientPlanner`
(``plan(state[B], horizon=None) -> [B,H,A]``), the
objectives (:class:`RewardObjective`, :class:`GoalDistanceObjective`, :class:`SumObjective`; LEXA's
:class:`DisagreementObjective`, :class:`TemporalDistanceObjective`, :class:`EmbeddingCosineObjective`), the
imagination actor-critic (:class:`ImaginationActorCritic`) and the agents
(:class:`PlanningAgent`, :class:`PolicyAgent`) that own the belief while acting.
"""

from planners.actor_critic import ImaginationActorCritic
from planners.agents import PlanningAgent, PolicyAgent
from planners.cem import CEMPlanner
from planners.gradient import GradientPlanner
from planners.icem import ICEMPlanner
from planners.mppi import MPPIPlanner
from planners.objectives import (
    DisagreementObjective,
    EmbeddingCosineObjective,
    GoalDistanceObjective,
    Objective,
    RewardObjective,
    SumObjective,
    TemporalDistanceObjective,
)

__all__ = [
    "CEMPlanner",
    "MPPIPlanner",
    "ICEMPlanner",
    "GradientPlanner",
    "Objective",
    "RewardObjective",
    "GoalDistanceObjective",
    "SumObjective",
    "DisagreementObjective",
    "TemporalDistanceObjective",
    "EmbeddingCosineObjective",
    "ImaginationActorCritic",
    "PlanningAgent",
    "PolicyAgent",
]
