"""Floor 9: the notebooks' widgets (window explorer) and a finished run's models phase by phase.

The floors and their rule are in docs/architecture.md."""
