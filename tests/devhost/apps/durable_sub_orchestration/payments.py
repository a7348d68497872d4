"""A blueprint: one payment is a sub-orchestration of two activities."""

import azure.durable_functions as df

blueprint = df.Blueprint()


@blueprint.orchestration_trigger(context_name="context")
def settle_payment(context: df.DurableOrchestrationContext):
    payment = context.get_input()
    authorised = yield context.call_activity("authorise_payment", payment)
    return (yield context.call_activity("capture_payment", authorised))


@blueprint.activity_trigger(input_name="payment")
def authorise_payment(payment: dict) -> dict:
    return {**payment, "authorised": True}


@blueprint.activity_trigger(input_name="payment")
def capture_payment(payment: dict) -> str:
    return f"captured {payment['amount']} for {payment['order']}"
