// The airvoice web client: microphone -> 16 kHz PCM16 frames over /ws, bot audio -> a small
// jitter buffer -> speakers, streamed bot text and a latency line per turn.
//
// The token comes from the page's fragment (#token=...) or the field. It travels to the server
// as a WebSocket subprotocol (`token.<T>`), never in the page URL, and is never logged.

import * as wire from "./protocol.js";

const CONNECT_TIMEOUT_MS = 15000; // socket open + bot-ready
const JITTER_SECONDS = 0.08; // playback starts this far ahead, absorbing network jitter
const VOICED_RMS = 0.01; // about -40 dBFS: a mic frame above this counts as speech
const MAX_SEND_BACKLOG = 256 * 1024; // bytes queued on the socket before mic frames are dropped

const CLOSE_MESSAGES = {
  4001: "The server refused the session token. Check the token and connect again.",
  1008: "The server is full: every session slot is taken. Try again later.",
  1013: "The server's models are not loaded yet. Try again in a minute.",
  1001: "The server is shutting down. The call has ended.",
  1011: "The server hit an internal error and ended the call.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("connect-form"),
  token: $("token"),
  voice: $("voice"),
  speed: $("speed"),
  connect: $("connect"),
  call: $("call"),
  mute: $("mute"),
  hangup: $("hangup"),
  level: $("level"),
  status: $("status"),
  alert: $("alert"),
  transcript: $("transcript"),
  empty: $("empty"),
};

// -- page state --------------------------------------------------------------------------
function setState(state, status, tone) {
  document.body.dataset.state = state;
  ui.status.textContent = status;
  ui.status.dataset.tone = tone;
  ui.form.hidden = state !== "idle";
  ui.call.hidden = state === "idle";
  ui.connect.disabled = state !== "idle";
}

function setStatus(status, tone) {
  ui.status.textContent = status;
  ui.status.dataset.tone = tone;
}

function showAlert(message, tone = "error") {
  ui.alert.textContent = message;
  ui.alert.dataset.tone = tone;
  ui.alert.hidden = false;
}

function clearAlert() {
  ui.alert.hidden = true;
  ui.alert.textContent = "";
}

function readFragment() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  if (params.get("token")) ui.token.value = params.get("token");
  if (params.get("voice")) ui.voice.value = params.get("voice");
  if (params.get("speed")) ui.speed.value = params.get("speed");
  // Take the token off the address bar and out of history, so it is not shown or shared.
  history.replaceState(null, "", location.pathname + location.search);
}

function microphoneMessage(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Microphone access was denied. Allow the microphone for this site (the icon in the " +
        "address bar, or the browser's site settings), then press Connect again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in, then press Connect again.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone could not be started: another application may be using it.";
    default:
      return `The microphone could not be opened (${err?.name ?? "error"}: ${err?.message ?? err}).`;
  }
}

function fmtMs(ms) {
  return `${Math.round(ms)} ms`;
}

// -- playback: a jitter buffer of scheduled AudioBufferSourceNodes -----------------------------
function contextToPerformance(ctx, contextTime) {
  // The performance.now() time at which `contextTime` reaches the speaker.
  const stamp = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
  if (stamp && stamp.contextTime > 0 && stamp.performanceTime > 0) {
    return stamp.performanceTime + (contextTime - stamp.contextTime) * 1000;
  }
  const outputLatency = ctx.outputLatency || ctx.baseLatency || 0;
  return performance.now() + (contextTime - ctx.currentTime + outputLatency) * 1000;
}

class Player {
  constructor(ctx) {
    this.ctx = ctx;
    this.out = ctx.createGain();
    this.out.connect(ctx.destination);
    this.sources = new Set();
    this.nextTime = 0;
  }

  /** Queue PCM16 bytes; returns [when it reaches the speaker (performance.now ms), seconds]. */
  play(bytes, sampleRate) {
    const samples = wire.pcm16ToFloat32(bytes);
    if (samples.length === 0 || sampleRate < 3000) return null;
    const buffer = this.ctx.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.out);
    const now = this.ctx.currentTime;
    if (this.nextTime < now + 0.005) this.nextTime = now + JITTER_SECONDS; // empty: refill
    const at = this.nextTime;
    source.start(at);
    this.nextTime += buffer.duration;
    this.sources.add(source);
    source.onended = () => this.sources.delete(source);
    return [contextToPerformance(this.ctx, at), buffer.duration];
  }

  /** Drop everything not yet played (barge-in). */
  flush() {
    for (const source of this.sources) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // not started yet in some browsers: disconnecting is enough
      }
      source.disconnect();
    }
    this.sources.clear();
    this.nextTime = 0;
  }
}

