from __future__ import annotations

import pytest
from azure.durable_functions import OrchestrationRuntimeStatus
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from shared.durable import instance_id_of, runtime_state_of


def test_a_status_the_client_answered_gives_its_id_and_runtime_state():
    status = DurableOrchestrationStatus(
        name="bulk_load", instanceId="load-1", runtimeStatus=OrchestrationRuntimeStatus.Running)
    assert instance_id_of(status) == "load-1"
    assert runtime_state_of(status) == "Running"


def test_a_status_without_id_or_runtime_state_is_refused_by_name():
    empty = DurableOrchestrationStatus()
    with pytest.raises(ValueError, match="instance id"):
        instance_id_of(empty)
    with pytest.raises(ValueError, match="no runtime status"):
        runtime_state_of(empty)
