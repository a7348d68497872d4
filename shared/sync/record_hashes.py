"""The records a backlog stage has staged, by the hash of their key, in one flat table.

A stage tracks up to a million records to stop before a record's second change. As a
set of ints that took ~70 MB, and the int objects, allocated among the stage's short-lived
rows, kept the allocator's arenas alive: peak RSS at 1,000,000 rows was 2.4x that at
100,000. Here each record is 8 bytes in one open-addressed table, half full at most.
"""

from __future__ import annotations

_EMPTY = 0
_FIRST_SLOTS = 1 << 16
_WORD = (1 << 64) - 1


class RecordHashes:
    def __init__(self) -> None:
        self._table = _slots(_FIRST_SLOTS)
        self._mask = _FIRST_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add_new(self, record_hash: int) -> bool:
        """Add `record_hash`; False when it is there already (the same record, or rarely
        another whose hash is equal: the caller ends its round early, nothing is lost)."""
        if 2 * (self._count + 1) > len(self._table):
            self._grow()
        key = (record_hash & _WORD) or 1  # 0 marks an empty slot
        if not self._place(key):
            return False
        self._count += 1
        return True

    def _place(self, key: int) -> bool:
        table, mask = self._table, self._mask
        slot = key & mask
        while True:
            current = table[slot]
            if current == _EMPTY:
                table[slot] = key
                return True
            if current == key:
                return False
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = self._table
        self._table = _slots(2 * len(old))
        self._mask = len(self._table) - 1
        for key in old:
            if key != _EMPTY:
                self._place(key)


def _slots(count: int) -> memoryview:
    return memoryview(bytearray(8 * count)).cast("Q")
