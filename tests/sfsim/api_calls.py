"""Helpers of the simulator's API tests: the API version path, URLs, a fresh token."""

from __future__ import annotations

from typing import Any

import requests

from sfsim.testing import SimulatorHandle

V = "/services/data/v62.0"


def url(api: requests.Session, path: str) -> str:
    return api.base + path  # type: ignore[attr-defined]


def token_answer(sim: SimulatorHandle) -> dict[str, Any]:
    """The answer of a client-credentials login (token, instance URL, identity URL)."""
    return requests.post(
        f"{sim.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": sim.client_id,
              "client_secret": sim.client_secret},
        timeout=10, verify=str(sim.ca_file) if sim.ca_file else True,
    ).json()


def access_token(sim: SimulatorHandle) -> str:
    """A new token from the client-credentials login."""
    return str(token_answer(sim)["access_token"])
