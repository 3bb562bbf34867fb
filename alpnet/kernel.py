"""The compiled inner loop of exact inference: one pass per row over its live cause space.

:class:`alpnet.engine.Engine` reduces a row's evidence to *factors* over the hidden
variables (causes and leak): small tables whose product is P(C = c, evidence). This
module multiplies them out over the cause space and sums the result into every
cause's marginal, row by row, in code compiled by numba, so that a row costs a few
passes over a vector that stays in the processor's cache, with no Python between them.

The row's vector is grown as in :meth:`alpnet.engine.Engine._grown_blocks`: it starts
over no causes and doubles as each hidden variable joins, from the last (fastest
varying) to the first live one; a factor is multiplied in as soon as its first live
variable has joined, so a factor over late causes costs a short vector. A factor with
one live variable is folded into the doubling, as are the row's per-cause multipliers
(``unary``: the findings whose probability is one number per cause, such as a normal
result in a noisy-max table, which the engine never hands over as factors). Configuration ``c`` of the vector has
the bit of hidden variable ``v`` at position ``k - 1 - v`` (the first variable varies
slowest), as in the rest of the engine, so a factor's entry for ``c`` is found by
compressing the bits of its variables: two small lookup tables per factor scope, one
for the low byte of ``c`` and one for the rest (:func:`scope_tables`).

Narrow levels (a vector of at most 256 configurations) take each factor in turn. A
wide level is worked through one block of 256 configurations (the low byte) at a time,
so that the block stays in the fastest cache while the level's doubling and all its
factors are applied to it:

* a factor with every low variable multiplies the block by a contiguous row of its table;
* the others read a few low variables: their entries over those variables are multiplied
  together into a short vector first, and the block multiplied by it once, by runs of
  equal entries; when they read fewer high bits than there are blocks, that product is
  worked out once per value of those bits instead of once per block;
* on the last level the block is summed into the marginals as soon as it is final.

Each row is computed alone, in a fixed order, so its numbers do not depend on the
other rows of a call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["LOW_BITS", "RUN", "FULL", "LOW_MASK", "HIGH_MASK", "scope_tables", "posterior_rows"]

#: Bits of a configuration index looked up in the low table (the rest in the high one).
LOW_BITS = 8
#: Where :func:`scope_tables` puts a scope's low-byte facts, after its ``2 * (k + 1)`` level
#: entries: the run length (bits), whether it has every low variable, the low bits it reads,
#: the high bits it reads.
RUN, FULL, LOW_MASK, HIGH_MASK = 0, 1, 2, 3


def scope_tables(positions: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables that find a factor's entry from a configuration of the cause space.

    Parameters
    ----------
    positions : tuple of int
        The factor's hidden variables (engine positions), ascending; its table is in C
        order over them (the first slowest).
    k : int
        Number of hidden variables.

    Returns
    -------
    high : ndarray of int64
        See ``low``.
    low : ndarray of int64
        ``high[c >> LOW_BITS] + low[c & (2**LOW_BITS - 1)]`` is the table index of
        configuration ``c``.
    levels : ndarray of int64, shape (2 * (k + 1) + 4,)
        ``levels[m]``: with the first ``m`` hidden variables ruled out, the factor's first
        variable at or after ``m`` (``k`` when none); ``levels[k + 1 + m]``: how many of its
        variables are at or after ``m``; from ``2 * (k + 1)`` on, its low-byte facts at
        offsets :data:`RUN` (its entries over the low byte come in runs of 2 to that power),
        :data:`FULL` (1 when it has every low variable: its entries over the low byte are
        then contiguous in its table), :data:`LOW_MASK` (the bits of the low byte it reads)
        and :data:`HIGH_MASK` (the bits of ``c >> LOW_BITS`` it reads).
    """
    low_bits = min(LOW_BITS, k)
    high = np.zeros(2 ** (k - low_bits), dtype=np.int64)
    low = np.zeros(2**low_bits, dtype=np.int64)
    n = len(positions)
    for j, p in enumerate(positions):
        bit = k - 1 - p
        weight = 1 << (n - 1 - j)
        if bit < low_bits:
            low += ((np.arange(low.size) >> bit) & 1) * weight
        else:
            high += ((np.arange(high.size) >> (bit - low_bits)) & 1) * weight
    levels = np.full(2 * (k + 1) + 4, k, dtype=np.int64)
    for m in range(k + 1):
        live = [p for p in positions if p >= m]
        levels[m] = live[0] if live else k
        levels[k + 1 + m] = len(live)
    low_positions = [p for p in positions if k - 1 - p < low_bits]
    # the low byte's entries come in runs of equal value, as long as the bits below the
    # factor's last low variable; when it has every low variable, they are contiguous
    facts = 2 * (k + 1)
    levels[facts + RUN] = (k - 1 - low_positions[-1]) if low_positions else low_bits
    levels[facts + FULL] = int(len(low_positions) == low_bits)
    levels[facts + LOW_MASK] = sum(1 << (k - 1 - p) for p in low_positions)
    levels[facts + HIGH_MASK] = sum(1 << (k - 1 - p - low_bits) for p in positions if k - 1 - p >= low_bits)
    return high, low, levels


