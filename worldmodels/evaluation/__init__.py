"""worldmodels.evaluation."""
