"""Access control against real processes: two API replicas, one worker, one Redis.

The isolation matrix (every route of a generation x every kind of caller), the
tenant limit under a burst spread over both replicas, revocation seen by the
other replica, the SDKs' RateLimitError at both doors, and no key or token in
any process's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import anthropic
import httpx
import jwt
import openai
import pytest
import redis as sync_redis

from services import keys
from services.viewer_tokens import ALGORITHM, AUDIENCE
from tests.support.processes import ROOT, ApiProcess, WorkerProcess, stack_env

KEY_ALPHA = "key-alpha-6f1e0c9a2b7d4e81"
KEY_BETA = "key-beta-93c0d2a1b6e54f70"
KEY_BURST = "key-burst-0d9e8f7a6b5c4d3e"
MAX_RUNNING = 3
UNKNOWN = "gen_" + "0" * 32
T = TypeVar("T")


@dataclass
class Deployment:
    redis_url: str
    apis: list[ApiProcess]
    worker: WorkerProcess
    admin_key: str
    secrets_used: list[str]
    """Every key and token the tests send: none may appear in any log."""

    @property
    def a(self) -> str:
        return self.apis[0].base_url

    @property
    def b(self) -> str:
        return self.apis[1].base_url

    def signing_key(self) -> bytes:
        client = sync_redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            return str(client.get(keys.SIGNING_KEY)).encode()
        finally:
            client.close()

    def create_key(self, tenant: str, **body: object) -> tuple[str, str]:
        """(key, id) of a new managed key, created over HTTP with the admin key."""
        answer = httpx.post(
            f"{self.a}/v1/admin/keys",
            headers=auth(self.admin_key),
            json={"tenant": tenant, **body},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        data = answer.json()
        self.secrets_used.append(data["key"])
        return data["key"], data["id"]


def poll(check: Callable[[], T | None], what: str, timeout_s: float = 60) -> T:
    """Call `check` until it returns something, for at most `timeout_s` (a bound, not a figure)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def auth(credential: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"} if credential else {}


@pytest.fixture(scope="module")
def deployment(redis_url: str) -> Iterator[Deployment]:
    env = stack_env(
        redis_url,
        TOKENRELAY_API_KEYS=f"{KEY_ALPHA}:alpha,{KEY_BETA}:beta,{KEY_BURST}:burst",
        TOKENRELAY_MAX_RUNNING_PER_TENANT=str(MAX_RUNNING),
    )
    # The first admin key comes from the CLI, straight in Redis, as an operator would.
    command = ["keys", "create", "--tenant", "ops", "--scopes", "read,cancel,admin"]
    made = subprocess.run(
        [sys.executable, "-m", "cli.main", *command],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    admin_key = made.stdout.strip()
    assert admin_key.startswith("trk_") and admin_key not in made.stderr
    worker = WorkerProcess(env)
    apis = [ApiProcess(env), ApiProcess(env)]
    try:
        worker.wait_ready()
        for api in apis:
            api.wait_ready()
        yield Deployment(
            redis_url, apis, worker, admin_key, [KEY_ALPHA, KEY_BETA, KEY_BURST, admin_key]
        )
    finally:
        for api in apis:
            api.stop()
        worker.stop()


def create(base: str, key: str | None, **body: object) -> httpx.Response:
    payload = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi there"}]}
    return httpx.post(f"{base}/v1/generations", headers=auth(key), json={**payload, **body})


def finished(base: str, key: str, gen_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        status = httpx.get(f"{base}/v1/generations/{gen_id}", headers=auth(key)).json()
        return status if status["status"] in ("completed", "failed", "cancelled") else None

    result: dict[str, object] = poll(done, "the generation to finish")
    return result


def mint(deployment: Deployment, key: str, gen_id: str, **body: object) -> str:
    answer = httpx.post(
        f"{deployment.a}/v1/generations/{gen_id}/viewer-tokens", headers=auth(key), json=body
    )
    assert answer.status_code == 201, answer.text
    data = answer.json()
    assert data["watch_url"] == f"/watch/{gen_id}?token={data['token']}"
    assert data["expires_at"] > time.time()
    deployment.secrets_used.append(data["token"])
    return str(data["token"])


def forged(deployment: Deployment, gen_id: str, **changes: object) -> str:
    claims: dict[str, object] = {
        "sub": gen_id,
        "ten": "alpha",
        "aud": AUDIENCE,
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    algorithm = str(changes.pop("algorithm", ALGORITHM))
    claims.update(changes)
    key: bytes | str = deployment.signing_key() if algorithm != "none" else ""  # "none": no key
    token = jwt.encode(claims, key, algorithm=algorithm)
    deployment.secrets_used.append(token)
    return token


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = claims["sub"][:-1] + ("0" if claims["sub"][-1] != "0" else "1")
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged_payload}.{signature}"


def request(
    base: str, method: str, path: str, credential: str | None, *, query: bool
) -> httpx.Response:
    """One request with the credential in the header, or (tokens) in `?token=`."""
    if query and credential:
        sep = "&" if "?" in path else "?"
        return httpx.request(method, f"{base}{path}{sep}token={credential}", timeout=30)
    return httpx.request(method, f"{base}{path}", headers=auth(credential), timeout=30)


def test_isolation_matrix(deployment: Deployment) -> None:
    d = deployment
    native = create(d.a, KEY_ALPHA)
    assert native.status_code == 202, native.text
    # A generation made at the OpenAI door belongs to its creator's tenant too.
    door = httpx.post(
        f"{d.b}/v1/chat/completions",
        headers=auth(KEY_ALPHA),
        json={"model": "demo/echo", "messages": [{"role": "user", "content": "door"}]},
        timeout=60,
    )
    assert door.status_code == 200, door.text
    other_gen = create(d.a, KEY_ALPHA).json()["id"]
    for gen_id in (native.json()["id"], door.headers["X-Generation-Id"]):
        finished(d.a, KEY_ALPHA, gen_id)
        viewer = mint(d, KEY_ALPHA, gen_id)
        callers: dict[str, tuple[str | None, bool]] = {
            "owner": (KEY_ALPHA, False),
            "other tenant": (KEY_BETA, False),
            "admin": (d.admin_key, False),
            "viewer token": (viewer, False),
            "viewer token in ?token=": (viewer, True),
            "token of another generation": (mint(d, KEY_ALPHA, other_gen), False),
            "expired token": (forged(d, gen_id, exp=int(time.time()) - 5), True),
            "tampered token": (tampered(viewer), False),
            "alg none": (forged(d, gen_id, algorithm="none"), False),
            "wrong algorithm": (forged(d, gen_id, algorithm="HS512"), False),
            "no key": (None, False),
        }
        read = {"owner": 200, "other tenant": 404, "admin": 200, "viewer token": 200,
                "viewer token in ?token=": 200, "token of another generation": 403}  # fmt: skip
        unauthenticated = {"expired token": 401, "tampered token": 401, "alg none": 401,
                           "wrong algorithm": 401, "no key": 401}  # fmt: skip
        read.update(unauthenticated)
        no_viewers = {**read, "viewer token": 403, "viewer token in ?token=": 403}
        not_mine = {"other tenant": 200, "token of another generation": 403}
        create_answers = {"owner": 400, "other tenant": 400, "admin": 403}
        routes: list[tuple[str, str, dict[str, int]]] = [
            ("GET", f"/v1/generations/{gen_id}", read),
            ("GET", f"/v1/generations/{gen_id}/events", read),
            ("GET", f"/v1/generations/{gen_id}/events?format=openai", read),
            ("GET", f"/v1/generations/{gen_id}/events?format=anthropic", read),
            (
                "POST",
                f"/v1/generations/{gen_id}/cancel",
                {**no_viewers, "owner": 409, "admin": 409},
            ),
            (
                "POST",
                f"/v1/generations/{gen_id}/viewer-tokens",
                {**no_viewers, "owner": 201, "admin": 201},
            ),
            # A viewer may list its own generation by id (the watch page's viewer count).
            ("GET", f"/v1/generations?id={gen_id}", {**read, **not_mine}),
            ("GET", "/v1/generations", {**no_viewers, **not_mine}),
            (
                "POST",
                "/v1/generations",
                {**no_viewers, **create_answers, "token of another generation": 403},
            ),
        ]
        for method, path, expected in routes:
            for caller, (credential, in_query) in callers.items():
                if in_query and credential is None:
                    continue
                answer = request(d.b, method, path, credential, query=in_query)
                assert answer.status_code == expected[caller], (method, path, caller, answer.text)
                if expected[caller] == 404:
                    # Exactly as for an id that never existed: same status, same body.
                    unknown = request(
                        d.b, method, path.replace(gen_id, UNKNOWN), credential, query=in_query
                    )
                    assert unknown.status_code == 404
                    assert answer.json() == json.loads(unknown.text.replace(UNKNOWN, gen_id))
        # Listings: the owner's and the admin's include it, the other tenant's do not.
        for credential, included in ((KEY_ALPHA, True), (d.admin_key, True), (KEY_BETA, False)):
            for path in ("/v1/generations", f"/v1/generations?id={gen_id}"):
                rows = httpx.get(f"{d.a}{path}", headers=auth(credential)).json()["data"]
                assert (gen_id in [row["id"] for row in rows]) is included, (credential, path)
        # The watch page checks a token it is given.
        for credential, status in ((viewer, 200), (callers["expired token"][0], 401),
                                   (tampered(viewer), 401),
                                   (callers["token of another generation"][0], 403)):  # fmt: skip
            page = httpx.get(f"{d.a}/watch/{gen_id}", params={"token": credential})
            assert page.status_code == status
        assert httpx.get(f"{d.a}/watch/{gen_id}", params={"token": KEY_ALPHA}).status_code == 401


def test_door_joins_of_another_tenant_are_unknown(deployment: Deployment) -> None:
    d = deployment
    gen_id = create(d.a, KEY_ALPHA).json()["id"]
    finished(d.a, KEY_ALPHA, gen_id)
    for fmt in ("openai", "anthropic"):
        mine = httpx.get(
            f"{d.b}/v1/generations/{gen_id}/events", params={"format": fmt}, headers=auth(KEY_ALPHA)
        )
        assert mine.status_code == 200 and "data:" in mine.text
        theirs = httpx.get(
            f"{d.b}/v1/generations/{gen_id}/events", params={"format": fmt}, headers=auth(KEY_BETA)
        )
        assert theirs.status_code == 404


async def test_burst_over_two_replicas_admits_exactly_the_limit(deployment: Deployment) -> None:
    d = deployment
    body = {
        "model": "demo/story",
        "max_tokens": 4000,
        "messages": [{"role": "user", "content": "a long story"}],
    }
    async with httpx.AsyncClient(timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"{base}/v1/generations", headers=auth(KEY_BURST), json=body)
                for base in [d.a, d.b] * 25
            )
        )
        admitted = [a for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 429]
        assert len(admitted) == MAX_RUNNING and len(refused) == 50 - MAX_RUNNING
        for answer in refused:
            assert answer.json()["error"]["type"] == "rate_limit_error"
            assert int(answer.headers["Retry-After"]) >= 1
        # Nothing was queued for a refused request.
        listed = (await http.get(f"{d.a}/v1/generations", headers=auth(KEY_BURST))).json()
        assert sorted(row["id"] for row in listed["data"]) == sorted(
            a.json()["id"] for a in admitted
        )
        # A slot frees the moment a generation ends: cancel one, and one more is admitted.
        first = admitted[0].json()["id"]
        cancel = await http.post(f"{d.b}/v1/generations/{first}/cancel", headers=auth(KEY_BURST))
        assert cancel.status_code == 202
        finished(d.a, KEY_BURST, first)
        again = await http.post(f"{d.b}/v1/generations", headers=auth(KEY_BURST), json=body)
        assert again.status_code == 202, again.text
        over = await http.post(f"{d.a}/v1/generations", headers=auth(KEY_BURST), json=body)
        assert over.status_code == 429
        for gen_id in [a.json()["id"] for a in admitted[1:]] + [again.json()["id"]]:
            await http.post(f"{d.a}/v1/generations/{gen_id}/cancel", headers=auth(KEY_BURST))
            finished(d.a, KEY_BURST, gen_id)
        # Completed generations free theirs too.
        short = {**body, "model": "demo/echo"}
        for _ in range(2):
            batch = [
                (await http.post(f"{d.a}/v1/generations", headers=auth(KEY_BURST), json=short))
                for _ in range(MAX_RUNNING)
            ]
            assert [a.status_code for a in batch] == [202] * MAX_RUNNING
            for answer in batch:
                finished(d.b, KEY_BURST, answer.json()["id"])


def test_a_revoked_key_is_refused_by_the_other_replica_after_one_second(
    deployment: Deployment,
) -> None:
    d = deployment
    key, key_id = d.create_key("gamma", name="to revoke")
    assert httpx.get(f"{d.b}/v1/generations", headers=auth(key)).status_code == 200
    gen_id = create(d.b, key, model="demo/story", max_tokens=6000).json()["id"]
    token = mint(d, key, gen_id)
    # An open stream with the key (on B) and one with a token it minted (on A).
    with (
        httpx.stream(
            "GET", f"{d.b}/v1/generations/{gen_id}/events", headers=auth(key), timeout=60
        ) as keyed,
        httpx.stream(
            "GET", f"{d.a}/v1/generations/{gen_id}/events", params={"token": token}, timeout=60
        ) as viewed,
    ):
        assert keyed.status_code == 200 and viewed.status_code == 200
        revoked = httpx.delete(f"{d.a}/v1/admin/keys/{key_id}", headers=auth(d.admin_key))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        time.sleep(1.0)
        assert httpx.get(f"{d.b}/v1/generations", headers=auth(key)).status_code == 401
        assert httpx.get(f"{d.a}/v1/generations/{gen_id}", headers=auth(token)).status_code == 401
        # Both open streams end (no terminal event: the generation is still running).
        for stream in (keyed, viewed):
            text = "".join(stream.iter_text())
            assert "event: done" not in text and "event: cancelled" not in text
    status = httpx.get(f"{d.a}/v1/generations/{gen_id}", headers=auth(d.admin_key)).json()
    assert status["status"] == "running"
    httpx.post(f"{d.a}/v1/generations/{gen_id}/cancel", headers=auth(d.admin_key))
    listed = httpx.get(f"{d.a}/v1/admin/keys", headers=auth(d.admin_key)).json()["data"]
    assert any(row["id"] == key_id and row["revoked_at"] for row in listed)
    assert all("key" not in row for row in listed)


def test_both_sdks_raise_rate_limit_error(deployment: Deployment) -> None:
    d = deployment
    openai_key, _ = d.create_key("delta", limits={"requests_per_minute": 1})
    client = openai.OpenAI(base_url=f"{d.a}/v1", api_key=openai_key, max_retries=0)
    messages: list[dict[str, str]] = [{"role": "user", "content": "hello"}]
    client.chat.completions.create(model="demo/echo", messages=messages)  # type: ignore[arg-type]  # plain dicts, as users write them
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="demo/echo", messages=messages)  # type: ignore[arg-type]  # as above
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60
    anthropic_key, _ = d.create_key("delta", limits={"requests_per_minute": 1})
    claude = anthropic.Anthropic(base_url=d.b, api_key=anthropic_key, max_retries=0)
    claude.messages.create(model="demo/echo", max_tokens=20, messages=messages)  # type: ignore[arg-type]  # as above
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="demo/echo", max_tokens=20, messages=messages)  # type: ignore[arg-type]  # as above


