"""Floor 6: the trainer, the alignment phases and their data, the embedding cache, callbacks and trackers.

The floors and their rule are in docs/architecture.md."""
