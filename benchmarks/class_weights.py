"""kx.class_weights / kx.sample_weights vs scikit-learn, same run: time and peak extra memory.

The scikit-learn side is the usual recipe:
`compute_class_weight("balanced", classes=np.unique(y), y=y)` (with `np.argmax(y, 1)` first for
one-hot rows) and `compute_sample_weight("balanced", y)` (on the argmax for one-hot rows).
The floor for integer labels is one `np.bincount(y)` pass.

Peak extra memory is measured with tracemalloc (NumPy reports its allocations to it) in a
separate, untimed call, and given as a multiple of `y.nbytes`: the target is at most one extra
array of `y`'s size beyond the result.

    python benchmarks/class_weights.py            # 1e6, 1e7, 5e7 int labels; ~1-2 minutes
    python benchmarks/class_weights.py --quick    # 1e6 only, for a smoke run
"""

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # kx imports Keras; its logs are noise here

import kx  # noqa: E402

N_CLASSES = 20


def imbalanced_ints(n, rng):
    """int64 labels in [0, 20) with class frequencies falling ~400x from the first to the last."""
    out = np.empty(n, dtype=np.int64)
    step = 1 << 22
    for i in range(0, n, step):  # in chunks: no float64 temporary of the full size
        m = min(step, n - i)
        out[i : i + m] = (rng.random(m) ** 2 * N_CLASSES).astype(np.int64)
    return out


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_extra(fn):
    """Peak bytes allocated during `fn()` beyond what was allocated before, and the result."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def sk_class_weights(y):
    classes = np.unique(y)
    return dict(zip(classes.tolist(), compute_class_weight("balanced", classes=classes, y=y)))


def cases(sizes, rng):
    for n in sizes:
        y = imbalanced_ints(n, rng)
        yield f"int64 {n:.0e}", y, sk_class_weights, lambda y: compute_sample_weight("balanced", y)
        del y
    y = np.array([f"class_{i:02d}" for i in range(N_CLASSES)])[imbalanced_ints(10**6, rng)]
    yield "str 1e6", y, sk_class_weights, lambda y: compute_sample_weight("balanced", y)
    one_hot = np.eye(10, dtype=np.float32)[imbalanced_ints(10**6, rng) % 10]
    yield (
        "one-hot 1e6x10",
        one_hot,
        lambda y: sk_class_weights(np.argmax(y, 1)),
        lambda y: compute_sample_weight("balanced", np.argmax(y, 1)),
    )


def run_case(name, y, sk_cw, sk_sw, repeats):
    sk_repeats = 1 if y.size > 10**7 else repeats  # scikit-learn: ~20 s a call at 5e7
    floor = best_time(lambda: np.bincount(y), repeats) if y.dtype.kind == "i" else None
    pairs = [
        ("class_weights", lambda: kx.class_weights(y), lambda: sk_cw(y)),
        ("sample_weights", lambda: kx.sample_weights(y), lambda: sk_sw(y)),
    ]
    for fname, kx_fn, sk_fn in pairs:
        # equal results first: a benchmark of wrong answers is worthless
        kx_peak, kx_out = peak_extra(kx_fn)
        sk_peak, sk_out = peak_extra(sk_fn)
        if isinstance(kx_out, dict):
            np.testing.assert_allclose(list(kx_out.values()), list(sk_out.values()))
        else:
            np.testing.assert_allclose(kx_out, sk_out)
        del kx_out, sk_out
        t_kx = best_time(kx_fn, repeats)
        t_sk = best_time(sk_fn, sk_repeats)
        floor_s = f"{floor:10.4f}" if floor else f"{'-':>10s}"
        ratio = f"{t_kx / floor:11.2f}" if floor and fname == "class_weights" else f"{'-':>11s}"
        print(
            f"{name:16s} {fname:14s} {t_kx:8.4f} {t_sk:10.4f} {t_sk / t_kx:8.1f}x "
            f"{floor_s} {ratio} {kx_peak / y.nbytes:7.2f}y {sk_peak / y.nbytes:7.2f}y",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 5e7])
    parser.add_argument(
        "--repeats", type=int, default=3, help="best of (scikit-learn: once above 1e7 labels)"
    )
    parser.add_argument("--quick", action="store_true", help="1e6 integer labels only")
    args = parser.parse_args()
    sizes = [10**6] if args.quick else [int(s) for s in args.sizes]
    rng = np.random.default_rng(0)

    header = (
        f"{'labels':16s} {'function':14s} {'kx s':>8s} {'sklearn s':>10s} {'speed-up':>9s} "
        f"{'bincount s':>10s} {'kx/bincount':>11s} {'kx peak':>8s} {'sk peak':>8s}"
    )
    print(header)
    print("-" * len(header))
    for case in cases(sizes, rng):
        run_case(*case, args.repeats)
        del case  # free the labels before the next, larger case is made
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak memory: multiples of y.nbytes allocated beyond y (tracemalloc); sample_weights'"
          f" result is 8 bytes per label, i.e. 1.00y for int64 labels.\nprocess peak RSS: "
          f"{peak_rss:.2f} GiB")


if __name__ == "__main__":
    main()
