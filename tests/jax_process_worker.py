"""One process of the two-process JAX test (`tests/test_data_distributed.py`).

    python tests/jax_process_worker.py PROCESS_ID PORT OUT.npz

Joins a two-process JAX job on 127.0.0.1:PORT (CPU devices, gloo collectives), sets
`keras.distribution.DataParallel` over both processes' devices, trains `distributed_worker`'s
`kx.CustomModel` on a `kx.DataGenerator` (which then reads only its half of every global batch)
and writes the History, the final weights and the generator's shard to OUT.npz.
"""

import json
import os
import sys

CLASS_WEIGHT = {"logits": {0: 2.0, 2: 0.5}}


def fit_generator(model):
    """Fits `model` on `distributed_worker.data()` through a DataGenerator; returns History,
    weights, and the generator's shard with the size of the batches it reads."""
    import distributed_worker

    import kx

    x, y = distributed_worker.data()
    gen = kx.DataGenerator(x, y, batch_size=distributed_worker.BATCH, seed=0)
    h = model.fit(gen, epochs=distributed_worker.EPOCHS, shuffle=False, verbose=0,
                  class_weight=CLASS_WEIGHT)  # fmt: skip
    return h.history, model.get_weights(), (gen.shard, len(gen[0][1]["logits"]))


def main():
    process_id, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id,
        initialization_timeout=120,
    )  # fmt: skip
    import distributed_worker
    import keras
    import numpy as np

    assert jax.process_count() == 2 and len(jax.devices()) == 2
    # auto_shard_dataset=False: Keras shards only tf.data itself; the generator reads its share.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
    )
    history, weights, shard = fit_generator(distributed_worker.build())
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(weights)}
    arrays["history"] = np.array(json.dumps(history))
    arrays["shard"] = np.array(json.dumps(shard))
    np.savez(out, **arrays)


if __name__ == "__main__":
    main()
