"""Progress bars that appear only where someone watches: a terminal or a notebook."""

from __future__ import annotations

import sys


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


def bar(enabled: bool, total: int, desc: str):
    """A tqdm bar when ``enabled`` and output is interactive, else a silent stand-in."""
    if not enabled:
        return _Silent()
    if _in_notebook():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(total=total, desc=desc, unit="sample", leave=False)
        except ImportError:  # ipywidgets missing: fall back to text
            pass
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", leave=False, file=stream, dynamic_ncols=True)
