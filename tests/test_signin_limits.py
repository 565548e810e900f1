"""The way in: the target after sign-in stays on the hub, and failed sign-ins and token checks
are rate-limited per client address, never a client holding a valid token."""

import pytest

TOKEN = "tok-" + "0123456789abcdef" * 3


@pytest.fixture
def guarded(app_factory):
    return app_factory(TOKEN=TOKEN, AUTH_FAILURE_LIMIT="3 per hour")


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",  # a browser drops the tab and goes to //evil.example
        "/\n/evil.example",
        "/\r\n/evil.example",
        "\x00//evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "\\/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_a_target_off_the_site_is_refused_before_and_after_sign_in(guarded, target):
    client = guarded.test_client()
    page = client.get("/signin", query_string={"next": target})
    assert page.status_code == 400 and page.get_json()["error"] == "bad_request"
    posted = client.post("/signin", data={"token": TOKEN, "next": target})
    assert posted.status_code == 400 and posted.get_json()["status"] == 400
    assert "Location" not in posted.headers and "Set-Cookie" not in posted.headers


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/workflow/abc?tab=jobs", "/workflow/abc?tab=jobs"),
        ("/workflow/a\nbc", "/workflow/abc"),  # control characters are removed, not a 500
        ("/x\r\nSet-Cookie: a=b", "/xSet-Cookie:%20a=b"),
        ("", "/"),
    ],
)
def test_a_same_site_target_is_normalised_then_followed(guarded, target, location):
    response = guarded.test_client().post("/signin", data={"token": TOKEN, "next": target})
    assert response.status_code == 302 and response.headers["Location"] == location
    assert "\n" not in response.headers["Location"]
    assert "Set-Cookie" not in response.headers or "a=b" not in response.headers["Set-Cookie"]


def wrong_token(client, address="10.0.0.1"):
    return client.get(
        "/api/workflows",
        headers={"Authorization": "Bearer wrong"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_token_failures_are_limited_per_address_and_valid_tokens_never(guarded):
    client = guarded.test_client()
    assert [wrong_token(client).status_code for _ in range(3)] == [401, 401, 401]
    limited = wrong_token(client)
    assert limited.status_code == 429 and limited.get_json()["error"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) >= 1
    # The same address with the valid token: pipelines keep reporting, however many
    # failures came from their machine.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(10):
        run = client.post(
            "/trace/create",
            json={"runName": "x"},
            headers=headers,
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )
        assert run.status_code == 200
    assert wrong_token(client).status_code == 429  # valid requests did not reset the count
    assert wrong_token(client, "10.0.0.2").status_code == 401  # other addresses: their own
    # Probes are never limited.
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200


def test_failed_sign_ins_are_limited_and_then_even_the_right_token_waits(guarded):
    client = guarded.test_client()
    address = {"REMOTE_ADDR": "10.0.0.3"}
    for _ in range(3):
        wrong = client.post("/signin", data={"token": "guess"}, environ_base=address)
        assert wrong.status_code == 401
    # A browser past the limit cannot go on guessing: the form answers 429 whatever it sends.
    right = client.post("/signin", data={"token": TOKEN}, environ_base=address)
    assert right.status_code == 429 and "Set-Cookie" not in right.headers
    # Showing the sign-in page is not a failure and is not refused elsewhere.
    fresh = guarded.test_client()
    assert fresh.get("/signin", environ_base={"REMOTE_ADDR": "10.0.0.4"}).status_code == 200


def test_requests_without_any_token_are_not_guesses(guarded):
    client = guarded.test_client()
    for _ in range(10):  # a probe or a client not yet configured
        assert client.get("/api/service-info").status_code == 401
    assert wrong_token(client, "127.0.0.1").status_code == 401


def test_successes_are_never_counted(guarded):
    client = guarded.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(20):
        assert client.get("/api/workflows", headers=headers).status_code == 200
    assert wrong_token(client, "127.0.0.1").status_code == 401


def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(app_factory):
    app = app_factory(TOKEN=TOKEN, AUTH_FAILURE_LIMIT="2 per hour", TRUSTED_PROXIES=1)
    client = app.test_client()

    def via_proxy(address):
        return client.get(
            "/api/workflows",
            headers={"Authorization": "Bearer wrong", "X-Forwarded-For": address},
            environ_base={"REMOTE_ADDR": "172.18.0.2"},  # the proxy
        ).status_code

    assert [via_proxy("198.51.100.7") for _ in range(3)] == [401, 401, 429]
    assert via_proxy("198.51.100.8") == 401  # another client behind the same proxy
