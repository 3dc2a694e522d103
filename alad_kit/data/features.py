"""The column schema of every task, so empty splits and hub data keep the same types as local files."""

from __future__ import annotations

from datasets import Features, Value

try:  # datasets >= 4
    from datasets import List
except ImportError:  # datasets 2.x / 3.x: Sequence of a Value is a list column
    from datasets import Sequence as List

_STRINGS = List(Value("string"))

FEATURES: dict[str, Features] = {
    "pos": Features({"sent_id": Value("string"), "tokens": _STRINGS, "upos": _STRINGS}),
    "ner": Features({"id": Value("string"), "tokens": _STRINGS, "ner_tags": _STRINGS}),
    "qa": Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": _STRINGS, "answer_start": List(Value("int32"))},
        }
    ),
    "corpus": Features({"text": Value("string")}),
}
