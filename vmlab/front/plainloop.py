"""The well-written plain replay a user could write instead of vmlab: read
the file with ``str.split``, replay with a deque, an OrderedDict or a dict
loop, OPT with next uses and a heap. ``vmlab bench`` races whole processes
of this program against ``vmlab trace``; it imports nothing from vmlab.

    python plainloop.py FILE POLICY FRAMES     # prints the fault count
"""

import heapq
import sys
from collections import OrderedDict, deque


def fifo(refs, n):
    resident, queue, faults = set(), deque(), 0
    for p in refs:
        if p in resident:
            continue
        faults += 1
        if len(queue) == n:
            resident.discard(queue.popleft())
        queue.append(p)
        resident.add(p)
    return faults


def lru(refs, n):
    resident, faults = OrderedDict(), 0
    move = resident.move_to_end
    for p in refs:
        if p in resident:
            move(p)
            continue
        faults += 1
        if len(resident) == n:
            resident.popitem(last=False)
        resident[p] = None
    return faults


def clock(refs, n):
    where, pages, bits, hand, used, faults = {}, [0] * n, bytearray(n), 0, 0, 0
    for p in refs:
        i = where.get(p)
        if i is not None:
            bits[i] = 1
            continue
        faults += 1
        if used < n:
            i, used = used, used + 1
        else:
            while bits[hand]:
                bits[hand] = 0
                hand = (hand + 1) % n
            i = hand
            del where[pages[i]]
            hand = (hand + 1) % n
        pages[i], bits[i], where[p] = p, 1, i
    return faults


def opt(refs, n):
    never = len(refs)
    nxt, last = [never] * never, {}
    for i in range(never - 1, -1, -1):
        nxt[i] = last.get(refs[i], never)
        last[refs[i]] = i
    resident, heap, faults = {}, [], 0
    for i, p in enumerate(refs):
        if p not in resident:
            faults += 1
            if len(resident) == n:
                while True:
                    neg, q = heapq.heappop(heap)
                    if resident.get(q) == -neg:
                        break
                del resident[q]
        resident[p] = nxt[i]
        heapq.heappush(heap, (-nxt[i], p))
    return faults


PLAIN = {"fifo": fifo, "lru": lru, "clock": clock, "opt": opt}

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        refs = list(map(int, f.read().split()))
    print(PLAIN[sys.argv[2]](refs, int(sys.argv[3])))
