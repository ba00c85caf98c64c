"""densa: multilayer perceptrons whose hot path is native.

The backpropagation of ``docs/backprop.md`` (dz = dy ⊙ f'(z), dW = dz·xᵀ, db = Σ dz,
dx = Wᵀ·dz) is written twice: in C++ with Eigen (``densa.native``) and literally in
NumPy (``densa.reference``), and the two are tested equal. ``Network`` trains on either.
"""

from . import reference
from ._config import get_num_threads, set_num_threads, show_config, threads
from .gradcheck import GradientReport, check_gradients
from .history import History
from .inspection import LayerGradients
from .layers import Dense
from .network import EarlyStopping, Network, TrainingDivergedError
from .optimizers import SGD, Adam
from .persistence import ModelFileError

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adam",
    "Dense",
    "EarlyStopping",
    "GradientReport",
    "History",
    "LayerGradients",
    "ModelFileError",
    "Network",
    "TrainingDivergedError",
    "__version__",
    "check_gradients",
    "get_num_threads",
    "reference",
    "set_num_threads",
    "show_config",
    "threads",
]
