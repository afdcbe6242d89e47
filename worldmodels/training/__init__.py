"""worldmodels.training.online."""
