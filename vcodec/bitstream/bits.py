"""Integer bit writer and reader (MSB first) for headers; reads are bounded and never overrun."""

from __future__ import annotations

from vcodec.types import BitstreamError


class BitWriter:
    def __init__(self) -> None:
        self._value = 0
        self._length = 0

    def write(self, value: int, bits: int) -> None:
        if not 0 <= value < (1 << bits):
            raise ValueError(f"value {value} does not fit in {bits} bits")
        self._value = (self._value << bits) | value
        self._length += bits

    def to_bytes(self) -> bytes:
        """The bits written so far, zero-padded to a whole byte."""
        pad = (-self._length) % 8
        return ((self._value << pad)).to_bytes((self._length + pad) // 8, "big")


class BitReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0  # in bits

    def read(self, bits: int) -> int:
        end = self._position + bits
        if end > 8 * len(self._data):
            raise BitstreamError("frame bitstream is truncated (header ends early)")
        first_byte, last_byte = self._position // 8, (end + 7) // 8
        chunk = int.from_bytes(self._data[first_byte:last_byte], "big")
        shift = 8 * last_byte - end
        self._position = end
        return (chunk >> shift) & ((1 << bits) - 1)

    def bytes_consumed(self) -> int:
        """Bytes used so far, counting a partly read byte as used (headers are byte-aligned at the end)."""
        return (self._position + 7) // 8
