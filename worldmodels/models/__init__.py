"""worldmodels.models."""
