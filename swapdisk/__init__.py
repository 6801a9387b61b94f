"""vmlab's swap device: page-sized slots in a Linux-format swap file.

    >>> import tempfile
    >>> from vmlab_swapdisk import SwapDisk
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with SwapDisk.create(tmp + "/swap.img", 1 << 20) as d:
    ...         print(d.slots, d.swaps_line().split()[1:])
    255 ['file', '1020', '0', '-2']
"""

from vmlab_swapdisk.bitmap import SlotBitmap
from vmlab_swapdisk.disk import SwapChecksumError, SwapDisk, SwapError, SwapFull, mkswap
from vmlab_swapdisk.header import PAGE, BadSwapHeader, SwapHeader

__all__ = ["PAGE", "BadSwapHeader", "SlotBitmap", "SwapChecksumError", "SwapDisk",
           "SwapError", "SwapFull", "SwapHeader", "mkswap"]
