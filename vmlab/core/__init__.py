"""The VM core: the concepts' module table made code. It imports nothing
from the front (``vmlab.front``) or from trace replay (``vmlab.replay``).

    page      the SPT: VMAs (how to make a page) and PTEs (where it is now)
    frame     the frame table with its reverse map
    policy    choosing a victim frame
    reclaim   getting a frame back: swap-out, write-back
    fault     the fault handler, one handler per case
    process   an address space and its MMU-style access, fork, mmap, exit
    machine   the computer: frames, swap on the lab, processes, counters
"""
