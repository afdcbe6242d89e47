"""worldmodels.data."""
