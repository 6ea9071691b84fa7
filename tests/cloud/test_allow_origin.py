"""``deploy --allow-origin``: a web page on another site may use the deployment from a browser.

The origins reach every serving pod as the ``AIRVOICE_ALLOWED_ORIGINS`` its server reads, and
the dispatcher pod as ``airvoice dispatch --allow-origin`` (CORS on ``/connect``); ``scale``
copies them to new replicas. A malformed origin is refused before any request to RunPod.
"""

from __future__ import annotations

import json

import httpx
import pytest
from cloud_helpers import SERVER_TOKEN, deploy_json, run_cli
from replica_rig import dispatcher_config, replica_rig

from airvoice.config import ServerConfig
from airvoice.server.app import origin_allowed

SITE = "https://voice.example.com"
DEV = "http://localhost:5173"


def _server_config(env: dict[str, str], monkeypatch) -> ServerConfig:
    """What ``airvoice serve`` in the pod reads from its environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServerConfig()


def _browser_may_connect(config: ServerConfig, origin: str) -> bool:
    """The server's check of a browser's WebSocket handshake to the pod's proxy host."""
    headers = {"origin": origin, "host": "abc123-8000.proxy.runpod.net"}
    return origin_allowed(headers, config.allowed_origins)


@pytest.mark.parametrize(
    "bad",
    [
        "https://voice.example.com/app",  # a page, not an origin
        "voice.example.com",  # no scheme
        "ftp://voice.example.com",
        "https://voice.example.com:99999",
        "https://user@voice.example.com",
        "*",
    ],
)
def test_a_bad_origin_is_refused_before_anything_is_created(fake, cloud_env, bad):
    code, _, err = deploy_json("--allow-origin", SITE, "--allow-origin", bad, "--replicas", "2")
    assert code == 1
    assert "--allow-origin" in err and "https://app.example.com" in err and "Traceback" not in err
    assert fake.calls == [] and fake.live_pods() == [] and fake.volumes == {}


def test_a_single_pod_allows_the_origins(fake, proxy_to_server, monkeypatch):
    code, _, err = deploy_json(
        "--token",
        SERVER_TOKEN,
        "--timeout",
        "1",
        "--allow-origin",
        "HTTPS://Voice.Example.com:443/",  # as a user may paste it: normalized
        "--allow-origin",
        DEV,
    )
    assert code == 0, err
    (pod,) = fake.live_pods()
    assert json.loads(pod["env"]["AIRVOICE_ALLOWED_ORIGINS"]) == [SITE, DEV]
    config = _server_config(pod["env"], monkeypatch)
    assert config.allowed_origins == [SITE, DEV]
    assert _browser_may_connect(config, SITE) and _browser_may_connect(config, DEV)
    assert not _browser_may_connect(config, "https://evil.example.net")


def test_without_the_option_only_the_pods_own_origin_may_connect(cloud_env, monkeypatch):
    plan = run_cli("deploy", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    (gpu_pod,) = [r for r in json.loads(plan.stdout)["requests"] if "gpu" in r.get("body", {})]
    assert "AIRVOICE_ALLOWED_ORIGINS" not in gpu_pod["body"]["env"]
    monkeypatch.delenv("AIRVOICE_ALLOWED_ORIGINS", raising=False)
    config = _server_config(gpu_pod["body"]["env"], monkeypatch)
    assert not _browser_may_connect(config, SITE)
    assert _browser_may_connect(config, "https://abc123-8000.proxy.runpod.net")


def _preflight(url: str, origin: str) -> httpx.Response:
    """What a browser sends before the Pipecat client's ``POST /connect`` with a token."""
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def test_replicas_the_dispatcher_and_scale_keep_the_origins(fake, cloud_env, monkeypatch):
    with replica_rig(fake, 3) as rig:
        cloud_env.setenv("AIRVOICE_RUNPOD_PROXY_TEMPLATE", rig.template)
        code, result, err = deploy_json(
            "--replicas", "2", "--token", SERVER_TOKEN, "--skip-prefetch", "--timeout", "1",
            "--allow-origin", SITE, "--allow-origin", DEV, "--idle-shutdown", "0",
        )  # fmt: skip
        assert code == 0, err
        replicas = [p for p in fake.live_pods() if p["env"]["AIRVOICE_ROLE"] == "replica"]
        (dispatcher,) = [p for p in fake.live_pods() if p["env"]["AIRVOICE_ROLE"] == "dispatcher"]
        assert len(replicas) == 2
        for pod in replicas:
            assert json.loads(pod["env"]["AIRVOICE_ALLOWED_ORIGINS"]) == [SITE, DEV]
        assert dispatcher["args"].endswith(f"--allow-origin {SITE} --allow-origin {DEV}")
        config = dispatcher_config(dispatcher["args"], dispatcher["env"])
        assert config.allow_origins == [SITE, DEV]
        assert config.idle_timeout_minutes == 0  # replicas that never end: nor does it

        # The dispatcher the pod runs (built from its args and env, as the CLI in it does)
        # lets the page's browser call /connect, and no other page.
        connect = result["endpoint"]
        allowed = _preflight(connect, SITE)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == SITE
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = _preflight(connect, "https://evil.example.net")
        assert "access-control-allow-origin" not in refused.headers
        answer = httpx.post(
            connect, headers={"Authorization": f"Bearer {SERVER_TOKEN}", "Origin": DEV}
        )
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == DEV

        # A replica added later is a copy: it allows the same pages.
        up = run_cli("scale", "airvoice", "3", "--json", "--poll-interval", "0.05")
        assert up.exit_code == 0, up.stderr
        (added,) = json.loads(up.stdout)["added"]
        new = next(p for p in fake.live_pods() if p["id"] == added)
        config = _server_config(new["env"], monkeypatch)
        assert config.allowed_origins == [SITE, DEV] and _browser_may_connect(config, SITE)
