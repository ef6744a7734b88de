# Licensed under a 3-clause BSD style license - see LICENSE.rst
import gc

import numpy as np
import pytest

from astroclusterclf._forward import forward_function

pytestmark = pytest.mark.slow   # imports TensorFlow (seconds)


def test_forward_function_any_batch_size_and_memoized():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False)(inputs))
    model.layers[-1].set_weights([np.eye(4, 2, dtype=np.float32)])
    forward = forward_function(model)
    assert forward_function(model) is forward
    for n in (1, 3):
        x = np.arange(4 * n, dtype=np.float32).reshape(n, 4)
        np.testing.assert_allclose(np.asarray(forward(x)), x[:, :2])


def test_forward_function_of_a_model_with_two_inputs():
    import keras

    a, b = keras.Input((2,)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Concatenate()([a, 2 * b]))
    forward = forward_function(model)
    x, y = np.ones((5, 2), np.float32), np.ones((5, 3), np.float32)
    np.testing.assert_allclose(np.asarray(forward([x, y])),
                               np.hstack([x, 2 * y]))


def test_forward_function_does_not_keep_the_model_alive():
    import weakref

    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    forward_function(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
