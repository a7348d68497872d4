"""Durable orchestration engine of the local Functions host (state in AzureWebJobsStorage).

See README.md beside this file for how it works and where it differs from Azure.
"""

from devhost.engine.engine import (
    DurableEngine,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceStatus,
)

__all__ = ["DurableEngine", "InstanceAlreadyExists", "InstanceNotFound", "InstanceStatus"]
