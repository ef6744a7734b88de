#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Rebuild the astro_lite0 backbone weights shipped in astroclusterclf/data.

Seeded and resumable: rerun the same command after an interruption and it
continues from the frames and the epoch checkpoint already in WORK_DIR.
About an hour on a 2-core CPU with the defaults (see docs/astro_lite0.rst)::

    nohup python scripts/build_astro_lite0.py --work-dir astro-build \
        > astro-build.log 2>&1 &

Afterwards set ``SHA256`` in astroclusterclf/backbones/astro_lite.py to the
printed checksum.
"""

import argparse
import json
import logging
import math
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from astroclusterclf._atomic import atomic_write
from astroclusterclf.backbones import get_backbone
from astroclusterclf.backbones.astro_lite import (INPUT_SIZE, VARIANT, save_weights,
                                                  weights_path)
from astroclusterclf.preprocessing import normalize
from astroclusterclf.simulate import CLASS_NAMES, simulate_cluster

log = logging.getLogger('build_astro_lite0')

#: The normalizations the training frames are drawn from (with weights).
_NORMALIZATIONS = (
    (0.4, {'interval': 'zscale', 'stretch': 'asinh'}),
    (0.2, {'interval': 'percentile', 'percentile': 99.5, 'stretch': 'asinh'}),
    (0.15, {'interval': 'percentile', 'percentile': 99.0, 'stretch': 'sqrt'}),
    (0.1, {'interval': 'zscale', 'stretch': 'linear'}),
    (0.15, {'interval': 'percentile', 'percentile': 99.9, 'stretch': 'log'}),
)
#: Simulated frame sides in pixels (resized to INPUT_SIZE, as user frames are).
_SIDES = (64, 96, 128, 128, 128, 160, 192)
_CHUNK = 500


def _frame_seed(seed, index):
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _normalization(rng):
    weights = np.array([w for w, _ in _NORMALIZATIONS])
    return _NORMALIZATIONS[rng.choice(len(weights), p=weights / weights.sum())][1]


def _make_frame(seed, index):
    """Simulate, normalize and quantize training frame ``index``."""
    frame_seed = _frame_seed(seed, index)
    rng = np.random.default_rng(frame_seed)
    label = index % 2
    bands = 1 if rng.random() < 0.6 else 3
    side = int(rng.choice(_SIDES))
    data, _ = simulate_cluster(CLASS_NAMES[label], size=side, rng=frame_seed,
                               bands=bands, randomize=True)
    settings = dict(_normalization(rng), size=INPUT_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # NaN edges and gaps are intended
        rgb = normalize(data, settings=settings)
    return np.round(rgb * 255).astype(np.uint8), label


def _make_chunk(args):
    seed, start, stop, path = args
    frames, labels = zip(*(_make_frame(seed, i) for i in range(start, stop)))

    def write(tmp):
        with open(tmp, 'wb') as f:
            np.savez(f, x=np.stack(frames), y=np.array(labels, np.int8))

    atomic_write(Path(path), write, make_parents=True)
    return path


def simulate_frames(work_dir, n_frames, *, seed, workers=2, prefix='train'):
    """Simulate ``n_frames`` frames into chunk files under ``work_dir``
    (skipping chunks already there); return ``(x uint8, y int)``."""
    work_dir = Path(work_dir)
    tasks = []
    for k, start in enumerate(range(0, n_frames, _CHUNK)):
        path = work_dir / f'{prefix}-{seed}-{k:04d}.npz'
        if not path.exists():
            tasks.append((seed, start, min(start + _CHUNK, n_frames), str(path)))
    if tasks:
        log.info('simulating %d chunks of %d frames', len(tasks), _CHUNK)
        t0 = time.time()
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for i, done in enumerate(pool.map(_make_chunk, tasks), 1):
                    log.info('chunk %d/%d done (%s, %.0f s)', i, len(tasks),
                             Path(done).name, time.time() - t0)
        else:
            for task in tasks:
                _make_chunk(task)
    xs, ys = [], []
    for k in range(math.ceil(n_frames / _CHUNK)):
        with np.load(work_dir / f'{prefix}-{seed}-{k:04d}.npz') as npz:
            xs.append(npz['x'])
            ys.append(npz['y'])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def _batches(x, y, batch_size, rng, augment):
    order = rng.permutation(len(x))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        batch = x[idx].astype(np.float32) / 255.0
        if augment:
            k = rng.integers(0, 4, len(idx))
            flip = rng.random(len(idx)) < 0.5
            batch = np.stack([np.rot90(b[:, ::-1] if f else b, kk, axes=(0, 1))
                              for b, kk, f in zip(batch, k, flip)])
        yield batch, y[idx]


def build_weights(work_dir, *, output=None, n_train=20000, n_val=1000,
                  epochs=3, batch_size=32, learning_rate=3e-4, seed=0,
                  workers=2, progress=print):
    """Rebuild the astro_lite0 weights (resumable; see the module notes).

    Parameters
    ----------
    work_dir : path-like
        Where the frame chunks, the per-epoch checkpoint and the training
        log go; rerunning with the same directory resumes.
    output : path-like, optional
        The weights file to write (default: the package's own file).
    n_train, n_val : int, optional
        Training and validation frames (validation: another seed).
    epochs, batch_size, learning_rate : optional
        The recipe: Adam with a cosine-decayed learning rate.
    seed : int, optional
        Seeds the frames, the initial head and the batch order.
    workers : int, optional
        Processes that simulate frames.
    progress : callable, optional
        Receives one line of text per epoch and at the end.

    Returns
    -------
    info : dict
        The recipe, the per-epoch history (loss and accuracy on the
        training and validation frames), timings and the SHA-256.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    output = Path(output) if output is not None else weights_path()
    t0 = time.time()
    x_train, y_train = simulate_frames(work_dir, n_train, seed=seed,
                                       workers=workers)
    x_val, y_val = simulate_frames(work_dir, n_val, seed=seed + 1,
                                   workers=workers, prefix='val')
    t_sim = time.time() - t0
    progress(f'{len(x_train)} training and {len(x_val)} validation frames '
             f'ready ({t_sim:.0f} s)')

    # TensorFlow only now: the frame workers above are forked processes.
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    base = get_backbone(VARIANT, weights='imagenet', trainable=True,
                        input_size=INPUT_SIZE)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    features = base(inputs)
    x = keras.layers.Dropout(0.2, seed=seed)(features)
    outputs = keras.layers.Dense(2, activation='softmax')(x)
    model = keras.Model(inputs, outputs)
    steps_per_epoch = len(x_train) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * steps_per_epoch, alpha=0.05)
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)

    checkpoint = work_dir / 'checkpoint.weights.h5'
    opt_checkpoint = work_dir / 'optimizer.npz'
    state_path = work_dir / 'state.json'
    state = {'epoch': 0, 'history': [], 'train_seconds': 0.0}
    if state_path.exists() and checkpoint.exists() and opt_checkpoint.exists():
        state = json.loads(state_path.read_text())
        model.load_weights(checkpoint)
        with np.load(opt_checkpoint) as npz:
            for i, v in enumerate(optimizer.variables):
                v.assign(npz[f'v{i}'])
        progress(f'resumed after epoch {state["epoch"]}')

    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, probs))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(
            tf.cast(tf.argmax(probs, 1), tf.int32), y), tf.float32))
        return loss, acc

    @tf.function(reduce_retracing=True)
    def predict(x):
        return model(x, training=False)

    def evaluate():
        probs = np.concatenate([np.asarray(predict(x_val[i:i + 64].astype(
            np.float32) / 255.0)) for i in range(0, len(x_val), 64)])
        p = np.clip(probs[np.arange(len(y_val)), y_val], 1e-7, 1)
        return float(-np.log(p).mean()), float((probs.argmax(1) == y_val).mean())

    for epoch in range(state['epoch'], epochs):
        rng = np.random.default_rng([seed, epoch])
        t1 = time.time()
        losses, accs = [], []
        for step, (xb, yb) in enumerate(_batches(x_train, y_train, batch_size,
                                                 rng, True), 1):
            loss, acc = train_step(xb, yb.astype(np.int32))
            losses.append(float(loss))
            accs.append(float(acc))
            if step % 50 == 0:
                log.info('epoch %d step %d/%d loss %.4f acc %.3f (%.1f img/s)',
                         epoch + 1, step, steps_per_epoch,
                         np.mean(losses[-50:]), np.mean(accs[-50:]),
                         step * batch_size / (time.time() - t1))
        val_loss, val_acc = evaluate()
        seconds = time.time() - t1
        state['epoch'] = epoch + 1
        state['train_seconds'] += seconds
        state['history'].append({
            'epoch': epoch + 1, 'loss': float(np.mean(losses)),
            'accuracy': float(np.mean(accs)), 'val_loss': val_loss,
            'val_accuracy': val_acc, 'seconds': seconds})
        model.save_weights(work_dir / 'checkpoint.tmp.weights.h5')
        os.replace(work_dir / 'checkpoint.tmp.weights.h5', checkpoint)
        np.savez(work_dir / 'optimizer.tmp.npz',
                 **{f'v{i}': np.asarray(v) for i, v in
                    enumerate(optimizer.variables)})
        os.replace(work_dir / 'optimizer.tmp.npz', opt_checkpoint)
        atomic_write(state_path, lambda tmp: Path(tmp).write_text(
            json.dumps(state, indent=1)))
        progress(f'epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f} '
                 f'acc {np.mean(accs):.3f}, validation loss {val_loss:.4f} '
                 f'acc {val_acc:.3f} ({seconds:.0f} s)')

    sha256 = save_weights(base, output)
    info = {'variant': VARIANT, 'input_size': INPUT_SIZE, 'n_train': n_train,
            'n_val': n_val, 'epochs': epochs, 'batch_size': batch_size,
            'learning_rate': learning_rate, 'seed': seed,
            'simulate_seconds': t_sim, 'train_seconds': state['train_seconds'],
            'history': state['history'], 'sha256': sha256,
            'bytes': os.path.getsize(output), 'output': str(output)}
    atomic_write(work_dir / 'info.json', lambda tmp: Path(tmp).write_text(
        json.dumps(info, indent=1)))
    progress(f'wrote {output} ({info["bytes"] / 1e6:.1f} MB, SHA-256 {sha256})')
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='astro-build',
                        help='frames, checkpoints and log (default %(default)s)')
    parser.add_argument('--output', default=None,
                        help='weights file (default: the package data file)')
    parser.add_argument('--n-train', type=int, default=20000)
    parser.add_argument('--n-val', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--learning-rate', type=float, default=3e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(message)s')
    build_weights(args.work_dir, output=args.output, n_train=args.n_train,
                  n_val=args.n_val, epochs=args.epochs,
                  batch_size=args.batch_size,
                  learning_rate=args.learning_rate, seed=args.seed,
                  workers=args.workers, progress=print)


if __name__ == '__main__':
    main()