def test_key_limits_models_tokens_and_streams(deployment: Deployment) -> None:
    d = deployment
    key, _ = d.create_key(
        "epsilon", limits={"models": ["demo/echo"], "max_tokens": 50, "max_streams": 1}
    )
    assert create(d.a, key, model="demo/story").status_code == 403
    assert create(d.a, key, max_tokens=51).status_code == 422
    gen_id = create(d.a, key, model="demo/echo", max_tokens=50).json()["id"]
    finished(d.a, key, gen_id)
    long_id = create(d.b, KEY_ALPHA, model="demo/story", max_tokens=4000).json()["id"]
    long_key, _ = d.create_key("alpha", limits={"max_streams": 1})
    with httpx.stream(
        "GET", f"{d.a}/v1/generations/{long_id}/events", headers=auth(long_key), timeout=60
    ) as first:
        assert first.status_code == 200
        second = httpx.get(f"{d.b}/v1/generations/{long_id}/events", headers=auth(long_key))
        assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1

    # Closed: the slot is free again.
    def reopens() -> bool:
        with httpx.stream(
            "GET", f"{d.b}/v1/generations/{long_id}/events", headers=auth(long_key), timeout=60
        ) as again:
            return again.status_code == 200

    poll(reopens, "the stream slot to free")
    httpx.post(f"{d.a}/v1/generations/{long_id}/cancel", headers=auth(KEY_ALPHA))
    finished(d.a, KEY_ALPHA, long_id)


