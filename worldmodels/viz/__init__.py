"""worldmodels.viz.openloop."""
