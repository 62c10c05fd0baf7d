"""The demo (`python -m kx.demo`) runs on every backend and shows what kx adds to stock Keras."""

import re

import numpy as np

from kx import demo


def test_demo_compares_stock_and_kx_per_class(capsys):
    model = demo.main(epochs=6)
    out = capsys.readouterr().out
    for key in ("was refused", "class_weight", "recall stock", "recall kx", "ce=", "recon=",
                "cls_f1=", "val: loss=", "PRED/GT: ", "BestModel kept epoch",
                "ClassificationReport of the last epoch"):
        assert key in out, key
    stock, ours = map(float, re.search(r"mean recall: stock ([\d.]+), kx ([\d.]+)", out).groups())
    assert ours > stock  # class weights lift the rare classes that stock Keras could not weigh
    x, y = demo.imbalanced_digits()
    counts = np.bincount(y)
    assert counts[:5].min() > 8 * counts[5:].max()  # really imbalanced
    logits = model.predict({"image": x[:200]}, verbose=0)["logits"]
    assert (np.argmax(logits, -1) == y[:200]).mean() > 0.5
    assert out.count("PRED/GT: ") == 6 * 2  # PrintEvaluate(2): two samples per epoch
