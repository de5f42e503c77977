"""annotation_engine/review/export.py against a real Label Studio server: the loop round.

Export the 20 least certain targets of a converted synthetic split; a simulated reviewer, through
the SDK, corrects a mask (a soft-edged stroke, as browsers draw), edits a text, accepts one and
rejects one; import; OUT passes `shards verify`, holds the submitted mask pixel for pixel, the
right provenance and rejected list; a second import changes no byte. Then the same from s3://.
One server for the module (label_studio_fixtures).
"""

import hashlib
import json
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from label_studio_fixtures import label_studio  # noqa: F401 (a fixture)
from review_fixtures import scored_split
from s3_fixtures import s3_bucket  # noqa: F401 (a fixture)

from annotation_engine.review.config import ReviewConfig
from annotation_engine.review.export import export_for_review, import_reviews
from annotation_engine.review.labeling import rle_encode, text_result, verdict_result
from annotation_engine.review.reviewed import REJECTED
from annotation_engine.review.studio import connect, find_project
from shards import storage
from shards.reader import ShardReader
from shards.verify import verify_split

pytestmark = pytest.mark.slow


def _targets(split, rejected=()) -> dict:
    """(key, index in the source split) -> target; ``rejected`` (key, index) are not in the split."""
    out = {}
    for s in ShardReader(split).samples(decode_images=False):
        source_index = (i for i in range(len(s.targets) + len(rejected)) if (s.key, i) not in set(rejected))
        out.update({(s.key, next(source_index)): t for t in s.targets})
    return out


