// AudioWorklet: microphone at the context's rate -> 16 kHz mono PCM16 frames of 20 ms.
//
// Resampling is a windowed-sinc low-pass evaluated at each output instant (Blackman window,
// cut-off at 0.45 x the output rate), so 44.1/48 kHz input does not alias into the band the
// server listens to. Each full frame is posted to the page with its RMS level.

const TARGET_RATE = 16000;
const FRAME_MS = 20;

class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.passThrough = inRate === outRate;
    this.cutoff = Math.min(1, outRate / inRate) * 0.9; // x input Nyquist
    this.half = Math.ceil(8 / this.cutoff); // taps each side: ~8 zero crossings
    this.buffer = new Float32Array(4096 + 2 * this.half);
    this.length = this.half; // start with `half` zeros of history
    this.position = this.half; // input index of the next output sample
  }

  kernel(distance) {
    const x = distance / this.half;
    if (x <= -1 || x >= 1) return 0;
    const window = 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
    const t = this.cutoff * distance;
    const sinc = t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t);
    return sinc * window;
  }

  // Feed input samples; call emit(sample) for each output sample now computable.
  push(input, emit) {
    if (this.passThrough) {
      for (let i = 0; i < input.length; i++) emit(input[i]);
      return;
    }
    if (this.length + input.length > this.buffer.length) {
      const bigger = new Float32Array(2 * (this.length + input.length));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
    const half = this.half;
    while (this.position + half < this.length) {
      const center = Math.floor(this.position);
      let sum = 0;
      let weights = 0;
      for (let k = center - half + 1; k <= center + half; k++) {
        const w = this.kernel(this.position - k);
        sum += w * this.buffer[k];
        weights += w;
      }
      emit(weights > 0 ? sum / weights : 0);
      this.position += this.step;
    }
    const drop = Math.floor(this.position) - half;
    if (drop > 0) {
      this.buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.position -= drop;
    }
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const wanted = options?.processorOptions?.targetRate ?? TARGET_RATE;
    this.resampler = new Resampler(sampleRate, wanted);
    this.frameSamples = Math.round((wanted * FRAME_MS) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.energy = 0;
    this.mono = new Float32Array(128);
    this.emit = (sample) => {
      const s = Math.max(-1, Math.min(1, sample));
      this.energy += s * s;
      this.frame[this.filled++] = Math.round(s < 0 ? s * 32768 : s * 32767);
      if (this.filled === this.frameSamples) {
        const rms = Math.sqrt(this.energy / this.frameSamples);
        const pcm = this.frame.buffer;
        this.port.postMessage({ pcm, rms }, [pcm]);
        this.frame = new Int16Array(this.frameSamples);
        this.filled = 0;
        this.energy = 0;
      }
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected yet
    let mono = channels[0];
    if (channels.length > 1) {
      if (this.mono.length !== mono.length) this.mono = new Float32Array(mono.length);
      this.mono.fill(0);
      for (const channel of channels) {
        for (let i = 0; i < channel.length; i++) this.mono[i] += channel[i] / channels.length;
      }
      mono = this.mono;
    }
    this.resampler.push(mono, this.emit);
    return true;
  }
}

registerProcessor("airvoice-capture", CaptureProcessor);
