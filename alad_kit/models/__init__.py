"""Floor 2: encoders (zoo, offline archives), their cost (params, disk, FLOPs, time), AladModel and heads, int8 students, deployment.

The floors and their rule are in docs/architecture.md."""
