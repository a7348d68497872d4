"""Record ids made in sequence: the counter's base-62 digits and the case checksum."""

from __future__ import annotations

from sfsim.schema import IdFactory, id_checksum


def _id_written_out(key_prefix: str, number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[rest] + digits
    id15 = key_prefix + "4x" + digits.rjust(10, "0")
    return id15 + id_checksum(id15)


def test_new_ids_are_the_counter_written_out_across_its_digit_carries() -> None:
    # Starts just before the last two digits wrap (3,844 = 62 * 62), at a high carry,
    # past ten digits; key prefixes interleaved, one of them not 3 ASCII characters.
    for start in (1, 3_843, 62**4 - 3, 62**10 - 2):
        ids = IdFactory(start)
        for offset in range(8_000):
            prefix = ("02i", "750", "01g", "0Üa")[offset % 4]
            assert ids.new_id(prefix) == _id_written_out(prefix, start + offset)


def test_new_ids_go_on_from_a_counter_set_after_use() -> None:
    ids = IdFactory()
    ids.new_id("001")
    ids.next_number = 777_777  # as a restored org sets it
    assert [ids.new_id("001") for _ in range(2)] == [
        _id_written_out("001", 777_777), _id_written_out("001", 777_778)]
