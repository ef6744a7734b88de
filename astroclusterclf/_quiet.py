# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Import TensorFlow without its C++ start-up chatter.

TensorFlow's native libraries print informational lines (oneDNN, CUDA
drivers, cuInit) straight to file descriptor 2 while they load, before
``TF_CPP_MIN_LOG_LEVEL`` takes effect.  An astronomer running
``astroclusterclf label`` should see the answer, not that.  Unless
``TF_CPP_MIN_LOG_LEVEL`` is ``0`` (the user wants everything), the import
and device discovery run with descriptor 2 sent to a temporary file, which
is shown only if the import fails.
"""

import contextlib
import os
import sys
import tempfile

__all__ = []


@contextlib.contextmanager
def _stderr_to_tempfile():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real descriptor 2
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors='replace'))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Import TensorFlow (once), quietly unless ``TF_CPP_MIN_LOG_LEVEL=0``."""
    if 'tensorflow' in sys.modules:
        return
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0':
        import tensorflow  # noqa: F401
        return
    with _stderr_to_tempfile():
        import tensorflow as tf
        tf.config.list_physical_devices()
