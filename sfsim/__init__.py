"""sfsim: a local simulator of a Salesforce org (OAuth, REST, sObject Collections and
Bulk API 2.0 ingest) for tests and `make run`. A dev tool: never deployed with the app."""

from sfsim.app import Simulator
from sfsim.settings import SimSettings

__all__ = ["SimSettings", "Simulator"]
