"""Files of concatenated BSON documents (Cdiscount's train.bson and test.bson), streamed.

A product file is tens of gigabytes: it is read from a binary file object one length-prefixed
document at a time and each document is decoded here, by hand, so the file is never loaded
whole and no MongoDB driver is needed. The element types a document may hold are those a
Mongo export writes: double, string, embedded document, array, binary, ObjectId (as its hex
string), bool, UTC datetime, null, int32 and int64; another type is an error, not a guess.
`products` turns documents into (product id, category id or None, JPEG bytes of each picture):
a sample is a product, shown by one or more pictures.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, NamedTuple

from ..errors import UserError

MAX_DOCUMENT = 64 << 20  # MongoDB's own limit is 16 MB: a larger length is not a document
_INT32, _INT64, _DOUBLE = struct.Struct("<i"), struct.Struct("<q"), struct.Struct("<d")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Product(NamedTuple):
    id: int
    category_id: int | None  # None in test.bson
    pictures: list[bytes]  # JPEG bytes, one or more


class BadDocument(Exception):
    """A document's bytes are not valid BSON (the reason)."""


class _Truncated(Exception):
    pass


def read_products(path: str | Path) -> Iterator[Product]:
    """The products of a BSON file, in file order."""
    path = Path(path)
    with open(path, "rb", buffering=1 << 20) as f:
        yield from products(f, path.name)


def products(f: BinaryIO, name: str) -> Iterator[Product]:
    """The products of the documents in `f` (`name` is the file as messages call it)."""
    for index, doc in enumerate(documents(f, name)):
        pid = doc.get("_id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise UserError(f"{name}: document {index} has no integer _id ({pid!r}); is this a "
                            "file of products?")
        where = f"{name}: product {pid} (document {index})"
        category = doc.get("category_id")
        if category is not None and (not isinstance(category, int) or isinstance(category, bool)):
            raise UserError(f"{where}: category_id {category!r} is not an integer; re-download "
                            "the file")
        yield Product(pid, category, _pictures(doc.get("imgs"), where))


def _pictures(imgs, where: str) -> list[bytes]:
    if not isinstance(imgs, list) or not imgs:
        raise UserError(f"{where} has no pictures; a product is classified from its pictures: "
                        "drop it from the file or re-download the file")
    out = []
    for k, img in enumerate(imgs):
        picture = img.get("picture") if isinstance(img, dict) else None
        if not isinstance(picture, bytes) or not picture:
            raise UserError(f"{where}: picture {k} holds no image bytes; drop the product from "
                            "the file or re-download the file")
        out.append(picture)
    return out


def documents(f: BinaryIO, name: str) -> Iterator[dict]:
    """Each document of `f` as a dict, one read and decoded at a time."""
    last_id = None
    try:
        for index, offset, data in _raw_documents(f, name):
            try:
                doc = _document(data, 0)[0]
            except BadDocument as e:
                where = f"{name}: document {index} (byte {offset}{_after(last_id)})"
                raise UserError(f"{where} is not valid BSON ({e}); the file is damaged: "
                                "re-download it") from None
            last_id = doc.get("_id", last_id)
            yield doc
    except _Truncated as e:
        index, offset = e.args
        raise UserError(f"{name}: the file ends inside document {index} (byte "
                        f"{offset}{_after(last_id)}); the download is incomplete: download the "
                        "file again") from None


def _after(last_id) -> str:
    return "" if last_id is None else f", after _id {last_id}"


def _raw_documents(f: BinaryIO, name: str) -> Iterator[tuple[int, int, bytes]]:
    """(index, byte offset, bytes) of each document: its length prefix, then its body."""
    index, offset = 0, 0
    while head := f.read(4):
        if len(head) < 4:
            raise _Truncated(index, offset)
        size = _INT32.unpack(head)[0]
        if not 5 <= size <= MAX_DOCUMENT:
            raise UserError(f"{name}: document {index} (byte {offset}) claims {size} bytes; "
                            "this is not a BSON file, or it is damaged: re-download it")
        body = f.read(size - 4)
        if len(body) < size - 4:
            raise _Truncated(index, offset)
        yield index, offset, head + body
        index, offset = index + 1, offset + size


