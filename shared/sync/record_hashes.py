"""The records a backlog round has staged, by the hash of their key, in one flat table.

A round tracks up to a million records to stop before a record's second change. As a
set of ints that took ~70 MB, and the int objects, allocated among the round's short-lived
rows, kept the allocator's arenas alive. As a table of 8-byte hashes at most half full,
doubled as it filled, it took 16 MB at a million records and 24 MB while it doubled:
peak RSS at 1,000,000 rows 1.23x that at 100,000.

Here the table is sized once for the round's limit, `limit / LOAD` slots of 4 bytes (5 MB
for a million records, whatever the round stages: no growth, no copy), and never fills:
`add_new` refuses a record past the limit. A key's 64-bit hash picks its first slot from
its high 32 bits (multiply-shift, so the size need not be a power of two) and is kept as
its low 32 bits, the fingerprint; linear probing walks on to the first empty slot.
Measured against the growing table: a run of 100,000 rows 2.7 MB more peak RSS, one of
a million 17.6 MB less; peak RSS at 1,000,000 rows 1.04x that at 100,000.

A record staged before is always found (same hash: same first slot, same fingerprint, and
nothing is ever removed from the walk), so a second change is never missed. Another record
whose fingerprint equals one met on the walk is taken for a staged one: the caller ends
its round early, nothing is lost. Filling to LOAD (0.8), a round of n records compares
about 2 * n fingerprints in all (Knuth's unsuccessful-search cost, (1 + 1 / (1 - a)**2) / 2
probes at load a, less the empty slot, summed over the fill; 2.01 million measured for a
million random hashes), each a false match with chance 2**-32: one full round in about
2,100 ends early, and a smaller one less often.
"""

from __future__ import annotations

LOAD = 0.8  # the most the table is filled: a new record's walk then meets ~12 slots
_EMPTY = 0
_LOW = (1 << 32) - 1


class RecordHashesFull(ValueError):
    """A new record past the table's limit: the round ends before it."""


class RecordHashes:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a round tracks at least one record, not {limit}")
        self.limit = limit
        self._slots = int(limit / LOAD) + 1  # one empty slot at least: every walk ends
        table = memoryview(bytearray(4 * self._slots)).cast("I")
        if table.itemsize != 4:  # "I" is 4 bytes on every platform Python builds for here
            raise RuntimeError(f"unsigned int is {table.itemsize} bytes, not 4")
        self._table = table
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._count >= self.limit

    def add_new(self, record_hash: int) -> bool:
        """Add `record_hash`; False when it is there already (the same record, or rarely
        another whose fingerprint is equal: the caller ends its round early, nothing is
        lost). A new one when the table holds `limit` raises RecordHashesFull."""
        table, slots = self._table, self._slots
        fingerprint = (record_hash & _LOW) or 1  # 0 marks an empty slot
        slot = ((record_hash >> 32) & _LOW) * slots >> 32
        while True:
            current = table[slot]
            if current == _EMPTY:
                break
            if current == fingerprint:
                return False
            slot += 1
            if slot == slots:
                slot = 0
        if self._count >= self.limit:
            raise RecordHashesFull(f"the table holds its limit of {self.limit} records")
        table[slot] = fingerprint
        self._count += 1
        return True
