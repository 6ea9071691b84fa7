"""Pipecat's official web client, bundled for a test page at test time (never committed).

``npm install`` fetches ``@pipecat-ai/client-js`` and ``@pipecat-ai/websocket-transport`` at
pinned versions (install scripts off), and esbuild bundles them into one ES module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

PACKAGES = {
    "@pipecat-ai/client-js": "1.13.1",
    "@pipecat-ai/websocket-transport": "1.7.1",
    "esbuild": "0.28.2",
}
ENTRY = """\
export { PipecatClient } from "@pipecat-ai/client-js";
export { WebSocketTransport, WavMediaManager } from "@pipecat-ai/websocket-transport";
"""


def build_bundle(workdir: Path) -> Path:
    """``pipecat.js``: the two packages as one browser ES module."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: install Debian's nodejs and npm (CI does)")
    package = {"name": "pipecat-test-page", "private": True, "dependencies": PACKAGES}
    (workdir / "package.json").write_text(json.dumps(package))
    (workdir / "entry.js").write_text(ENTRY)
    install = [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(install, cwd=workdir, check=True, timeout=300, capture_output=True)
    out = workdir / "pipecat.js"
    esbuild = workdir / "node_modules" / ".bin" / "esbuild"
    bundle = [str(esbuild), "entry.js", "--bundle", "--format=esm", f"--outfile={out.name}"]
    bundle.append("--log-level=error")
    subprocess.run(bundle, cwd=workdir, check=True, timeout=120)
    return out


PAGE = """\
<!doctype html>
<meta charset="utf-8">
<title>Pipecat client through the airvoice dispatcher</title>
<script type="module">
import { PipecatClient, WebSocketTransport, WavMediaManager } from "./pipecat.js";

// Daily's media manager (the transport's default) loads Daily's call machine from its CDN;
// the local WAV media manager keeps everything on this machine.
window.startSession = async (endpoint, token) => {
  const events = [];
  const client = new PipecatClient({
    transport: new WebSocketTransport({ mediaManager: new WavMediaManager() }),
    enableMic: true,
    enableCam: false,
    callbacks: {
      onBotReady: () => events.push("bot-ready"),
      onBotLlmText: (data) => events.push("text:" + data.text),
    },
  });
  (window.clients = window.clients || []).push(client);
  try {
    await client.startBotAndConnect({
      endpoint,
      headers: new Headers({ Authorization: `Bearer ${token}` }),
    });
    return { ok: true, events, state: client.state };
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error), status: error?.status ?? null };
  }
};
document.body.dataset.ready = "true";
</script>
<body></body>
"""
