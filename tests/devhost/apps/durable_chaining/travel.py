"""A Durable Functions blueprint: an HTTP starter, a chaining orchestrator, an activity."""

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


@bp.route(route="orchestrators/{function_name}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new(req.route_params["function_name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@bp.orchestration_trigger(context_name="context")
def itinerary(context: df.DurableOrchestrationContext):
    cities = context.get_input()
    legs = []
    for city in cities:
        legs.append((yield context.call_activity("book_leg", city)))
    return legs


@bp.activity_trigger(input_name="city")
def book_leg(city: str) -> str:
    return f"booked {city}"
