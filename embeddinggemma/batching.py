"""Length bucketing: sort texts by length and pad to a few fixed shapes so compiled programs are reused."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# Steps of 16 up to 128, then about 1.15x apart: little padding (a few percent of the tokens of a
# length-sorted corpus) for about 30 compiled lengths, each compiled once in ~1 s.
LENGTH_BUCKETS = (16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 288, 320, 384, 448,
                  512, 576, 640, 768, 896, 1024, 1152, 1280, 1536, 1792, 2048)


def bucket_length(length: int, max_length: int) -> int:
    """The smallest bucket that holds `length` tokens, never above `max_length`."""
    for bucket in LENGTH_BUCKETS:
        if bucket >= length:
            return min(bucket, max_length)
    return max_length


def bucket_batch_size(n: int, batch_size: int) -> int:
    """Rows to pad a batch of `n` to: a power of two, or the full batch size."""
    return min(batch_size, 1 << max(n - 1, 0).bit_length())


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of the inputs in batches of similar length, longest first."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
