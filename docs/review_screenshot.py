"""Makes docs/review-task.png: a review task in a real browser (headless Chromium).

    apt-get install -y chromium chromium-driver && .venv/bin/pip install selenium
    .venv/bin/python docs/review_screenshot.py [--out docs/review-task.png]

A Label Studio server from the venv's template (`make label-studio`), one scored synthetic
split exported for review, the reviewer logged in through the form, the least certain task
opened: the image, the engine's mask as a pre-annotation, the expression and accept / reject.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from PIL import Image  # noqa: E402

from annotation_engine.review.config import ReviewConfig  # noqa: E402
from annotation_engine.review.export import export_for_review  # noqa: E402
from annotation_engine.review.server import USERNAME, from_template  # noqa: E402
from annotation_engine.review.studio import connect  # noqa: E402
from common.processes import free_port  # noqa: E402


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1400", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "review-task.png"))
    args = ap.parse_args()
    from review_fixtures import scored_split
    from selenium.webdriver.common.by import By

    work = Path(tempfile.mkdtemp(prefix="review-shot-"))
    split = scored_split(work / "files" / "data", images=8, size=384)
    server = from_template(work / "ls", free_port(), work / "files").start()
    driver = None
    try:
        server.wait(300)
        r = export_for_review(
            split, "Least certain targets", ReviewConfig(by="predicted_iou", lowest=8),
            url=server.url, api_key=server.token, files_root=str(work / "files"),
        )  # fmt: skip
        client, _ = connect(server.url, server.token)
        task = min(client.tasks.list(project=r["project_id"]), key=lambda t: t.id)
        driver = _browser()
        driver.get(server.url + "/user/login/")
        driver.find_element(By.NAME, "email").send_keys(USERNAME)
        driver.find_element(By.NAME, "password").send_keys(server.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        time.sleep(3)
        driver.get(f"{server.url}/projects/{r['project_id']}/data?task={task.id}")
        time.sleep(12)  # the labeling interface loads, draws the image and the brush pre-annotation
        png = driver.get_screenshot_as_png()
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
