# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The compiled forward pass of a Keras model.

Calling a Keras model eagerly on each batch is several times slower than
a traced `tf.function`.  `forward_function` traces one per model, for any
batch size, and forgets it when the model is garbage-collected.
TensorFlow is imported only when a forward function is first asked for.
"""

import weakref

import numpy as np

__all__ = ['forward_function', 'forward_in_batches']

_FORWARD = weakref.WeakKeyDictionary()


def forward_function(model):
    """Return a `tf.function` computing ``model(x, training=False)``.

    Parameters
    ----------
    model : `keras.Model`
        A model with one input of shape ``(batch, ...)``, or several.

    Returns
    -------
    forward : callable
        ``forward(x)`` for a float32 batch of any size (a list of
        batches for a model with several inputs); traced once per model
        and held weakly (it does not keep the model alive).
    """
    import tensorflow as tf

    try:
        return _FORWARD[model]
    except KeyError:
        pass
    specs = [tf.TensorSpec((None,) + tuple(tensor.shape[1:]), tf.float32)
             for tensor in model.inputs]
    ref = weakref.ref(model)   # the function must not keep the model alive

    if len(specs) == 1:
        @tf.function(input_signature=specs, reduce_retracing=True)
        def forward(x):
            return ref()(x, training=False)
    else:
        @tf.function(input_signature=[specs], reduce_retracing=True)
        def forward(x):
            return ref()(list(x), training=False)
    _FORWARD[model] = forward
    return forward


def forward_in_batches(forward, items, batch_size, *, prepare=None):
    """The outputs of ``forward`` over ``items``, batch by batch.

    Parameters
    ----------
    forward : callable
        A forward pass (for example of `forward_function`).
    items : sequence
        Inputs, or what ``prepare`` turns into inputs.
    batch_size : int
        Items per call of ``forward``.
    prepare : callable, optional
        Applied to each item of a batch before they are stacked, so that
        only one batch is held prepared at a time (for example the
        normalization of raw images).

    Returns
    -------
    outputs : `~numpy.ndarray` or None
        The outputs concatenated along the first axis; `None` for no item.
    """
    outputs = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        if prepare is not None:
            batch = np.stack([prepare(item) for item in batch])
        outputs.append(np.asarray(forward(batch)))
    return np.concatenate(outputs) if outputs else None
