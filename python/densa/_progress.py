"""Progress bars that appear only where someone watches: a terminal or a notebook."""

from __future__ import annotations

import sys
from typing import Protocol


class Bar(Protocol):
    """What training uses of a progress bar (tqdm's methods of these names)."""

    def update(self, n: int = 1) -> object: ...

    def set_postfix_str(self, s: str, refresh: bool = True) -> object: ...

    def close(self) -> object: ...


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _on_terminal() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def shown(enabled: bool) -> bool:
    """Whether ``bar(enabled, ...)`` would show a bar."""
    return enabled and (_in_notebook() or _on_terminal())


def bar(enabled: bool, total: int, desc: str) -> Bar:
    """A tqdm bar when ``enabled`` and output is interactive, else a silent stand-in."""
    if not shown(enabled):
        return _Silent()
    if _in_notebook():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm

            widget: Bar = notebook_tqdm(total=total, desc=desc, unit="sample", leave=False)
            return widget
        except ImportError:  # ipywidgets missing: fall back to text, on a terminal only
            pass
        if not _on_terminal():
            return _Silent()
    from tqdm import tqdm

    text: Bar = tqdm(
        total=total, desc=desc, unit="sample", leave=False, file=sys.stderr, dynamic_ncols=True
    )
    return text
