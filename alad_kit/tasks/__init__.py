"""Floor 5: the tasks POS, NER and QA (specs), their metrics and the QA post-processing.

The floors and their rule are in docs/architecture.md."""
