"""HTTP triggers as a user sees them: routes, methods, keys, bodies and failures."""

from __future__ import annotations

import requests

from devhost.testing import RunningHost


def test_route_parameter_with_int_constraint_reaches_the_function(http_routes_host: RunningHost):
    response = requests.get(http_routes_host.url("/shop/orders/42?view=full"), timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"order_id": 42, "view": "full"}


def test_literal_segment_wins_over_a_parameter_and_constraint_rejects_text(
    http_routes_host: RunningHost,
):
    assert requests.get(http_routes_host.url("/shop/orders/latest"), timeout=10).text == "latest"
    assert requests.get(http_routes_host.url("/shop/orders/abc"), timeout=10).status_code == 404


def test_route_prefix_comes_from_host_json(http_routes_host: RunningHost):
    assert requests.get(http_routes_host.url("/api/orders/42"), timeout=10).status_code == 404


def test_post_body_headers_and_response_headers(http_routes_host: RunningHost):
    response = requests.post(
        http_routes_host.url("/shop/orders"),
        json={"id": 7, "sku": "A-1"},
        headers={"User-Agent-X": "pytest"},
        timeout=10,
    )

    assert response.status_code == 201
    assert response.headers["Location"] == "/shop/orders/7"
    assert response.json() == {"created": "A-1", "agent": "pytest"}


def test_method_not_declared_is_not_found(http_routes_host: RunningHost):
    assert requests.delete(http_routes_host.url("/shop/orders/42"), timeout=10).status_code == 404


def test_catch_all_and_optional_parameters(http_routes_host: RunningHost):
    files = requests.get(http_routes_host.url("/shop/files/a/b/c.txt"), timeout=10)
    assert files.text == "a/b/c.txt"
    assert requests.get(http_routes_host.url("/shop/greet/ada"), timeout=10).text == "hello ada"
    assert requests.get(http_routes_host.url("/shop/greet"), timeout=10).text == "hello stranger"


def test_function_level_route_needs_the_function_or_master_key(http_routes_host: RunningHost):
    url = http_routes_host.url("/shop/private")

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"code": "wrong"}, timeout=10).status_code == 401
    by_query = requests.get(url, params={"code": http_routes_host.function_key}, timeout=10)
    by_header = requests.get(
        url, headers={"x-functions-key": http_routes_host.master_key}, timeout=10
    )
    assert (by_query.status_code, by_query.text) == (200, "function-level secret")
    assert by_header.status_code == 200


def test_admin_route_accepts_only_the_master_key(http_routes_host: RunningHost):
    url = http_routes_host.url("/shop/admin-only")

    function_key = http_routes_host.function_key
    with_function_key = requests.get(url, params={"code": function_key}, timeout=10)
    with_master_key = requests.get(url, params={"code": http_routes_host.master_key}, timeout=10)
    assert with_function_key.status_code == 401
    assert with_master_key.text == "admin secret"


def test_unhandled_exception_is_a_500_and_the_traceback_is_logged(http_routes_host: RunningHost):
    response = requests.get(http_routes_host.url("/shop/fail"), timeout=10)

    assert response.status_code == 500
    assert response.content == b""
    output = http_routes_host.output()
    assert "Executed 'Functions.always_fail' (Failed, Id=" in output
    assert "RuntimeError: the order book is on fire" in output


def test_http_output_binding_and_context_parameter(http_routes_host: RunningHost):
    response = requests.post(http_routes_host.url("/shop/echo"), data="ping", timeout=10)

    assert response.status_code == 202
    assert response.json() == {"body": "ping", "function": "echo_with_output_binding"}


def test_startup_lists_functions_with_urls_and_logs_each_execution(http_routes_host: RunningHost):
    requests.get(http_routes_host.url("/shop/greet/log"), timeout=10)
    output = http_routes_host.output()

    assert f"get_order: [GET] {http_routes_host.base_url}/shop/orders/{{order_id:int}}" in output
    assert f"create_order: [POST] {http_routes_host.base_url}/shop/orders" in output
    assert "Executed 'Functions.greet' (Succeeded, Id=" in output
    assert "Duration=" in output


def test_a_value_for_an_output_binding_the_host_cannot_deliver_is_a_failure(
    http_routes_host: RunningHost,
):
    response = requests.post(http_routes_host.url("/shop/enqueue"), data="order-1", timeout=10)

    assert response.status_code == 500
    output = http_routes_host.output()
    assert "Executed 'Functions.enqueue_order' (Failed" in output
    assert "output binding 'message' of type 'queue'" in output
    assert "binding type 'queue' is not supported by this host" in output


def test_a_return_value_that_is_not_an_http_response_is_a_500(http_routes_host: RunningHost):
    response = requests.get(http_routes_host.url("/shop/wrong-return"), timeout=10)

    assert response.status_code == 500
    output = http_routes_host.output()
    assert "Executed 'Functions.wrong_return' (Failed" in output
    assert "must return func.HttpResponse or str" in output


def test_a_key_with_non_ascii_characters_is_refused_with_a_problem(
    http_routes_host: RunningHost,
):
    url = http_routes_host.url("/shop/private")

    by_query = requests.get(url, params={"code": "clé-ключ"}, timeout=10)
    # requests sends header values as Latin-1: the host reads byte 0xE9, not UTF-8.
    by_header = requests.get(url, headers={"x-functions-key": "clé"}, timeout=10)
    status = requests.get(
        http_routes_host.url("/admin/host/status"), params={"code": "ключ"}, timeout=10
    )

    for response in (by_query, by_header, status):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "UNAUTHORIZED"
    assert by_query.json()["instance"] == "/shop/private"


def test_a_path_with_an_encoded_line_break_reaches_the_route_matching(
    http_routes_host: RunningHost,
):
    # Found by the API fuzzing: the catch-all did not match a decoded "\n", so aiohttp
    # answered its own text/plain 404 instead of the host's routing and the app.
    files = requests.get(http_routes_host.url("/shop/files/a%0Ab.txt"), timeout=10)

    assert (files.status_code, files.text) == (200, "a\nb.txt")
