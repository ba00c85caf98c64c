"""densa: multilayer perceptrons whose hot path is native.

The backpropagation of ``NOTATION.md`` (dz = dy ⊙ f'(z), dW = dz·xᵀ, db = Σ dz,
dx = Wᵀ·dz) is written twice: in C++ with Eigen (``densa.native``) and literally in
NumPy (``densa.reference``), and the two are tested equal.
"""

__version__ = "0.1.0"

from . import native, reference
from ._config import get_num_threads, set_num_threads, show_config, threads

__all__ = [
    "__version__",
    "get_num_threads",
    "native",
    "reference",
    "set_num_threads",
    "show_config",
    "threads",
]
