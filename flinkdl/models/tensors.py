"""numpy → eager tensor without the memory TensorFlow keeps per conversion.

``tf.constant`` / ``tf.convert_to_tensor`` of a numpy value (also a numpy argument of a
``tf.function``) keep a few hundred bytes inside TF for good (docs/BENCHMARKS.md, dynamic ids'
memory), so whatever converts arrays per batch goes through :func:`to_tensor`.

>>> import numpy as np
>>> to_tensor(np.arange(3, dtype=np.int64)).numpy().tolist()
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: alignment of the arrays :func:`to_tensor` shares with TF (Eigen's largest)
ALIGN = 64


def to_tensor(a: np.ndarray) -> tf.Tensor:
    """``a`` as an eager tensor through DLPack, which shares ``a`` (or a writable, C-contiguous,
    aligned copy if it is not one; TF must not see it change afterwards): ``tf.constant`` /
    ``tf.convert_to_tensor`` of a Python or numpy value keep a few hundred bytes inside TF for
    good, and the id map converts several arrays per batch."""
    a = np.asarray(a)
    if not (a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % ALIGN == 0):
        buf = np.empty(a.nbytes + ALIGN, np.uint8)
        at = -buf.ctypes.data % ALIGN
        out = buf[at:at + a.nbytes].view(a.dtype).reshape(a.shape)
        out[...] = a
        a = out
    return tf.experimental.dlpack.from_dlpack(a.__dlpack__())
