"""A registry of named plug-ins: the mechanism only (the entries come from the floors above).

``core.config.TASKS`` is one: ``alad_kit.tasks`` registers POS, NER and QA, and anyone registers another task
with ``alad_kit.tasks.register``. It behaves like the tuple of names it replaced (``in``, iteration in
registration order, ``len``), so argparse ``choices=`` and the checks of the configs read it live: a task
registered after import is a valid choice at the next validation.
"""

from __future__ import annotations


class Registry:
    """Names -> entries, in registration order. ``get`` raises one line naming the choices."""

    def __init__(self, what: str):
        self.what, self._entries = what, {}

    def add(self, name: str, entry, replace: bool = False) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a {self.what} name must be an identifier, got {name!r}")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(f"{self.what} {name!r} is registered already (pass replace=True to replace it)")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str):
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(tuple(self._entries))

    def __reversed__(self):
        return reversed(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
