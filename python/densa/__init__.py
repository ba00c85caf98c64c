"""densa: multilayer perceptrons whose hot path is native.

The backpropagation of ``NOTATION.md`` (dz = dy ⊙ f'(z), dW = dz·xᵀ, db = Σ dz,
dx = Wᵀ·dz) is written twice: in C++ with Eigen (``densa.native``) and literally in
NumPy (``densa.reference``), and the two are tested equal.
"""

from . import native, reference

__version__ = "0.1.0"

__all__ = ["__version__", "native", "reference"]
