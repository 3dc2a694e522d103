"""Alignment probes: how close are the adapted student embeddings to the teacher's, token by token?

Everything here returns plain data (numpy arrays, pandas DataFrames) so notebooks, the report and the
window explorer can plot or tabulate it.

* ``token_errors``     -- per-token MSE and cosine similarity between adapted and teacher vectors.
* ``probe_frame``      -- one row per (sentence, word, phase): the long table every other view aggregates.
* ``aggregate`` / ``phase_summary`` -- means per sentence, position, tag or phase.
* ``linear_cka`` / ``cka_matrix`` -- representation similarity (Kornblith et al. 2019) across widths.
* ``token_geometry``   -- anisotropy, norm and spread of one encoder's token vectors.
* ``umap_projection``  -- 2-D map of teacher, adapted and student word vectors.
* ``embed_tokens`` / ``embed_for_probes`` -- run encoders (+ adapter) and keep one vector per word.

Word level: student and teacher may tokenize differently, but the *first sub-word* of every word exists in
both, so probes compare the first sub-word's vector of each word (the usual convention of token-level
tagging heads). The adapter itself still reads the full sub-word sequence; we only pick positions after it.
"""

from .embed import ProbeInputs, WordVectors, embed_for_probes, embed_tokens
from .frames import (
    PHASES,
    PROBE_COLUMNS,
    SHARED_SPACE,
    UMAP_COLUMNS,
    aggregate,
    load_run_frame,
    phase_summary,
    probe_frame,
    save_run_frame,
    token_errors,
)
from .geometry import cka_matrix, fit_umap, linear_cka, token_geometry, umap_projection

__all__ = [
    "PHASES", "PROBE_COLUMNS", "SHARED_SPACE", "UMAP_COLUMNS", "ProbeInputs",
    "WordVectors", "aggregate", "cka_matrix", "embed_for_probes", "embed_tokens", "fit_umap", "linear_cka",
    "load_run_frame", "phase_summary", "probe_frame", "save_run_frame", "token_errors", "token_geometry",
    "umap_projection",
]