// -- the conversation view ---------------------------------------------------------------
class Turn {
  constructor() {
    this.userEnd = null; // performance.now() of the user's last voiced frame
    this.botEl = null;
    this.textEl = null;
    this.latencyEl = null;
    this.firstAudioAt = null;
    this.browserMs = null;
    this.server = null;
    this.audioSeconds = 0;
    this.botStarted = false;
    this.userSpeaking = false;
  }

  addUser(seconds) {
    const li = item("user", "You");
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = seconds > 0 ? `Spoke for ${seconds.toFixed(1)} s` : "Spoke";
    li.append(note);
    this.userEl = li;
    ui.transcript.append(li);
  }

  bot() {
    if (!this.botEl) {
      const li = item("bot", "Assistant");
      li.setAttribute("aria-busy", "true");
      li.dataset.audioMs = "0";
      this.textEl = document.createElement("span");
      this.textEl.className = "text";
      li.append(this.textEl);
      this.botEl = li;
      ui.transcript.append(li);
      this.botStarted = true;
    }
    return this.botEl;
  }

  appendText(text) {
    this.bot();
    this.textEl.textContent += text;
    this.botEl.scrollIntoView({ block: "nearest" });
  }

  textDone() {
    if (this.botEl) this.botEl.setAttribute("aria-busy", "false");
  }

  get streaming() {
    return this.botEl?.getAttribute("aria-busy") === "true";
  }

  interrupted() {
    if (!this.botEl || this.botEl.dataset.interrupted) return;
    this.botEl.dataset.interrupted = "true";
    this.textDone();
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = " (interrupted)";
    this.botEl.append(note);
  }

  audio(playAt, seconds) {
    this.bot();
    this.audioSeconds += seconds;
    this.botEl.dataset.audioMs = String(Math.round(1000 * this.audioSeconds));
    if (this.firstAudioAt === null) {
      this.firstAudioAt = playAt;
      if (this.userEnd !== null) this.browserMs = playAt - this.userEnd;
      this.renderLatency();
    }
  }

  serverLatency(data) {
    this.server = data;
    this.renderLatency();
  }

  renderLatency() {
    if (this.browserMs === null && this.server === null) return;
    const li = this.bot();
    if (!this.latencyEl) {
      this.latencyEl = document.createElement("p");
      this.latencyEl.className = "latency";
      li.append(this.latencyEl);
    }
    const parts = [];
    if (this.browserMs !== null) {
      li.dataset.browserLatencyMs = String(Math.round(this.browserMs));
      parts.push(`Latency ${fmtMs(this.browserMs)} (end of your speech → bot voice, this browser)`);
    }
    const s = this.server;
    if (s && typeof s.turn_end_to_first_audio_ms === "number") {
      li.dataset.serverLatencyMs = String(Math.round(s.turn_end_to_first_audio_ms));
      const detail = [];
      if (typeof s.llm_first_text_ms === "number") detail.push(`LLM ${fmtMs(s.llm_first_text_ms)}`);
      if (typeof s.tts_first_audio_ms === "number") detail.push(`TTS ${fmtMs(s.tts_first_audio_ms)}`);
      if (typeof s.send_first_audio_ms === "number") {
        detail.push(`sending ${fmtMs(s.send_first_audio_ms)}`);
      }
      const more = detail.length ? ` (${detail.join(", ")})` : "";
      parts.push(`server: turn end → first audio ${fmtMs(s.turn_end_to_first_audio_ms)}${more}`);
    }
    this.latencyEl.textContent = parts.join(" · ");
  }
}

function item(kind, who) {
  ui.empty.hidden = true;
  const li = document.createElement("li");
  li.className = `turn ${kind}`;
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = who;
  li.append(label);
  return li;
}

// -- one call ------------------------------------------------------------------------------
class Call {
  constructor({ token, voice, speed }) {
    this.token = token;
    this.voice = voice;
    this.speed = speed;
    this.ended = false;
    this.hungUp = false;
    this.opened = false;
    this.ready = false;
    this.muted = false;
    this.turn = null; // the turn the user is making, or made last
    this.botTurn = null; // the turn the bot answered last
    this.botSpeaking = false;
    this.lastVoicedAt = null;
    this.voicedSince = null;
    this.levelPending = 0;
  }

