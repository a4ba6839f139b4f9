"""The pipeline's stages in order: ingest, sample, generate, filter, (embed, index) retrieve,
judge, mine, (testset) distill, train, evaluate. Each has its config dataclass and a `run_*` entry."""