def test_metrics_need_a_scraper_credential_with_auth_on(deployment: Deployment) -> None:
    d = deployment
    assert httpx.get(f"{d.a}/metrics").status_code == 401
    assert httpx.get(f"{d.a}/metrics", headers=auth(KEY_ALPHA)).status_code == 403
    scraped = httpx.get(f"{d.a}/metrics", headers=auth(d.admin_key))
    assert scraped.status_code == 200
    assert 'tokenrelay_generations_created_total{tenant="alpha"}' in scraped.text
    assert httpx.get(f"{d.a}/healthz").status_code == 200
    assert httpx.get(f"{d.a}/readyz").status_code == 200
    assert httpx.get(f"{d.a}/openapi.json").status_code == 200
    assert httpx.get(f"{d.a}/static/js/watch.js").status_code == 200


def test_a_viewer_token_reads_a_response_and_nothing_else(deployment: Deployment) -> None:
    """A response is a generation: a token minted for it reads it through the Responses
    door too, on either replica, and may not cancel it or read another response."""
    d = deployment
    gpt = openai.OpenAI(base_url=f"{d.a}/v1", api_key=KEY_ALPHA, max_retries=0)
    done = gpt.responses.create(model="demo/echo", input="read me with a token")
    other = gpt.responses.create(model="demo/echo", input="not this one")
    gen_id = "gen_" + done.id.removeprefix("resp_")
    token = mint(d, KEY_ALPHA, gen_id)
    read = httpx.get(f"{d.b}/v1/responses/{done.id}", headers=auth(token))
    assert read.status_code == 200, read.text
    answer = read.json()
    assert answer["status"] == "completed"
    assert answer["output"][0]["content"][0]["text"] == "read me with a token"
    assert httpx.get(f"{d.b}/v1/responses/{done.id}?token={token}").status_code == 200
    assert httpx.get(f"{d.a}/v1/responses/{other.id}", headers=auth(token)).status_code == 403
    cancel = httpx.post(f"{d.a}/v1/responses/{done.id}/cancel", headers=auth(token))
    assert cancel.status_code == 403


