"""Training: the one epoch loop (loop.py), fit / fit_stream (fit.py) and the checked inputs
every trainer shares (fit_inputs.py), many models in one pass (batch.py), checkpoints and the
recipes (lr sweep, cross-validation, optimizer comparison) built on them."""

from .fit import fit, fit_stream, stratified_split  # noqa: F401
from .loop import History, TrainingDiverged  # noqa: F401
from .batch import Ensemble, ModelBatch, fit_batch, fit_ensemble  # noqa: F401
from .recipes import compare_optimizers, cross_validate, kfold_indices, lr_sweep  # noqa: F401

__all__ = ["fit", "fit_stream", "History", "TrainingDiverged", "lr_sweep", "cross_validate",
           "compare_optimizers", "kfold_indices", "stratified_split", "ModelBatch", "fit_batch",
           "fit_ensemble", "Ensemble"]
