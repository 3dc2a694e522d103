"""Floor 7: reading results: probes, tables, claims, figures, the run report, benchmarks, ``alad info``.

The floors and their rule are in docs/architecture.md."""
