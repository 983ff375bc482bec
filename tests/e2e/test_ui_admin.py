"""The administrator's pages (``/ui/admin/…``) and sign-in by a trusted identity provider's header,
over HTTP through the ASGI app in process, embedded mode.

Administrators manage users and the institutions' settings through forms (CSRF on each, every
change logged); accountants and approvers get 403. A header such as ``X-Forwarded-User`` signs a
local, active user in when the request comes from a trusted proxy, and is ignored from elsewhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from tests.e2e.documents import BUYER_ENDPOINT
from tests.e2e.embedded import embedded_runtime

pytestmark = pytest.mark.slow

OTHER_BUYER = "0216:003740000002"
PASSWORD = "correct horse battery staple"
PROXY = "10.1.2.3"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two institutions; an administrator, an accountant and an approver; a trusted proxy."""
    from einvoice.services import users
    from einvoice.services.accounts import add_institution

    trusted = {"ui_trusted_header": "X-Forwarded-User", "ui_trusted_proxies": f"127.0.0.1,{PROXY}/32"}
    with embedded_runtime(tmp_path_factory, "ui-admin", background=False, **trusted) as runtime:
        add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
        add_institution(runtime.uow_factory(), name="Other Agency", endpoint=OTHER_BUYER, unchecked=True)
        for name, role, institutions in [
            ("root", "administrator", []),
            ("anna", "accountant", [BUYER_ENDPOINT]),
            ("ari", "approver", [BUYER_ENDPOINT]),
        ]:
            users.add_user(
                runtime.uow_factory(), username=name, role=role, institutions=institutions, password=PASSWORD
            )
        yield runtime


@pytest.fixture(scope="module")
def app(runtime: Any) -> Any:
    return create_app(runtime)


