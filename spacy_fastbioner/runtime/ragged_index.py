"""Index arithmetic on ragged data (runs of rows, one run per item)."""

import numpy


def concat_ranges(starts: numpy.ndarray, lengths: numpy.ndarray) -> numpy.ndarray:
    """The concatenation of range(start, start + length) for each pair.

    starts (numpy.ndarray): (n,) int64 first indices.
    lengths (numpy.ndarray): (n,) int64 non-negative run lengths.
    RETURNS (numpy.ndarray): (lengths.sum(),) int64 indices.
    """
    return numpy.arange(int(lengths.sum())) - numpy.repeat(numpy.cumsum(lengths) - lengths - starts, lengths)
