"""Floor 8: running things: one run (run, record), sweeps and studies, evaluation, prediction, the demo.

The floors and their rule are in docs/architecture.md."""
