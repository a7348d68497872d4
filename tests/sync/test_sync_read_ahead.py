"""Reading the next page on a thread while the current one is delivered."""

from __future__ import annotations

import pytest

from shared.sync.read_ahead import ReadAhead


def test_items_arrive_in_order_and_all_of_them():
    with ReadAhead(iter(range(50))) as reader:
        assert list(reader) == list(range(50))


def test_an_error_of_the_reader_is_raised_where_the_item_would_be_taken():
    def pages():
        yield 1
        raise ValueError("the source went away")

    with ReadAhead(pages()) as reader:
        taken = iter(reader)
        assert next(taken) == 1
        with pytest.raises(ValueError, match="went away"):
            next(taken)


def test_leaving_early_stops_the_reader_after_at_most_one_page_ahead():
    read: list[int] = []

    def pages():
        for number in range(1000):
            read.append(number)
            yield number

    with ReadAhead(pages()) as reader:
        for page in reader:
            if page == 1:
                break
    # Page 1 was taken; page 2 waits in the queue, page 3 at most was being read.
    assert read[:2] == [0, 1] and len(read) <= 4