@njit(cache=True, nogil=True, inline="always")
def _apply_block(w, table, base, low, run_bits, size):  # pragma: no cover - compiled
    """w[lo] *= table[base + low[lo]] for lo < size, by runs of equal entries where they are long."""
    if run_bits >= 3:
        run = 1 << run_bits
        for r0 in range(0, size, run):
            v = table[base + low[r0]]
            part = w[r0:r0 + run]
            for q in range(run):
                part[q] *= v
    else:
        for lo in range(size):
            w[lo] *= table[base + low[lo]]


@njit(cache=True, nogil=True, inline="always")
def _sum_block(block, h, colsum, rowsum, size):  # pragma: no cover - compiled
    """Add a block to the column sums and put its total in ``rowsum[h]`` (eight running sums,
    in a fixed order)."""
    # the eight running sums are local scalars, so that they stay in registers (an array of
    # them was read and written back at every step)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for lo in range(0, size, 8):
        x0 = block[lo]
        x1 = block[lo + 1]
        x2 = block[lo + 2]
        x3 = block[lo + 3]
        x4 = block[lo + 4]
        x5 = block[lo + 5]
        x6 = block[lo + 6]
        x7 = block[lo + 7]
        s0 += x0
        s1 += x1
        s2 += x2
        s3 += x3
        s4 += x4
        s5 += x5
        s6 += x6
        s7 += x7
        colsum[lo] += x0
        colsum[lo + 1] += x1
        colsum[lo + 2] += x2
        colsum[lo + 3] += x3
        colsum[lo + 4] += x4
        colsum[lo + 5] += x5
        colsum[lo + 6] += x6
        colsum[lo + 7] += x7
    rowsum[h] = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True, nogil=True, inline="always")
def _deposit(x, mask, bits):  # pragma: no cover - compiled
    """The low bits of ``x`` placed, in order, at the set bits of ``mask`` (within ``bits``)."""
    out = 0
    t = 0
    for b in range(bits):
        if (mask >> b) & 1:
            if (x >> t) & 1:
                out |= 1 << b
            t += 1
    return out


@njit(cache=True, nogil=True, inline="always")
def _extract(x, mask, bits):  # pragma: no cover - compiled
    """The bits of ``x`` at the set bits of ``mask``, packed in order (the inverse of :func:`_deposit`)."""
    out = 0
    t = 0
    for b in range(bits):
        if (mask >> b) & 1:
            if (x >> b) & 1:
                out |= 1 << t
            t += 1
    return out


@njit(cache=True, nogil=True, inline="always")
def _small_product(small, n_small, parts, n_part, r, h, scope, source, offset, static, dynamic, highs, lows,
                   low_of):  # pragma: no cover - compiled
    """small[u] = product of the partial factors' entries in block ``h`` at the low byte ``low_of[u]``."""
    for u in range(n_small):
        small[u] = 1.0
    for i in range(n_part):
        j = parts[i]
        sc = scope[r, j]
        table = static if source[r, j] == 0 else dynamic
        base = offset[r, j] + highs[sc, h]
        low = lows[sc]
        for u in range(n_small):
            small[u] *= table[base + low[low_of[u]]]


