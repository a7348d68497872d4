"""Sample app: a DFApp whose host.json only the Functions host's lenient reader accepts."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello")
def hello(req: func.HttpRequest) -> str:
    return "hello from a lenient host.json"