def test_zz_no_key_or_token_in_any_log(deployment: Deployment) -> None:
    """Last in the module: every process's log so far, against every secret the tests sent."""
    d = deployment
    logs = {proc.name: proc.log() for proc in [*d.apis, d.worker]}
    assert any("token=[redacted]" in text for text in logs.values())
    for name, text in logs.items():
        for secret in d.secrets_used:
            assert secret not in text, f"{name} logged a credential"
            # Nor a recognisable piece of one (a JWT's signature, a key's secret part).
            assert secret[-20:] not in text, f"{name} logged part of a credential"


def test_a_door_stream_over_the_keys_stream_limit_queues_nothing(deployment: Deployment) -> None:
    """A streaming door request opens a stream: over the key's limit it is refused
    before its generation is queued, in the door's own shape (the SDK's RateLimitError)."""
    d = deployment
    key, _ = d.create_key("zeta", limits={"max_streams": 1})
    long_id = create(d.a, key, model="demo/story", max_tokens=4000).json()["id"]
    with httpx.stream(
        "GET", f"{d.a}/v1/generations/{long_id}/events", headers=auth(key), timeout=60
    ) as first:
        assert first.status_code == 200
        listed = [
            row["id"]
            for row in httpx.get(f"{d.a}/v1/generations", headers=auth(key)).json()["data"]
        ]
        gpt = openai.OpenAI(base_url=f"{d.b}/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            gpt.chat.completions.create(
                model="demo/echo", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["type"] == "rate_limit_error"
        after = httpx.get(f"{d.a}/v1/generations", headers=auth(key)).json()["data"]
        assert [row["id"] for row in after] == listed == [long_id]
    httpx.post(f"{d.a}/v1/generations/{long_id}/cancel", headers=auth(key))
    finished(d.a, key, long_id)
