"""shards.storage.location: one value for a path or URL and its fsspec options; the options
travel (pickle, paths under it) but never show (repr, str, logs, pydantic, Prefect's encoder)."""

import copy
import json
import logging
import os
import pickle
from pathlib import Path

import pytest

from shards import storage
from shards.storage import Location

SECRET = "s3cr3t-location-test"
OPTIONS = {"key": "k", "secret": SECRET, "client_kwargs": {"region_name": "x"}}


def test_paths_under_a_location_keep_its_options():
    root = Location("s3://bucket/data", OPTIONS)
    split = root / "auto" / "train"
    assert split == storage.join(root, "auto", "train") == Location("s3://bucket/data/auto/train", OPTIONS)
    assert split.url == "s3://bucket/data/auto/train" and split.options == OPTIONS
    assert storage.parent(split) == root / "auto" and storage.name(split) == "train"
    assert storage.like(split, "s3://bucket/other").options == OPTIONS
    assert storage.absolute(split) is split  # a URL means the same from anywhere
    assert Location(split).options == OPTIONS and Location(split, {"key": "b"}).options == {"key": "b"}
    assert storage.options_of("s3://bucket/data") == {} and storage.options_of(split) == OPTIONS
    # a plain string stays a plain string
    assert storage.join("s3://bucket/data", "x") == "s3://bucket/data/x"
    assert storage.normalize(Path("a/b")) == os.path.join("a", "b") and storage.normalize(split) is split


def test_local_locations_are_path_like(tmp_path):
    loc = Location(tmp_path) / "f.txt"
    with open(loc, "w") as f:  # os.PathLike: plain file calls take it
        f.write("x")
    assert Path(loc).read_text() == "x" and storage.is_local(loc) and storage.local_path(loc) == str(tmp_path / "f.txt")
    assert storage.absolute(Location("rel", OPTIONS)).options == OPTIONS
    assert storage.find(Location(tmp_path, OPTIONS), "f.txt") == [Location(tmp_path / "f.txt", OPTIONS)]


def test_immutable_equal_by_url_and_options():
    loc = Location("s3://b/x", OPTIONS)
    with pytest.raises(AttributeError):
        loc.url = "s3://b/y"
    with pytest.raises(AttributeError):
        del loc.url
    loc.options["secret"] = "changed"  # a copy
    assert loc.options == OPTIONS
    assert loc == Location("s3://b/x", dict(OPTIONS)) and hash(loc) == hash(Location("s3://b/x"))
    assert loc != Location("s3://b/x") and loc != "s3://b/x"


def test_the_options_never_show(caplog):
    loc = Location("s3://bucket/data", OPTIONS) / "train"
    shown = [repr(loc), str(loc), f"{loc}", f"{[loc]}", f"{ {'out': loc} }", os.fspath(loc), str(vars(loc))]
    assert all(SECRET not in s for s in shown) and str(loc) == "s3://bucket/data/train"
    assert repr(loc) == "Location('s3://bucket/data/train')"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("writing %s (%r)", loc, loc)
    assert "s3://bucket/data/train" in caplog.text and SECRET not in caplog.text
    with pytest.raises(TypeError):
        json.dumps({"out": loc})  # a file gets str(loc), never the object
    assert json.dumps(storage.urls_only({"out": [loc, (loc, 1.0)]})) == (
        '{"out": ["s3://bucket/data/train", ["s3://bucket/data/train", 1.0]]}'
    )


def test_pickles_and_copies_with_its_options():
    """Ray tasks and Ray Train workers get a Location by pickling: its options come along."""
    import cloudpickle

    loc = Location("s3://bucket/data", OPTIONS)
    for back in (pickle.loads(pickle.dumps(loc)), cloudpickle.loads(cloudpickle.dumps(loc))):
        assert back == loc and back.options == OPTIONS
    assert copy.deepcopy({"out": loc})["out"].options == OPTIONS and copy.copy(loc) == loc


def test_pydantic_and_prefect_records_show_the_url_only():
    """A flow parameter or model field that is a Location: validated from a string or kept as
    given (options and all), serialized as its URL; Prefect records flow parameters with
    FastAPI's jsonable_encoder, which sees only the URL."""
    from fastapi.encoders import jsonable_encoder
    from pydantic import BaseModel, TypeAdapter

    class M(BaseModel):
        out: Location

    loc = Location("s3://bucket/data", OPTIONS)
    m = M(out=loc)
    assert m.out is loc and m.out.options == OPTIONS
    assert M(out="s3://bucket/x").out == Location("s3://bucket/x")
    assert M.model_validate_json('{"out": "s3://bucket/x"}').out == Location("s3://bucket/x")
    assert m.model_dump() == {"out": "s3://bucket/data"} and m.model_dump_json() == '{"out":"s3://bucket/data"}'
    assert M.model_json_schema()["properties"]["out"]["type"] == "string"
    adapter = TypeAdapter(list[tuple[Location, float]])
    assert adapter.dump_json([(loc, 1.0)]) == b'[["s3://bucket/data",1.0]]'
    recorded = json.dumps(jsonable_encoder({"data": [(loc, 1.0)], "out": loc, "stage": m}))
    assert SECRET not in recorded and "s3://bucket/data" in recorded


def test_prefect_flow_parameters_keep_the_options_and_record_the_url():
    from prefect import flow

    @flow
    def f(out: str | Location) -> None:  # never run: only its parameter handling
        pass

    loc = Location("s3://bucket/data", OPTIONS)
    assert f.validate_parameters({"out": loc})["out"].options == OPTIONS
    assert f.validate_parameters({"out": "s3://b/x"})["out"] == "s3://b/x"
    assert SECRET not in json.dumps(f.serialize_parameters({"out": loc}))