@njit(cache=True, nogil=True)
def posterior_rows(k, m, scale, unary, source, offset, scope, static, dynamic, highs, lows, levels, out):  # pragma: no cover - compiled
    """Posterior of every hidden variable for each row, and the row's P(evidence).

    Parameters
    ----------
    k : int
        Number of hidden variables.
    m : int64 array (rows,)
        Leading hidden variables ruled out in each row (their posterior is 0).
    scale : float array (rows,)
        Each row's constant factor.
    unary : float array (rows, k)
        Each row's factor of every hidden variable when present (when absent: 1), the
        product of the factors that are one number per cause.
    source, offset, scope : int64 arrays (rows, slots)
        Each row's factors: the table (0: ``static``, 1: ``dynamic``, -1: no factor in
        this slot), where it starts, and its scope (index into ``highs``, ``lows`` and
        ``levels``).
    static, dynamic : float arrays
        Factor tables, flat.
    highs, lows, levels : int64 arrays (scopes, ...)
        :func:`scope_tables` of every scope.
    out : float array (rows, k + 1)
        Filled with each row's posteriors and, in the last column, P(evidence); a row
        whose evidence is impossible gets NaN posteriors and 0.
    """
    rows, slots = source.shape
    low_bits = min(LOW_BITS, k)
    size = 1 << low_bits
    w = np.empty(1 << k)
    single0 = np.empty(k)
    single1 = np.empty(k)
    level = np.empty(slots, dtype=np.int64)
    here = np.empty(slots, dtype=np.int64)
    fulls = np.empty(slots, dtype=np.int64)
    parts = np.empty(slots, dtype=np.int64)
    low_of = np.empty(size, dtype=np.int64)
    small_of = np.empty(size, dtype=np.int64)
    small = np.empty(size)
    facts = 2 * (k + 1)  # where each scope's low-byte facts start in ``levels``
    expanded = np.empty(1 << k)
    colsum = np.empty(size)
    rowsum = np.empty(max(1, 1 << (k - low_bits)))
    for r in range(rows):
        mr = m[r]
        s = scale[r]
        for v in range(k):
            single0[v] = 1.0
            single1[v] = unary[r, v]
        for j in range(slots):
            level[j] = -1
            src = source[r, j]
            if src < 0:
                continue
            table = static if src == 0 else dynamic
            sc = scope[r, j]
            off = offset[r, j]
            d = levels[sc, mr]
            if d == k:
                s *= table[off]
            elif levels[sc, k + 1 + mr] == 1:
                c1 = 1 << (k - 1 - d)
                single0[d] *= table[off + highs[sc, 0] + lows[sc, 0]]
                single1[d] *= table[off + highs[sc, c1 >> low_bits] + lows[sc, c1 & (size - 1)]]
            else:
                level[j] = d
        w[0] = s
        n = 1
        summed = False
        for c in range(size):
            colsum[c] = 0.0
        for d in range(k - 1, mr - 1, -1):
            a0 = single0[d]
            a1 = single1[d]
            count = 0
            for j in range(slots):
                if level[j] == d:
                    here[count] = j
                    count += 1
            # the vector doubles as hidden[d] joins: its second half (d present) is the first
            # times a1, then the first is scaled by a0; on a wide level with factors, this is
            # done block by block with them (below)
            fused = count > 0 and 2 * n > size
            if not fused:
                head = w[:n]
                tail = w[n:2 * n]
                for c in range(n):
                    tail[c] = head[c] * a1
                for c in range(n):
                    head[c] *= a0
            n *= 2
            if count == 0:
                continue
            if n <= size:  # a narrow level: one short block, factor by factor
                for i in range(count):
                    j = here[i]
                    sc = scope[r, j]
                    table = static if source[r, j] == 0 else dynamic
                    _apply_block(w, table, offset[r, j] + highs[sc, 0], lows[sc], min(levels[sc, facts + RUN], k - d), n)
                continue
            # A wide level, one block of the low byte at a time (the block stays in the
            # fastest cache). Factors with every low variable multiply it by a contiguous
            # row of their table; the others read few low variables (those in ``union``):
            # per block, their entries over those variables are multiplied together into
            # ``small`` first, and the block is multiplied by ``small`` once.
            n_full = 0
            n_part = 0
            union = 0
            high_union = 0
            for i in range(count):
                j = here[i]
                sc = scope[r, j]
                if levels[sc, facts + FULL] == 1:
                    fulls[n_full] = j
                    n_full += 1
                else:
                    parts[n_part] = j
                    n_part += 1
                    union |= levels[sc, facts + LOW_MASK]
                    high_union |= levels[sc, facts + HIGH_MASK]
            n_small = 1
            run_bits = low_bits
            if n_part:
                n_union = 0
                for b in range(low_bits):
                    if (union >> b) & 1:
                        n_union += 1
                n_small = 1 << n_union
                for u in range(n_small):  # the low byte with the union's variables at u, the rest 0
                    low_of[u] = _deposit(u, union, low_bits)
                for lo in range(size):  # and back: the union's variables in a low byte
                    small_of[lo] = _extract(lo, union, low_bits)
                run_bits = 0
                while run_bits < low_bits and not (union >> run_bits) & 1:
                    run_bits += 1
            n_blocks = n >> low_bits
            high_union &= n_blocks - 1
            n_high_bits = 0
            for b in range(k):
                if (high_union >> b) & 1:
                    n_high_bits += 1
            # When the partial factors read fewer high bits than there are blocks, their
            # product over a block depends on those bits only: it is worked out once for
            # each of their values (``expanded``) and each block multiplied by its own.
            shared = n_part > 0 and (1 << n_high_bits) < n_blocks
            if shared:
                for hu in range(1 << n_high_bits):
                    _small_product(small, n_small, parts, n_part, r, _deposit(hu, high_union, k), scope, source,
                                   offset, static, dynamic, highs, lows, low_of)
                    row = expanded[hu << low_bits:(hu + 1) << low_bits]
                    for lo in range(size):
                        row[lo] = small[small_of[lo]]
            half = n_blocks // 2
            for hh in range(n_blocks):
                # the second half first: its blocks are made from the first half's, unscaled
                h = hh + half if hh < half else hh - half
                block = w[h << low_bits:(h + 1) << low_bits]
                if h >= half:
                    source_block = w[(h - half) << low_bits:(h - half + 1) << low_bits]
                    for lo in range(size):
                        block[lo] = source_block[lo] * a1
                else:
                    for lo in range(size):
                        block[lo] *= a0
                if shared:
                    hu = _extract(h, high_union, k)
                    row = expanded[hu << low_bits:(hu + 1) << low_bits]
                    for lo in range(size):
                        block[lo] *= row[lo]
                elif n_part:
                    _small_product(small, n_small, parts, n_part, r, h, scope, source, offset, static, dynamic,
                                   highs, lows, low_of)
                    _apply_block(block, small, 0, small_of, run_bits, size)
                for i in range(n_full):
                    j = fulls[i]
                    sc = scope[r, j]
                    table = static if source[r, j] == 0 else dynamic
                    base = offset[r, j] + highs[sc, h]
                    row = table[base:base + size]
                    for lo in range(size):
                        block[lo] *= row[lo]
                if d == mr:  # the last level: the block is final, sum it while it is in the cache
                    _sum_block(block, h, colsum, rowsum, size)
            if d == mr:
                summed = True
        # marginals: the vector as a (n / size) x size matrix; row sums give the high bits'
        # marginals, column sums the low bits'
        total = 0.0
        if n <= size:
            for c in range(n):
                colsum[c] = w[c]
                total += w[c]
            n_high = 1
            rowsum[0] = total
        else:
            n_high = n >> low_bits
            if not summed:
                for c in range(size):
                    colsum[c] = 0.0
                for h in range(n_high):
                    _sum_block(w[h << low_bits:(h + 1) << low_bits], h, colsum, rowsum, size)
            for h in range(n_high):
                total += rowsum[h]
        out[r, k] = total
        for v in range(k):
            if v < mr:
                out[r, v] = 0.0 if total > 0.0 else np.nan
                continue
            bit = k - 1 - v
            acc = 0.0
            if bit < low_bits:
                for lo in range(min(n, size)):
                    if (lo >> bit) & 1:
                        acc += colsum[lo]
            else:
                for h in range(n_high):
                    if (h >> (bit - low_bits)) & 1:
                        acc += rowsum[h]
            if total > 0.0:
                p = acc / total
                out[r, v] = 0.0 if p < 0.0 else (1.0 if p > 1.0 else p)
            else:
                out[r, v] = np.nan
