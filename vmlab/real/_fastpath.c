/* The pager's fast path: the common faults served in compiled code.
 *
 * A fault on a page that holds no frame is a zero fill or, if the page has
 * a swap slot, a swap-in: take the next frame the pager handed over, read
 * the slot into it (one pread through the lab mount, its CRC-32 checked),
 * UFFDIO_COPY it into the workload and wake it. Each one served is logged
 * for the pager, which does its books (the policy, the counters, the cost
 * samples) from the log when this returns: as Linux adds new pages to its
 * LRU lists a per-CPU batch at a time.
 *
 * Everything else goes back to the pager (the Python side) untouched:
 * any other fault, a fault when the frames handed over are used up, the
 * log full, another descriptor ready, the timeout, an error.
 *
 * The tables are the pager's (vmlab/real/pager.py), shared, not copied:
 * frame_of and slot_of (the SPT), the swap disk's written marks and CRCs.
 * Called through ctypes, which lets go of the GIL: the I/O watchdog runs.
 */

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

enum { FP_TIMEOUT = 0, FP_EVENT = 1, FP_HANDOFF = 2, FP_FULL = 3, FP_ERROR = -1, GOT_FAULT = 9 };
enum { OP_READ_MSG = 1, OP_POLL, OP_PREAD, OP_COPY, OP_WAKE };
enum { CASE_ZERO = 0, CASE_SWAP = 1 };

struct fp_rec {                 /* one fault served */
    int64_t page;
    int32_t frame;
    int32_t kind;               /* CASE_* | write << 8 */
    int64_t ns;                 /* service time: message to COPY done */
};

struct fp_state {
    /* set once by the pager */
    int32_t uffd, swapfd, ctl0, ctl1;       /* ctl*: other descriptors to watch, -1 none */
    int64_t base, npages;                   /* the region in the workload */
    int32_t *frame_of;                      /* page -> frame index, -1: none */
    int64_t *slot_of;                       /* page -> swap slot, 0: none */
    const uint8_t *written;                 /* slot -> written */
    const uint32_t *crc;                    /* slot -> CRC-32 of what was written */
    int64_t nslots;                         /* entries of written and crc */
    unsigned long (*crc32)(unsigned long, const uint8_t *, unsigned int);   /* zlib's */
    int64_t frames_base, zero_page;         /* addresses: frame 0's bytes, a page of zeros */
    int32_t swap_in;                        /* serve swap-ins here (no readahead) */
    int32_t pending;                        /* page/flags hold a fault to serve first */
    int64_t deadline;                       /* CLOCK_MONOTONIC ns to return by; 0: none */
    int64_t *inflight;                      /* a read's start (CLOCK_MONOTONIC ns), 0 none */
    /* frames to use, in order: free[used], free[used + 1], ... free[nfree - 1] */
    int32_t *free;
    int32_t nfree, used;
    /* the log */
    struct fp_rec *log;
    int32_t cap, n;
    /* out: the fault handed back (FP_HANDOFF), or what failed (FP_ERROR) */
    int64_t page, flags, slot, got;
    int32_t err, op;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Returns FP_ERROR with errno saved for operation op. */
static int fail(struct fp_state *st, int op)
{
    st->err = errno;
    st->op = op;
    return FP_ERROR;
}

/* Milliseconds poll may wait (rounded up) before the deadline; -1: no deadline. */
static int wait_ms(const struct fp_state *st, int64_t now)
{
    if (!st->deadline)
        return -1;
    int64_t left = st->deadline - now;
    return left <= 0 ? 0 : left / 1000000 > 3600000 ? 3600000 : (int)((left + 999999) / 1000000);
}

/* Waits for the next fault message into st->page/flags. Returns GOT_FAULT
 * when one came, else FP_TIMEOUT (also when a signal came: Python then runs
 * its handler, Ctrl-C say), FP_EVENT (a ctl descriptor is ready and no
 * fault is waiting) or FP_ERROR. Polls first: after a fault it served,
 * the next one is seldom there yet (one system call less than reading first). */
static int next_fault(struct fp_state *st)
{
    struct uffd_msg msg;
    struct pollfd fds[3] = {{st->uffd, POLLIN, 0}, {st->ctl0, POLLIN, 0}, {st->ctl1, POLLIN, 0}};
    for (;;) {
        int64_t now = now_ns();
        if (st->deadline && now >= st->deadline)
            return FP_TIMEOUT;          /* even with faults waiting: reports are due */
        int ready = poll(fds, 3, wait_ms(st, now));
        if (ready < 0)
            return errno == EINTR ? FP_TIMEOUT : fail(st, OP_POLL);
        if (fds[0].revents) {
            ssize_t r = read(st->uffd, &msg, sizeof msg);
            if (r == sizeof msg) {
                if (msg.event != UFFD_EVENT_PAGEFAULT)
                    continue;
                st->page = (int64_t)((msg.arg.pagefault.address - (uint64_t)st->base) >> 12);
                st->flags = (int64_t)msg.arg.pagefault.flags;
                return GOT_FAULT;
            }
            if (r >= 0)
                errno = EIO;
            if (errno != EAGAIN && errno != EINTR)
                return fail(st, OP_READ_MSG);
        }
        if (fds[1].revents || fds[2].revents)
            return FP_EVENT;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* One fold: x's two halves times the constants' two halves, plus next. */
__attribute__((target("pclmul,sse4.1")))
static inline __m128i fold(__m128i x, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                       _mm_clmulepi64_si128(x, k, 0x11)), next);
}

/* Returns zlib's CRC-32 of one page, by carry-less multiplication: four
 * 128-bit lanes folded 64 bytes at a time, folded into one, reduced to
 * 64 then 32 bits (Barrett). The algorithm and its constants (x^n mod P,
 * bit-reflected) are from Gopal et al., "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ Instruction", Intel, 2009. About 4x zlib's
 * table-driven loop here, and the test checks it against zlib. */
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc32_page_clmul(const uint8_t *p)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i lane[4];
    for (int i = 0; i < 4; i++)
        lane[i] = _mm_loadu_si128((const __m128i *)(p + 16 * i));
    lane[0] = _mm_xor_si128(lane[0], _mm_cvtsi32_si128(~0));      /* the initial ~0 */
    for (int off = 64; off < PAGE; off += 64)
        for (int i = 0; i < 4; i++)
            lane[i] = fold(lane[i], k1k2, _mm_loadu_si128((const __m128i *)(p + off + 16 * i)));
    __m128i x = lane[0];
    for (int i = 1; i < 4; i++)
        x = fold(x, k3k4, lane[i]);
    x = _mm_xor_si128(_mm_srli_si128(x, 8), _mm_clmulepi64_si128(x, k3k4, 0x10));     /* to 64 */
    x = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x, low32), k5, 0x00),
                      _mm_srli_si128(x, 4));                                          /* to 32 */
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x, low32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
    return ~(uint32_t)_mm_extract_epi32(_mm_xor_si128(x, t), 1);
}
#endif