# -- decoding ------------------------------------------------------------------------------

def _need(pos: int, n: int, end: int) -> int:
    if n < 0 or pos + n > end:
        raise BadDocument(f"an element runs past its document's end at byte {pos}")
    return pos + n


def _document(data: bytes, at: int, as_list: bool = False, end: int | None = None):
    """(dict or list, the byte after it) of the document starting at `at`."""
    end = len(data) if end is None else end
    _need(at, 4, end)
    size = _INT32.unpack_from(data, at)[0]
    if size < 5:
        raise BadDocument(f"the document at byte {at} claims {size} bytes")
    stop = _need(at, size, end)
    if data[stop - 1] != 0:
        raise BadDocument(f"the document at byte {at} does not end with a zero byte")
    items, pos = [], at + 4
    while pos < stop - 1:
        kind = data[pos]
        key, pos = _cstring(data, pos + 1, stop - 1)
        read = _READERS.get(kind)
        if read is None:
            raise BadDocument(f"element {key!r} has type 0x{kind:02x}, which this reader does "
                              "not decode")
        value, pos = read(data, pos, stop - 1)
        items.append((key, value))
    if pos != stop - 1:
        raise BadDocument(f"the document at byte {at} overruns its length")
    return ([v for _, v in items] if as_list else dict(items)), stop


def _cstring(data: bytes, pos: int, end: int) -> tuple[str, int]:
    zero = data.find(b"\x00", pos, end)
    if zero < 0:
        raise BadDocument(f"an element name at byte {pos} has no end")
    try:
        return data[pos:zero].decode("utf-8"), zero + 1
    except UnicodeDecodeError:
        raise BadDocument(f"an element name at byte {pos} is not UTF-8") from None


def _string(data: bytes, pos: int, end: int):
    _need(pos, 4, end)
    n = _INT32.unpack_from(data, pos)[0]
    if n < 1:
        raise BadDocument(f"the string at byte {pos} claims {n} bytes")
    stop = _need(pos + 4, n, end)
    if data[stop - 1] != 0:
        raise BadDocument(f"the string at byte {pos} does not end with a zero byte")
    try:
        return data[pos + 4:stop - 1].decode("utf-8"), stop
    except UnicodeDecodeError:
        raise BadDocument(f"the string at byte {pos} is not UTF-8") from None


def _binary(data: bytes, pos: int, end: int):
    start = _need(pos, 5, end)
    n = _INT32.unpack_from(data, pos)[0]
    stop = _need(start, n, end)
    payload = data[start:stop]
    if data[pos + 4] == 0x02:  # the old binary subtype repeats the length inside
        _need(0, 4, len(payload))
        payload = payload[4:_need(4, _INT32.unpack_from(payload)[0], len(payload))]
    return bytes(payload), stop


def _bool(data: bytes, pos: int, end: int):
    _need(pos, 1, end)
    byte = data[pos]
    if byte not in (0, 1):
        raise BadDocument(f"the boolean at byte {pos} is {byte}, not 0 or 1")
    return bool(byte), pos + 1


def _datetime(data: bytes, pos: int, end: int):
    stop = _need(pos, 8, end)
    try:
        return _EPOCH + timedelta(milliseconds=_INT64.unpack_from(data, pos)[0]), stop
    except OverflowError:
        raise BadDocument(f"the date at byte {pos} is out of range") from None


def _fixed(fmt: struct.Struct) -> Callable:
    def read(data: bytes, pos: int, end: int):
        stop = _need(pos, fmt.size, end)
        return fmt.unpack_from(data, pos)[0], stop
    return read


_READERS: dict[int, Callable] = {
    0x01: _fixed(_DOUBLE),
    0x02: _string,
    0x03: lambda data, pos, end: _document(data, pos, end=end),
    0x04: lambda data, pos, end: _document(data, pos, as_list=True, end=end),
    0x05: _binary,
    0x07: lambda data, pos, end: (data[pos:_need(pos, 12, end)].hex(), pos + 12),
    0x08: _bool,
    0x09: _datetime,
    0x0A: lambda data, pos, end: (None, pos),
    0x10: _fixed(_INT32),
    0x12: _fixed(_INT64),
}
