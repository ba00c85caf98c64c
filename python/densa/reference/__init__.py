"""densa's NumPy reference: the derivation of ``docs/backprop.md`` written literally.

Every native result is compared with this package. It favours being obviously right
over being fast: each line carries the equation it computes, under the derivation's
names (``dy``, ``dz``, ``dW``, ``db``, ``dx``, ``last_input``). ``densa.native`` exposes
the same functions with the same signatures.
"""

from .activations import Activation, activation
from .dense import dense_backward, dense_forward
from .loss import loss_backward, loss_forward
from .optimizer import adam_step, sgd_step
from .orders import sample_orders
from .training import Trainer

__all__ = [
    "Activation",
    "Trainer",
    "activation",
    "adam_step",
    "dense_backward",
    "dense_forward",
    "loss_backward",
    "loss_forward",
    "sample_orders",
    "sgd_step",
]
