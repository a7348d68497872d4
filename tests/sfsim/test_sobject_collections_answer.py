"""The answer of an sObject Collections write: the JSON `json.dumps` writes."""

from __future__ import annotations

import json
from typing import Any

from sfsim.api.sobject_collections import results_json


def test_results_are_written_as_json_dumps_writes_them() -> None:
    error = {"statusCode": "DUPLICATE_VALUE", "message": 'a "quoted" \\ value', "fields": []}
    results: list[dict[str, Any]] = [
        {"id": "02i4x0000000001AAA", "success": True, "errors": [], "created": True},
        {"id": "02i4x0000000002AAA", "success": True, "errors": [], "created": False},
        {"id": "0014x0000000003AAA", "success": True, "errors": []},
        {"success": False, "errors": [error], "id": None},
        {"id": None, "success": False, "errors": [error]},
        {"id": "not an id", "success": True, "errors": []},
        {"id": "02i4xÜ000000004AAA", "success": True, "errors": [], "created": True},
        {"id": "02i4x0000000005AAA", "success": True, "errors": [], "created": None},
    ]
    assert results_json(results) == json.dumps(results)
    assert json.loads(results_json(results)) == results
    assert results_json([]) == "[]"
