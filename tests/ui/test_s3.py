"""The same pages on an S3 datastore (moto): what the browser tests check on a local
folder and on Azurite, fetched over HTTP."""

from __future__ import annotations

import html
import re

import httpx
import pytest

pytestmark = pytest.mark.slow


def texts(page: str, css_class: str) -> list[str]:
    found = re.findall(rf'<td class="{css_class}">(.*?)</td>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in found]


def test_pages_on_s3(seeded_s3, start_ui):
    ui = start_ui(seeded_s3.workspace)
    with httpx.Client(base_url=ui.base, timeout=30) as client:
        overview = client.get("/").text
        assert texts(overview, "r records")[:4] == ["30", "30", "34", "34"]
        assert (
            "azureml://datastores/lake/paths/collected/blue/request" in client.get("/assets").text
        )
        collection = client.get("/c/shop/blue/model_inputs", params={"n": 20}).text
        cids = [c for c in texts(collection, "cid") if c]  # a record's later rows show none
        assert cids[:2] == ["order-029", seeded_s3.orders[-2]] and len(cids) == 20
        found = client.get("/c/shop/blue/model_inputs", params={"id": "order-007"}).text
        assert texts(found, "cid") == ["order-007", ""]  # its two rows
        request = client.get("/r/shop/blue", params={"id": seeded_s3.binary_id}).text
        link = re.search(r'href="(/download/shop/blue/request\?path=[^"]+)"', request)
        assert link is not None
        body = client.get(html.unescape(link.group(1)))
        assert body.status_code == 200 and body.content == seeded_s3.binary
