"""The BSON reader: documents round-trip through a tiny encoder, Cdiscount's files read as
products, the file is read one document at a time, and damage is one line naming the file and
the document."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timezone

import numpy as np
import pytest

import layouts_arrays as L
from kaggle_layouts import COLOURS
from imgcomp.data import bson as B
from imgcomp.data.cache import decode
from imgcomp.errors import UserError


def docs(*documents) -> io.BytesIO:
    return io.BytesIO(b"".join(L.bson_document(d) for d in documents))


def error(fn, *needles) -> str:
    with pytest.raises(UserError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def test_every_element_type_round_trips():
    when = datetime(2017, 9, 14, 8, 30, 15, 123000, tzinfo=timezone.utc)
    doc = {"_id": 7, "big": 2**40, "neg": -(2**31), "ratio": 0.125, "name": "pneu été",
           "blob": b"\xff\xd8\x00jpeg", "oid": L.ObjectId(bytes(range(12))), "yes": True,
           "no": False, "when": when, "nothing": None,
           "nested": {"list": [1, "two", [3.0, {"four": 4}]], "empty": {}}, "none": []}
    out = list(B.documents(docs(doc, {"_id": 8}), "t.bson"))
    expected = {**doc, "oid": bytes(range(12)).hex()}
    assert out == [expected, {"_id": 8}]
    assert type(out[0]["big"]) is int and type(out[0]["yes"]) is bool


def test_old_binary_subtype_is_unwrapped():
    payload = b"\x00\x01\x02"
    inner = struct.pack("<i", len(payload)) + payload
    element = b"\x05pic\x00" + struct.pack("<i", len(inner)) + b"\x02" + inner
    raw = struct.pack("<i", len(element) + 5) + element + b"\x00"
    assert list(B.documents(io.BytesIO(raw), "t.bson")) == [{"pic": payload}]


def test_cdiscount_products(tmp_path):
    built = L.cdiscount(tmp_path, zipped=False)
    train = list(B.read_products(tmp_path / "train.bson"))
    assert [p.id for p in train] == list(range(16))
    assert {p.category_id for p in train} == set(L.CATEGORIES)
    assert sorted({len(p.pictures) for p in train}) == [1, 2, 3, 4]
    example = list(B.read_products(tmp_path / "train_example.bson"))
    assert example == train[:100]
    test = list(B.read_products(tmp_path / "test.bson"))
    assert [str(p.id) for p in test] == list(built.answers)
    assert all(p.category_id is None for p in test)
    first = decode(io.BytesIO(train[0].pictures[0]), 8, 3)  # a picture decodes like a file
    colour = COLOURS[L.CATEGORIES.index(train[0].category_id)]
    assert np.abs(first.reshape(-1, 3).mean(0) - colour).max() < 30


class CountingReader(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.largest = 0

    def read(self, n=-1):
        self.largest = max(self.largest, n if n >= 0 else len(self.getvalue()))
        return super().read(n)


def test_the_file_is_read_one_document_at_a_time():
    big = [L.bson_document(L.product(k, k % 4, k)) for k in range(30)]
    f = CountingReader(b"".join(big))
    products = B.products(f, "train.bson")
    next(products)
    assert f.tell() == len(big[0])  # nothing beyond the first document yet
    assert len(list(products)) == 29
    assert f.largest <= max(map(len, big))


def test_a_truncated_file_names_the_document():
    data = b"".join(L.bson_document(L.product(k, 0, k)) for k in range(4))
    cut = len(data) - 10
    error(lambda: list(B.products(io.BytesIO(data[:cut]), "train.bson")), "train.bson",
          "document 3", "after _id 2", "incomplete")
    head_cut = len(L.bson_document(L.product(0, 0, 0))) + 2  # inside the next length prefix
    error(lambda: list(B.products(io.BytesIO(data[:head_cut]), "train.bson")), "document 1",
          "after _id 0")


def test_a_product_without_pictures():
    error(lambda: list(B.products(docs({"_id": 5, "imgs": [{"picture": b"x"}]},
                                       {"_id": 6, "imgs": [], "category_id": 3}), "train.bson")),
          "train.bson", "product 6", "document 1", "no pictures")
    error(lambda: list(B.products(docs({"_id": 9, "category_id": 3}), "test.bson")),
          "test.bson", "product 9", "no pictures")
    error(lambda: list(B.products(docs({"_id": 9, "imgs": [{"picture": "text"}]}), "t.bson")),
          "product 9", "picture 0")
    error(lambda: list(B.products(docs({"name": "x", "imgs": [{"picture": b"x"}]}), "t.bson")),
          "document 0", "no integer _id")


def test_damaged_documents():
    good = L.bson_document({"_id": 1})
    decimal = b"\x13d\x00" + bytes(16)  # decimal128: not a type Cdiscount's files hold
    odd = struct.pack("<i", len(decimal) + 5) + decimal + b"\x00"
    error(lambda: list(B.documents(io.BytesIO(good + odd), "t.bson")), "t.bson", "document 1",
          "0x13", "after _id 1")
    error(lambda: list(B.documents(io.BytesIO(struct.pack("<i", 1 << 30) + bytes(8)), "x.bson")),
          "x.bson", "document 0", "not a BSON file")
    inner_overrun = b"\x02s\x00" + struct.pack("<i", 50) + b"ab\x00"
    bad = struct.pack("<i", len(inner_overrun) + 5) + inner_overrun + b"\x00"
    error(lambda: list(B.documents(io.BytesIO(bad), "t.bson")), "document 0", "not valid BSON")
    no_end = good[:-1] + b"\x01"
    error(lambda: list(B.documents(io.BytesIO(no_end), "t.bson")), "document 0", "zero byte")
