"""What ``fit`` records, one entry per completed epoch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """Per-epoch training record.

    Attributes
    ----------
    loss : list of float
        Mean training loss over the epoch's samples: each minibatch's loss, measured
        before its update, weighted by its size (a short last batch counts less). With
        an optimizer's ``l2``, each minibatch's loss includes its penalty
        ``l2/(2·n_b)·Σ‖W‖²`` (the objective the steps descend, as scikit-learn's
        ``loss_curve_`` counts it); ``weight_decay`` adds nothing.
    val_loss, val_accuracy : list of float
        On the validation data, after the epoch (empty without validation data;
        accuracy only for classification losses).
    seconds : list of float
        Wall time of each epoch, validation included.
    stopped_early : bool
        Early stopping ended training.
    best_epoch : int or None
        With early stopping, the 0-based index of the best monitored epoch (whose
        parameters are put back when ``restore_best``); None without early stopping.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None
    # Per epoch, the part of ``loss`` that is l2's penalty (0.0 without l2): what the
    # scikit-learn estimators need to report a regressor's loss on scikit-learn's scale.
    # Not saved with a model, and not part of as_dict.
    _penalty: list[float] = field(default_factory=list, repr=False, compare=False)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def _drop_last_epoch(self) -> None:
        """Forget the last epoch's training entries (fit, when the check after that
        epoch's last update finds the parameters NaN or inf: it did not complete)."""
        del self.loss[-1:], self._penalty[-1:], self.seconds[-1:]

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "loss": list(self.loss),
            "val_loss": list(self.val_loss),
            "val_accuracy": list(self.val_accuracy),
            "seconds": list(self.seconds),
        }

    def __getitem__(self, key: str) -> list[float]:
        return self.as_dict()[key]

    def __len__(self) -> int:
        return self.epochs
