"""The demo (`python -m kx.demo`) runs on every backend and learns."""

import numpy as np

from kx import demo


def test_demo_trains_and_reports(capsys):
    model = demo.main(epochs=2)
    out = capsys.readouterr().out
    for key in ("ce=", "recon=", "acc=", "cls_f1=", "val_loss=", "validation report"):
        assert key in out, key
    x, y = demo.imbalanced_digits()
    assert np.bincount(y)[:5].min() > 3 * np.bincount(y)[5:].max()  # really imbalanced
    logits = model.predict({"image": x[:200]}, verbose=0)["logits"]
    assert (np.argmax(logits, -1) == y[:200]).mean() > 0.5  # two epochs already learn