  async start() {
    setState("connecting", "Opening the microphone…", "busy");
    // Created inside the click, so the browser lets it play sound.
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    const resumed = this.ctx.resume();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
          channelCount: 1,
        },
      });
    } catch (err) {
      this.end(microphoneMessage(err));
      return;
    }
    if (this.ended) return this.release();
    const [track] = this.stream.getAudioTracks();
    track.addEventListener("ended", () => this.end("The microphone stopped (was it unplugged?)."));
    try {
      await resumed;
      await this.ctx.audioWorklet.addModule("/static/capture-worklet.js");
    } catch (err) {
      this.end(`The audio system could not start (${err?.name ?? "error"}: ${err?.message ?? err}).`);
      return;
    }
    if (this.ended) return this.release();
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(this.ctx, "airvoice-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { targetRate: wire.INPUT_SAMPLE_RATE },
    });
    this.capture.port.onmessage = (event) => this.onMicFrame(event.data);
    this.source.connect(this.capture);
    this.capture.connect(this.ctx.destination); // silent: keeps the worklet running
    this.player = new Player(this.ctx);
    this.openSocket();
  }

  openSocket() {
    setStatus("Connecting to the server…", "busy");
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    if (this.voice) url.searchParams.set("voice", this.voice);
    if (this.speed) url.searchParams.set("speed", this.speed);
    let ws;
    try {
      ws = new WebSocket(url, ["airvoice", `token.${this.token}`]);
    } catch {
      // The token holds characters a subprotocol cannot carry: send it in the socket's query.
      url.searchParams.set("token", this.token);
      ws = new WebSocket(url, ["airvoice"]);
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.timer = setTimeout(() => {
      this.end(`The server did not answer within ${CONNECT_TIMEOUT_MS / 1000} s. Try again.`);
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      this.opened = true;
      setStatus("Waiting for the assistant…", "busy");
      ws.send(wire.encodeMessage(wire.clientReady("airvoice-web")));
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") return; // the protocol is binary
      let frame;
      try {
        frame = wire.decode(event.data);
      } catch {
        return; // not a frame we understand: ignore it, as the server does
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => this.end(this.closeMessage(event), this.hungUp ? "info" : "error");
  }

  closeMessage(event) {
    if (this.hungUp) return "Call ended.";
    const known = CLOSE_MESSAGES[event.code];
    if (known) return known;
    if (event.code === 4400) {
      return `The server refused the voice options: ${event.reason || "bad settings"}. Change them and connect again.`;
    }
    if (event.code === 1000) return "The server ended the call.";
    if (!this.opened) return `Could not reach the server at ${location.host}. Is it running?`;
    if (event.code === 1006) return "The connection to the server was lost.";
    const reason = event.reason ? `: ${event.reason}` : "";
    return `The connection closed (code ${event.code}${reason}).`;
  }

  // -- from the microphone
  onMicFrame({ pcm, rms }) {
    const now = performance.now();
    this.showLevel(rms);
    if (!this.muted && rms >= VOICED_RMS) {
      this.lastVoicedAt = now;
      if (this.voicedSince === null) this.voicedSince = now;
    }
    const ws = this.ws;
    if (!this.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_SEND_BACKLOG) return; // the network cannot keep up: drop
    ws.send(wire.encodeAudio(new Int16Array(pcm), wire.INPUT_SAMPLE_RATE, 1));
  }

  showLevel(rms) {
    this.levelPending = Math.max(this.levelPending, rms);
    if (this.levelFrame) return;
    this.levelFrame = requestAnimationFrame(() => {
      this.levelFrame = 0;
      // A log scale from -60 dBFS (0) to 0 dBFS (1).
      const db = 20 * Math.log10(Math.max(this.levelPending, 1e-6));
      ui.level.value = Math.min(1, Math.max(0, (db + 60) / 60));
      this.levelPending = 0;
    });
  }

  setMuted(muted) {
    this.muted = muted;
    for (const track of this.stream?.getAudioTracks() ?? []) track.enabled = !muted;
    ui.mute.setAttribute("aria-pressed", String(muted));
    ui.mute.textContent = muted ? "Unmute microphone" : "Mute microphone";
    if (this.ready) this.listening();
  }

  listening() {
    setStatus(this.muted ? "Microphone muted" : "Listening", this.muted ? "busy" : "live");
  }

  // -- from the server
  onFrame(frame) {
    if (frame.kind === "audio") return this.onAudio(frame);
    if (frame.kind === "interruption") return this.onInterrupted();
    const type = wire.rtviType(frame);
    if (type) this.onRtvi(type, frame.data.data ?? {});
  }

  currentTurn() {
    if (!this.turn) this.turn = new Turn();
    return this.turn;
  }

  // The turn bot output belongs to: the user's latest, unless they are still speaking over
  // the previous answer (then that answer, until the server interrupts it).
  replyTurn() {
    const turn = this.turn && !this.turn.userSpeaking ? this.turn : (this.botTurn ?? this.currentTurn());
    this.botTurn = turn;
    return turn;
  }

  onAudio(frame) {
    if (!this.player || frame.audio.length < 2) return;
    const rate = frame.sampleRate || wire.OUTPUT_SAMPLE_RATE;
    const played = this.player.play(frame.audio, rate);
    if (played) this.replyTurn().audio(...played);
  }

  onInterrupted() {
    const audible = this.botSpeaking || (this.player?.sources.size ?? 0) > 0;
    this.player?.flush();
    if (this.botTurn && (audible || this.botTurn.streaming)) this.botTurn.interrupted();
  }

  onRtvi(type, data) {
    switch (type) {
      case "bot-ready":
        this.ready = true;
        this.opened = true;
        clearTimeout(this.timer);
        setState("live", "Listening", "live");
        this.listening();
        ui.hangup.focus();
        break;
      case "user-started-speaking":
        // A pause inside one utterance keeps its turn; after the bot answered, a new one.
        if (!this.turn || this.turn.botStarted) this.turn = new Turn();
        this.turn.userSpeaking = true;
        setStatus("Hearing you…", "live");
        break;
      case "user-stopped-speaking": {
        const turn = this.currentTurn();
        const end = this.lastVoicedAt ?? performance.now();
        const since = this.voicedSince ?? end;
        turn.userEnd = end;
        turn.userSpeaking = false;
        if (!turn.userEl) turn.addUser((end - since) / 1000);
        this.voicedSince = null;
        setStatus("Thinking…", "busy");
        break;
      }
      case "bot-llm-started":
        this.replyTurn().bot();
        break;
      case "bot-llm-text":
        if (typeof data.text === "string") this.replyTurn().appendText(data.text);
        break;
      case "bot-llm-stopped":
        this.botTurn?.textDone();
        break;
      case "bot-started-speaking":
        this.botSpeaking = true;
        setStatus("Assistant speaking", "speaking");
        break;
      case "bot-stopped-speaking":
        this.botSpeaking = false;
        this.listening();
        break;
      case "bot-interrupted":
        this.onInterrupted();
        break;
      case "server-message":
        if (data.type === "turn-latency") this.replyTurn().serverLatency(data);
        break;
      case "error": {
        const message = typeof data.error === "string" ? data.error : "unknown error";
        if (data.fatal) this.end(`The server reported an error: ${message}`);
        else showAlert(`The server reported a problem: ${message}`, "info");
        break;
      }
      default:
        break; // metrics and the rest: nothing to show
    }
  }

  hangUp() {
    this.hungUp = true;
    this.end("Call ended.", "info");
  }

  release() {
    clearTimeout(this.timer);
    if (this.levelFrame) cancelAnimationFrame(this.levelFrame);
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.player?.flush();
    this.capture?.port.close();
    this.source?.disconnect();
    this.capture?.disconnect();
    if (this.ctx && this.ctx.state !== "closed") this.ctx.close().catch(() => {});
  }

  end(message, tone = "error") {
    if (this.ended) return;
    this.ended = true;
    const ws = this.ws;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        ws.close(1000, "hang up");
      }
    }
    this.release();
    if (current === this) current = null;
    const hadFocus = ui.call.contains(document.activeElement);
    setState("idle", tone === "error" ? "Disconnected" : "Not connected", tone === "error" ? "error" : "idle");
    ui.level.value = 0;
    ui.mute.setAttribute("aria-pressed", "false");
    ui.mute.textContent = "Mute microphone";
    if (message) showAlert(message, tone);
    if (hadFocus) ui.connect.focus();
  }
}

// -- wiring --------------------------------------------------------------------------------
let current = null;

function connect(event) {
  event.preventDefault();
  if (current) return;
  clearAlert();
  const token = ui.token.value.trim();
  if (!token) {
    showAlert("Enter the session token first.");
    ui.token.focus();
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    showAlert("The microphone needs a secure page: open this server over https:// (or on localhost).");
    return;
  }
  if (typeof AudioWorkletNode === "undefined") {
    showAlert("This browser is too old for airvoice (no AudioWorklet). Try a current Chrome, Firefox or Safari.");
    return;
  }
  const speed = ui.speed.value.trim();
  current = new Call({ token, voice: ui.voice.value.trim(), speed });
  current.start().catch((err) => current?.end(`Something went wrong: ${err?.message ?? err}`));
}

ui.form.addEventListener("submit", connect);
ui.hangup.addEventListener("click", () => current?.hangUp());
ui.mute.addEventListener("click", () => current?.setMuted(!current.muted));
window.addEventListener("pagehide", () => current?.hangUp());
readFragment();
if (ui.token.value) ui.connect.focus();
document.body.dataset.ready = "true";
