"""A run folder's life: the pipeline and its plan, config loading, manifests, the run lock, the
report."""
