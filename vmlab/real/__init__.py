"""The real machine: a real process's memory paged by vmlab through
userfaultfd. It stands on the core (frame table, policies, swap device,
the lab's I/O guard) and imports nothing from the front or trace replay.

    uffd       userfaultfd(2) through ctypes: the calls the pager makes
    pager      the fault path: one handler per case, reclaim, reference bits
    workload   the workload's side: a forked child over the region
    machine    RealMachine: the lab, the swap device, runs
    workloads  the built-in workloads of ``vmlab real``
    kernel     the same workload under the kernel's reclaim (memory cgroup)
"""
