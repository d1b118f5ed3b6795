"""Training: optimizers, schedules, a moving average of the weights, clipping, checkpoints, metrics, the Trainer."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .clipping import clip_by_global_norm
from .config import SettingError, TrainConfig
from .ema import EMA
from .evaluate import evaluate
from .lock import RunLock, RunLocked
from .optimizers import OPTIMIZERS, SGD, Adam, Optimizer, RMSprop, make_optimizer
from .schedules import SCHEDULES, Schedule
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = ["EMA", "OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "CheckpointError", "Optimizer", "RMSprop", "RunLock",
           "RunLocked", "Schedule", "SettingError", "TrainConfig", "Trainer", "TrainingDiverged",
           "TrainingInterrupted", "clip_by_global_norm", "evaluate", "load_checkpoint", "make_optimizer",
           "save_checkpoint"]
