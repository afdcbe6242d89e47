"""Planners and behaviour learners that act through the WorldModel interface."""
