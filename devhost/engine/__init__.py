"""Durable orchestration engine of the local Functions host (state in AzureWebJobsStorage).

The shell uses it through `interface.DurableEngineApi`; see README.md beside this file
for how it works and where it differs from Azure.
"""

from devhost.engine.interface import (
    DurableEngineApi,
    EngineFactory,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceStatus,
)
from devhost.engine.management import DurableEngine

__all__ = ["DurableEngine", "DurableEngineApi", "EngineFactory", "InstanceAlreadyExists",
           "InstanceNotFound", "InstanceStatus"]
