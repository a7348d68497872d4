"""A local Azure Functions host for v2-model Python apps (`python -m devhost`).

It runs `function_app.py` unmodified with the real azure-functions and
azure-functions-durable SDKs: HTTP and timer triggers, and Durable Functions on a durable
engine (`devhost.engine`) that keeps its state in the `AzureWebJobsStorage` account.
"""
