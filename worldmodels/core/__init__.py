"""worldmodels.core."""