def client(app: Any, peer: str = "testclient") -> TestClient:
    return TestClient(app, follow_redirects=False, client=(peer, 50000))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def sign_in(browser: TestClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = browser.get("/ui/sign-in")
    return browser.post(
        "/ui/sign-in", data={"username": username, "password": password, "csrf_token": csrf_of(form.text)}
    )


def signed_in(app: Any, username: str, password: str = PASSWORD) -> TestClient:
    browser = client(app)
    answer = sign_in(browser, username, password)
    assert answer.status_code == 303, answer.text
    return browser


def post_form(browser: TestClient, page: str, action: str, **fields: Any) -> httpx.Response:
    """Post ``fields`` to ``action`` with the CSRF token of ``page``, as the browser would."""
    token = csrf_of(browser.get(page).text)
    return browser.post(action, data={"csrf_token": token, **fields})


# --- who may open them ----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["anna", "ari"])
def test_accountants_and_approvers_get_403_and_no_link(app: Any, username: str) -> None:
    browser = signed_in(app, username)
    assert "/ui/admin/" not in browser.get("/ui/queue").text
    for page in ("/ui/admin/users", "/ui/admin/institutions"):
        assert browser.get(page).status_code == 403
    token = csrf_of(browser.get("/ui/queue").text)
    fields = {"csrf_token": token, "username": "sneaky", "role": "administrator", "password": PASSWORD}
    refused = browser.post("/ui/admin/users", data=fields)
    assert refused.status_code == 403
    assert "sneaky" not in signed_in(app, "root").get("/ui/admin/users").text


def test_the_pages_ask_for_sign_in_first(app: Any) -> None:
    answer = client(app).get("/ui/admin/users")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/sign-in?next=")


def test_an_administrator_has_the_links_and_sees_the_users(app: Any) -> None:
    browser = signed_in(app, "root")
    queue = browser.get("/ui/queue").text
    assert 'href="/ui/admin/users"' in queue
    assert 'href="/ui/admin/institutions"' in queue
    page = browser.get("/ui/admin/users")
    assert page.status_code == 200
    assert 'data-username="anna"' in page.text
    assert BUYER_ENDPOINT in page.text


# --- users ------------------------------------------------------------------------------------------------


def test_an_administrator_adds_a_user_who_then_signs_in_and_the_change_is_logged(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    browser = signed_in(app, "root")
    with caplog.at_level(logging.INFO, logger="einvoice.ui.admin"):
        added = post_form(
            browser,
            "/ui/admin/users",
            "/ui/admin/users",
            username="carla",
            role="approver",
            institution=[BUYER_ENDPOINT, OTHER_BUYER],
            password=PASSWORD,
        )
    assert added.status_code == 303
    assert added.headers["location"] == "/ui/admin/users?done=user+added"
    assert "Done: user added." in browser.get(added.headers["location"]).text
    record = next(r for r in caplog.records if r.getMessage() == "admin change")
    assert (vars(record)["admin"], vars(record)["change"], vars(record)["target"]) == ("root", "user added", "carla")
    assert vars(record)["institutions"] == [BUYER_ENDPOINT, OTHER_BUYER]
    row = re.search(r'<tr data-username="carla">.*?</tr>', browser.get("/ui/admin/users").text, re.S)
    assert row
    assert "approver" in row.group(0)
    assert OTHER_BUYER in row.group(0)
    assert sign_in(client(app), "carla").status_code == 303


def test_a_user_the_services_refuse_is_shown_why_and_not_added(app: Any) -> None:
    browser = signed_in(app, "root")
    short = post_form(
        browser, "/ui/admin/users", "/ui/admin/users", username="dora", role="accountant",
        institution=BUYER_ENDPOINT, password="short",
    )  # fmt: skip
    assert short.status_code == 422
    assert "at least 12 characters" in short.text
    lonely = post_form(
        browser, "/ui/admin/users", "/ui/admin/users", username="dora", role="accountant", password=PASSWORD
    )
    assert lonely.status_code == 422
    assert "needs at least one" in lonely.text
    taken = post_form(
        browser, "/ui/admin/users", "/ui/admin/users", username="anna", role="accountant",
        institution=BUYER_ENDPOINT, password=PASSWORD,
    )  # fmt: skip
    assert taken.status_code == 422
    assert 'data-username="dora"' not in browser.get("/ui/admin/users").text


def test_a_form_without_the_sessions_csrf_token_changes_nothing(app: Any) -> None:
    browser = signed_in(app, "root")
    answer = browser.post(
        "/ui/admin/users",
        data={"csrf_token": "forged", "username": "eve", "role": "administrator", "password": PASSWORD},
    )
    assert answer.status_code == 403
    assert browser.post("/ui/admin/users/anna/disable", data={}).status_code == 403
    page = browser.get("/ui/admin/users").text
    assert 'data-username="eve"' not in page
    assert sign_in(client(app), "anna").status_code == 303


def test_reset_password_and_disable(app: Any, runtime: Any) -> None:
    from einvoice.services import users

    users.add_user(
        runtime.uow_factory(), username="fred", role="accountant", institutions=[BUYER_ENDPOINT], password=PASSWORD
    )
    freds = signed_in(app, "fred")
    admin = signed_in(app, "root")
    new_password = "another long passphrase"
    reset = post_form(admin, "/ui/admin/users", "/ui/admin/users/fred/reset-password", password=new_password)
    assert reset.status_code == 303
    assert freds.get("/ui/queue").status_code == 303  # the reset ended fred's session
    assert sign_in(client(app), "fred").status_code == 401
    freds = signed_in(app, "fred", new_password)
    disabled = post_form(admin, "/ui/admin/users", "/ui/admin/users/fred/disable")
    assert disabled.status_code == 303
    assert freds.get("/ui/queue").status_code == 303
    assert sign_in(client(app), "fred", new_password).status_code == 401
    row = re.search(r'<tr data-username="fred">.*?</tr>', admin.get("/ui/admin/users").text, re.S)
    assert row
    assert "disabled" in row.group(0)
    missing = post_form(admin, "/ui/admin/users", "/ui/admin/users/nobody/disable")
    assert missing.status_code == 404
    assert post_form(admin, "/ui/admin/users", "/ui/admin/users/root/disable").status_code == 422


# --- institutions' settings -------------------------------------------------------------------------------


def test_approval_limits_and_default_tolerances_are_set_as_the_cli_sets_them(app: Any, runtime: Any) -> None:
    from einvoice.services import users

    admin = signed_in(app, "root")
    page = "/ui/admin/institutions"
    limits = {"person_above": "5000", "two_people_above": "20000.50"}
    approval = post_form(admin, page, f"/ui/admin/institutions/{BUYER_ENDPOINT}/approval", **limits)
    assert approval.status_code == 303
    tolerances = post_form(
        admin, page, f"/ui/admin/institutions/{BUYER_ENDPOINT}/tolerances", price_percent="2.5", amount_amount="10"
    )
    assert tolerances.status_code == 303
    saved = {s.institution.endpoint: s for s in users.institution_settings(runtime.uow_factory())}
    assert (saved[BUYER_ENDPOINT].approval.person_above, saved[BUYER_ENDPOINT].approval.two_people_above) == (
        5000,
        20000.50,
    )
    assert saved[BUYER_ENDPOINT].tolerances.to_dict() == {
        "price_percent": "2.5",
        "price_amount": None,
        "quantity_percent": None,
        "amount_percent": None,
        "amount_amount": "10",
    }
    assert saved[OTHER_BUYER].approval.person_above is None  # the other institution is untouched
    shown = admin.get(page).text
    assert 'value="20000.50"' in shown
    assert 'value="2.5"' in shown


def test_bad_settings_are_refused_with_the_reason(app: Any) -> None:
    admin = signed_in(app, "root")
    page = "/ui/admin/institutions"
    backwards = post_form(
        admin, page, f"/ui/admin/institutions/{OTHER_BUYER}/approval", person_above="100", two_people_above="50"
    )
    assert backwards.status_code == 422
    assert "must not be below" in backwards.text
    words = post_form(admin, page, f"/ui/admin/institutions/{OTHER_BUYER}/tolerances", price_percent="lots")
    assert words.status_code == 422
    assert "price_percent must be an amount" in words.text
    unknown = post_form(admin, page, "/ui/admin/institutions/0216:999999999999/approval", person_above="1")
    assert unknown.status_code == 404


# --- sign-in by a trusted identity provider's header ------------------------------------------------------


def test_the_trusted_header_from_a_trusted_proxy_signs_a_local_user_in(app: Any) -> None:
    browser = client(app, PROXY)
    browser.headers["X-Forwarded-User"] = "anna"
    first = browser.get("/ui/queue")
    assert first.status_code == 303
    signed = browser.get(first.headers["location"])
    assert signed.status_code == 303
    assert signed.headers["location"] == "/ui/queue"
    assert "einvoice_session=" in " ".join(signed.headers.get_list("set-cookie"))
    page = browser.get("/ui/queue")
    assert page.status_code == 200
    assert "anna (accountant)" in page.text


def test_the_header_from_elsewhere_is_ignored(app: Any) -> None:
    browser = client(app, "192.0.2.10")
    browser.headers["X-Forwarded-User"] = "root"
    form = browser.get("/ui/sign-in")
    assert form.status_code == 200
    assert 'name="password"' in form.text
    assert "einvoice_session=" not in " ".join(form.headers.get_list("set-cookie"))
    assert browser.get("/ui/admin/users").status_code == 303


@pytest.mark.parametrize("username", ["nobody", "gone"])
def test_an_unknown_or_disabled_user_named_by_the_proxy_is_refused(app: Any, runtime: Any, username: str) -> None:
    from einvoice.services import users

    if username == "gone" and "gone" not in {u.username for u in users.list_users(runtime.uow_factory())}:
        users.add_user(runtime.uow_factory(), username="gone", role="administrator", institutions=[], password=PASSWORD)
        users.disable_user(runtime.uow_factory(), "gone")
    browser = client(app, PROXY)
    browser.headers["X-Forwarded-User"] = username
    answer = browser.get("/ui/sign-in")
    assert answer.status_code == 403
    assert "not an active user" in answer.text
    assert "einvoice_session=" not in " ".join(answer.headers.get_list("set-cookie"))


def test_a_session_ends_when_the_proxy_names_someone_else(app: Any) -> None:
    browser = client(app, PROXY)
    browser.headers["X-Forwarded-User"] = "anna"
    browser.get("/ui/sign-in")
    assert browser.get("/ui/queue").status_code == 200
    browser.headers["X-Forwarded-User"] = "ari"
    assert browser.get("/ui/queue").status_code == 303
    assert browser.get("/ui/sign-in").status_code == 303
    assert "ari (approver)" in browser.get("/ui/queue").text
