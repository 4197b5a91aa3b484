"""Name → factory tables for models, datasets and methods, filled by decorators at import.

Which module registers which name is listed in spikeforge.catalog: a lookup imports that module alone.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, TypeVar

from spikeforge.catalog import MODULES

F = TypeVar("F", bound=Callable)


class Registry:
    """A table of named factories; unknown names fail with the closest valid name."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._table: dict[str, Callable] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register `fn` under `name`."""

        def wrap(fn: F) -> F:
            if name in self._table and self._table[name] is not fn:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._table[name] = fn
            return fn

        return wrap

    def _load(self) -> None:
        if self._loaded:
            return
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{self.package}.{info.name}")
        self._loaded = True

    def names(self) -> list[str]:
        """The catalog's names and any registered outside it, importing nothing."""
        return sorted(set(MODULES[self.kind]) | set(self._table))

    def get(self, name: str) -> Callable:
        if name not in self._table and name in MODULES[self.kind]:
            importlib.import_module(f"{self.package}.{MODULES[self.kind][name]}")
        if name not in self._table:
            self._load()
        if name not in self._table:
            close = difflib.get_close_matches(name, self._table, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._table))})")
        return self._table[name]


MODELS = Registry("model", "spikeforge.models")
DATASETS = Registry("dataset", "spikeforge.data")
METHODS = Registry("method", "spikeforge.methods")
TRANSITIONS = Registry("transition", "spikeforge.methods")
LOSSES = Registry("loss", "spikeforge.losses")
