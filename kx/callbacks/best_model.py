"""BestModel: keeps the model of the best epoch by a declared metric, written atomically."""

import json
import math
import warnings
from pathlib import Path

import keras

from kx import _files

__all__ = ["BestModel"]

DEFAULT_SETTINGS = ("min", "val_loss")
_MODES = ("min", "max")


class BestModel(keras.callbacks.Callback):
    """Keeps `best.keras` (the best epoch by a monitored log value), `last.keras` and a record.

    At each epoch end the model is saved as `last.keras`, and as `best.keras` when the monitored
    value improved on the best so far; `best.json` then records `{"epoch", "value", "monitor",
    "mode"}` (and `last_epoch`). Every file is written to a temporary file in `directory` and
    renamed over the old one, so a run killed mid-write leaves the previous, complete file (the
    record is written after the model: after a kill between the two renames it lags by one
    improvement). A new run on the same directory reads `best.json` and only replaces
    `best.keras` when it beats the recorded value. The `.keras` files hold the compile state:
    `keras.models.load_model` returns a compiled model (a `kx.CustomModel` with its
    definitions, when they are serializable).

    What is monitored comes from the model's `best_logging_settings()` (`kx.CustomModel`:
    `("min", "val_loss")` by default, override it to return e.g. `("max", "val_f1")`), or from
    `mode` and `monitor` here, which win. A `keras.Model` without the hook monitors
    `val_loss` (min). List `BestModel` after the callbacks that add the monitored key (e.g. a
    `kx.callbacks.Evaluator`): Keras calls callbacks in list order.

    Args:
        directory: folder of the files (created if missing).
        monitor: the log key, e.g. `"val_f1"`. Defaults to `None` (the model's settings).
        mode: `"min"` or `"max"`. Defaults to `None` (the model's settings).
        save_last: whether to write `last.keras` every epoch. Defaults to `True`.

    Raises:
        ValueError: at an epoch end whose logs lack the monitored key (the message lists the
            keys that are there). An epoch without validation logs (`validation_freq`) only
            warns, for a `val_` key.

    Example:

    >>> import keras, numpy as np, kx, tempfile, json, os
    >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> directory = tempfile.mkdtemp()
    >>> _ = model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=2, verbose=0,
    ...               callbacks=[kx.callbacks.BestModel(directory)])
    >>> sorted(os.listdir(directory))
    ['best.json', 'best.keras', 'last.keras']
    >>> json.load(open(os.path.join(directory, "best.json")))["monitor"]
    'val_loss'
    """

    BEST = "best.keras"
    LAST = "last.keras"
    RECORD = "best.json"

    def __init__(self, directory, monitor=None, mode=None, save_last=True):
        super().__init__()
        if not isinstance(directory, (str, Path)):
            raise TypeError(
                f"BestModel: expected `directory` to be a path. Received: {directory!r}"
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(
                f"BestModel: expected `monitor` to be a log key such as 'val_loss'. "
                f"Received: monitor={monitor!r}"
            )
        if mode is not None and mode not in _MODES:
            raise ValueError(
                f"BestModel: expected `mode` to be 'min' or 'max'. Received: mode={mode!r}"
            )
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.save_last = bool(save_last)
        self.best = None
        self.best_epoch = None
        self._mode, self._monitor = mode, monitor  # resolved at the start of training
        self._warned = False

    @property
    def best_path(self):
        return self.directory / self.BEST

    @property
    def last_path(self):
        return self.directory / self.LAST

    @property
    def record_path(self):
        return self.directory / self.RECORD

    def on_train_begin(self, logs=None):
        self._mode, self._monitor = self._settings()
        self.directory.mkdir(parents=True, exist_ok=True)
        _files.remove_leftovers(self.directory, (self.BEST, self.LAST, self.RECORD))
        self.best = self.best_epoch = None
        if self.record_path.exists():
            record = json.loads(self.record_path.read_text())
            if (record.get("monitor"), record.get("mode")) != (self._monitor, self._mode):
                raise ValueError(
                    f"BestModel: {self.record_path} records the best {record.get('mode')!r} "
                    f"of {record.get('monitor')!r}, but this run monitors the {self._mode!r} of "
                    f"{self._monitor!r}. Use another directory, or delete the record to start over."
                )
            self.best, self.best_epoch = record["value"], record["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._monitor not in logs:
            self._missing(logs)
        else:
            value = float(logs[self._monitor])
            if self._improves(value):
                _files.save_model(self.model, self.best_path)
                self.best, self.best_epoch = value, epoch
        if self.save_last:
            _files.save_model(self.model, self.last_path)
        if self.best is not None:
            _files.write_json(self.record_path, {
                "epoch": self.best_epoch, "value": self.best, "monitor": self._monitor,
                "mode": self._mode, "last_epoch": epoch,
            })  # fmt: skip

    def _improves(self, value):
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self._mode == "min" else value > self.best

    def _missing(self, logs):
        if self._monitor.startswith("val_") and not any(k.startswith("val_") for k in logs):
            if not self._warned:
                warnings.warn(
                    f"BestModel: no validation logs this epoch, so {self._monitor!r} is not "
                    "there; the best model is updated only at epochs with validation (give "
                    "fit `validation_data` or `validation_split`).",
                    stacklevel=2,
                )
                self._warned = True
            return
        raise ValueError(
            f"BestModel: the monitored key {self._monitor!r} is not in the epoch logs. The logs "
            f"hold {sorted(logs)}. Pass `monitor=` one of them, or return it from the model's "
            "best_logging_settings(); a key added by a callback (e.g. a kx.callbacks.Evaluator) "
            "is seen only when that callback is listed before BestModel."
        )

    def _settings(self):
        settings = DEFAULT_SETTINGS
        hook = getattr(self.model, "best_logging_settings", None)
        if hook is not None and (self.mode is None or self.monitor is None):
            settings = hook()
            if (
                not isinstance(settings, (tuple, list))
                or len(settings) != 2
                or settings[0] not in _MODES
                or not isinstance(settings[1], str)
            ):
                raise ValueError(
                    f"BestModel: expected {type(self.model).__name__}.best_logging_settings() to "
                    "return (mode, monitor) with mode 'min' or 'max', e.g. ('max', 'val_f1'). "
                    f"Received: {settings!r}"
                )
        return self.mode or settings[0], self.monitor or settings[1]