def _bytes_of(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _soft_stroke(h: int, w: int) -> tuple[list[int], np.ndarray]:
    """A brush RLE as a browser draws it (alpha 255 inside, 1-254 on the border) and the mask it means."""
    alpha = np.zeros((h, w), np.uint8)
    alpha[8:30, 10:40] = 100  # soft outer ring: below the threshold
    alpha[9:29, 11:39] = 200  # inner ring: counts
    alpha[10:28, 12:38] = 255
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, alpha
    return rle_encode(rgba.ravel()), alpha >= 128


def _review(client, project_id: int, sizes: dict) -> dict:
    """The simulated reviewer: answers the first four tasks; returns what it did, by (key, target)."""
    tasks = sorted(client.tasks.list(project=project_id, fields="all"), key=lambda t: t.id)
    done = {}
    for n, task in enumerate(tasks[:4]):
        key, target = task.data["key"], task.data["target"]
        pred = task.predictions[0]
        engine = [r for r in pred.result if r["from_name"] == "mask"]
        if n == 0:  # corrects the mask
            rle, mask = _soft_stroke(*sizes[key])
            h, w = sizes[key]
            stroke = {**engine[0], "id": "stroke", "value": {"format": "rle", "rle": rle, "brushlabels": ["target"]}}
            stroke.update(original_height=h, original_width=w)
            result, done[(key, target)] = [stroke, verdict_result("accept")], ("mask", mask)
        elif n == 1:  # edits the text
            result, done[(key, target)] = engine + [text_result("the edited one"), verdict_result("accept")], ("text",)
        elif n == 2:
            result, done[(key, target)] = engine + [verdict_result("accept")], ("accept",)
        else:
            result, done[(key, target)] = [verdict_result("reject")], ("reject",)
        client.annotations.create(id=task.id, result=result)
    return done


def test_round_trip_through_label_studio(label_studio, tmp_path):
    ls = label_studio
    split = scored_split(ls.files_root / "data", images=12)
    before = _bytes_of(Path(split))
    kw = {"url": ls.url, "api_key": ls.token, "files_root": str(ls.files_root)}
    cfg = ReviewConfig(by="predicted_iou", lowest=20)
    r = export_for_review(split, "round trip", cfg, **kw)
    assert (r["picked"], r["added"], r["already"]) == (20, 20, 0)
    assert r["url"] == f"{ls.url}/projects/{r['project_id']}/data"
    assert export_for_review(split, "round trip", cfg, **kw)["added"] == 0  # only targets not yet there
    client, _ = connect(ls.url, ls.token)
    tasks = list(client.tasks.list(project=r["project_id"], fields="all"))
    data = tasks[0].data
    assert set(data) == {"image", "expression", "key", "target", "engine_version", "score"}
    assert data["engine_version"] == "test-engine-1" and 0 <= data["score"] <= 1
    served = urllib.request.urlopen(
        urllib.request.Request(ls.url + data["image"], headers={"Authorization": f"Token {ls.token}"})
    ).read()
    source = _targets(split)
    sizes = {k: t.mask["size"] for (k, _), t in source.items()}
    assert hashlib.sha256(served).hexdigest() in data["image"]  # the image itself, served by Label Studio
    done = _review(client, r["project_id"], sizes)

    out = tmp_path / "reviewed"
    res = import_reviews("round trip", split, out, url=ls.url, api_key=ls.token)
    assert res["written"] and res["accept"] == 3 and res["reject"] == 1 and not res["problems"]
    rep = verify_split(out)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    rejected = [json.loads(line) for line in (out / REJECTED).read_text().splitlines()]
    got = _targets(out, [(x["key"], x["target"]) for x in rejected])
    for (key, i), what in done.items():
        review = {"by": "reviewer@unilseg.local", "project": "round trip"}
        if what[0] == "reject":
            assert (key, i) not in got
            assert [(x["key"], x["target"], x["by"], x["verdict"]) for x in rejected] == [
                (key, i, review["by"], "reject")
            ]
            continue
        t, orig = got[(key, i)], source[(key, i)]
        assert t.provenance["review"]["by"] == review["by"] and t.provenance["review"]["at"]
        if what[0] == "mask":
            assert (t.mask_array() == what[1]).all()  # the submitted stroke, pixel for pixel (alpha >= 128)
            assert t.provenance["by"] == "human" and t.provenance["engine"]["mask"] == orig.mask
            assert t.provenance["review"]["changed"] == ["mask"] and t.texts == orig.texts
        elif what[0] == "text":
            assert t.texts == ["the edited one"] and t.mask == orig.mask
            assert t.provenance["engine"]["texts"] == orig.texts and t.provenance["review"]["changed"] == ["texts"]
        else:
            assert (t.mask, t.texts, t.scores) == (orig.mask, orig.texts, orig.scores)
            assert t.provenance["review"]["verdict"] == "accept" and t.provenance["engine_version"] == "test-engine-1"
    untouched = [k for k in source if k not in done]
    for k in untouched:  # nobody reviewed them: as they were (a parent index may have moved up)
        same = {n: v for n, v in source[k].provenance.items() if n != "parent"}
        assert {n: v for n, v in got[k].provenance.items() if n != "parent"} == same
        assert replace(got[k], provenance=same) == replace(source[k], provenance=same)

    after = _bytes_of(out)
    again = import_reviews("round trip", split, out, url=ls.url, api_key=ls.token)
    assert not again["written"] and _bytes_of(out) == after  # no new review: not a byte changed
    assert _bytes_of(Path(split)) == before  # the original split is never modified


def test_export_from_s3(label_studio, s3_bucket, tmp_path):
    ls = label_studio
    split = scored_split(f"{s3_bucket}/data", images=6, src=str(tmp_path / "work"))
    r = export_for_review(
        split, "from s3", ReviewConfig(by="predicted_iou", lowest=5, sample=2), url=ls.url, api_key=ls.token
    )
    assert r["added"] == 7
    client, _ = connect(ls.url, ls.token)
    assert find_project(client, "from s3").id == r["project_id"]
    tasks = list(client.tasks.list(project=r["project_id"], fields="all"))
    image = tasks[0].data["image"]
    assert image.startswith("http://127.0.0.1:") and "Signature" in image  # presigned: the browser fetches it
    digest = image.split("?")[0].rsplit("/", 1)[1].split(".")[0]
    assert hashlib.sha256(urllib.request.urlopen(image).read()).hexdigest() == digest
    client.annotations.create(id=tasks[0].id, result=[verdict_result("reject")])
    out = f"{s3_bucket}/data/synth/reviewed"
    res = import_reviews("from s3", split, out, url=ls.url, api_key=ls.token)
    assert res["written"] and res["reject"] == 1
    assert verify_split(out).ok
    assert storage.exists(storage.join(out, REJECTED))