/* Returns zlib's CRC-32 of one page: carry-less multiplication where the
 * CPU has it, else zlib's own function (st->crc32). */
uint32_t vmlab_fastpath_crc32_page(const struct fp_state *st, const uint8_t *page)
{
#if defined(__x86_64__)
    static int clmul = -1;
    if (clmul < 0) {
        __builtin_cpu_init();
        clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    }
    if (clmul)
        return crc32_page_clmul(page);
#endif
    return (uint32_t)st->crc32(0, page, PAGE);
}

/* Reads swap slot `slot` into `dst` with its checksum checked. Returns 0,
 * FP_TIMEOUT if a signal interrupted it (the fault is kept to serve again),
 * or FP_ERROR (st->got: bytes read, -1 if the read failed; errno 0: the
 * checksum did not match). */
static int read_slot(struct fp_state *st, int64_t slot, uint8_t *dst)
{
    *st->inflight = now_ns();           /* the watchdog's: a hung mount is aborted */
    ssize_t n = pread(st->swapfd, dst, PAGE, slot * PAGE);
    int saved = errno;
    *st->inflight = 0;
    st->slot = slot;
    st->got = n;
    if (n < 0 && saved == EINTR) {
        st->pending = 1;
        return FP_TIMEOUT;
    }
    errno = n < 0 ? saved : n != PAGE ? EIO : 0;
    if (n != PAGE || vmlab_fastpath_crc32_page(st, dst) != st->crc[slot])
        return fail(st, OP_PREAD);
    return 0;
}

/* Serves faults until something needs the pager. Returns FP_TIMEOUT (the
 * deadline passed, or a signal came), FP_EVENT, FP_HANDOFF (st->page/flags: the fault for the pager), FP_FULL
 * (the log is full) or FP_ERROR (st->op and st->err say what failed). */
int vmlab_fastpath_serve(struct fp_state *st)
{
    for (;;) {
        if (st->n >= st->cap)
            return FP_FULL;
        if (!st->pending) {
            int r = next_fault(st);
            if (r != GOT_FAULT)
                return r;
        }
        st->pending = 0;
        int64_t t0 = now_ns(), page = st->page;
        if (page < 0 || page >= st->npages || st->frame_of[page] >= 0)
            return FP_HANDOFF;
        int64_t slot = st->slot_of[page];
        if (slot && (!st->swap_in || slot >= st->nslots || !st->written[slot]))
            return FP_HANDOFF;          /* readahead, or an error the pager words */
        if (st->used >= st->nfree)
            return FP_HANDOFF;          /* out of frames: the pager reclaims */
        int32_t frame = st->free[st->used];
        int write = (st->flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
        uint64_t src = (uint64_t)st->zero_page;
        if (slot) {
            src = (uint64_t)(st->frames_base + (int64_t)frame * PAGE);
            int r = read_slot(st, slot, (uint8_t *)src);
            if (r)
                return r;
        }
        struct uffdio_copy copy = {
            .dst = (uint64_t)st->base + ((uint64_t)page << 12), .src = src, .len = PAGE,
            .mode = UFFDIO_COPY_MODE_DONTWAKE | (write ? 0 : UFFDIO_COPY_MODE_WP)};
        if (ioctl(st->uffd, UFFDIO_COPY, &copy) && errno != EEXIST && errno != EAGAIN)
            return fail(st, OP_COPY);
        st->used++;
        st->frame_of[page] = frame;
        st->log[st->n++] = (struct fp_rec){page, frame, (slot ? CASE_SWAP : CASE_ZERO) | write << 8,
                                           now_ns() - t0};
        struct uffdio_range range = {.start = copy.dst, .len = PAGE};
        if (ioctl(st->uffd, UFFDIO_WAKE, &range))
            return fail(st, OP_WAKE);
    }
}
