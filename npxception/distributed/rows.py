"""Each rank's loader: only its contiguous rows of every global batch are read, decoded and augmented.

Batch b of epoch e is the same set of samples in the same order on every rank (the permutation
seeded by (seed, e)); rank r takes rows `batch_share(len(batch), N, r)` of it, so the shares of the
smaller last batch are cut from its own length. In memory, `Loader(share=...)` draws the whole
batch's augmentation and applies the share's part; streamed, every sample's crop and flip come from
its own generator (seed, epoch, sample), so decoding only the share's samples gives them already.
Either way rank r's rows are bitwise those rows of the one-process batch, and N ranks together do
the reading and decoding of one process, not N times it.
"""

from __future__ import annotations

import numpy as np

from ..data.loader import Loader, batch_share
from ..data.streaming.loader import StreamingDataset, StreamingLoader


class StreamedShare(StreamingLoader):
    """A StreamingLoader that decodes only `rank`'s rows of every global batch."""

    def __init__(self, data: StreamingDataset, batch_size: int, *, rank: int, size: int, **options):
        super().__init__(data, batch_size, **options)
        self.rank, self.size = rank, size

    def samples(self, epoch: int, index: int, order: np.ndarray | None = None) -> np.ndarray:
        batch = super().samples(epoch, index, order)
        start, stop = batch_share(len(batch), self.size, self.rank)
        return batch[start:stop]


def share_loader(data, batch_size: int, rank: int, size: int, **options) -> Loader | StreamingLoader:
    """The loader of `rank`'s rows of each global batch of `data` (in memory or streamed)."""
    if isinstance(data, StreamingDataset):
        return StreamedShare(data, batch_size, rank=rank, size=size, **options)
    return Loader(data, batch_size, share=(rank, size), **options)
