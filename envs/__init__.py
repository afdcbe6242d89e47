"""Environments as torchrl EnvBases (DeepMind Control pixels, goal tasks, Two Rooms)."""
