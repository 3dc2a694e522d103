"""Floor 1: configuration and choices, atomic files and versions (io), the run directory (rundir), checkpoints, devices, locks.

The floors and their rule are in docs/architecture.md."""
