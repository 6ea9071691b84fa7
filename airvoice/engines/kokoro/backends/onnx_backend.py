"""Kokoro on onnxruntime: the ONNX exports of Kokoro-82M (fp32, fp16, int8), no torch needed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from airvoice.engines.kokoro.backends.base import Abort
from airvoice.engines.kokoro.errors import KokoroError, ModelFileMissingError

_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32}
_TOKEN_INPUTS = ("tokens", "input_ids")


class OnnxBackend:
    """Runs a Kokoro ONNX graph (inputs ``tokens``/``input_ids``, ``style``, ``speed``)."""

    name = "onnx"
    supports_abort = True

    def __init__(self, path: str | os.PathLike[str], use_cuda: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileMissingError(
                f"Kokoro ONNX model {str(self.path)!r} does not exist; download a Kokoro-82M "
                "ONNX export (e.g. kokoro-v1.0.int8.onnx) and pass its path"
            )
        providers = ["CPUExecutionProvider"]
        if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the int8 graph warns about unused initializers
        # No arena: onnxruntime's CPU arena keeps the peak of every run (sentences differ in
        # length, several sessions speak at once) for the life of the process.
        options.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFileMissingError(
                f"onnxruntime cannot load {str(self.path)!r} ({exc}); the file is incomplete "
                "or not an ONNX model: download it again"
            ) from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        token_name = next((n for n in _TOKEN_INPUTS if n in inputs), None)
        if token_name is None or "style" not in inputs or "speed" not in inputs:
            raise KokoroError(
                f"{str(self.path)!r} is not a Kokoro export: its inputs are {sorted(inputs)}, "
                "expected tokens (or input_ids), style and speed"
            )
        self._token_name = token_name
        self._style_type = _TYPES.get(inputs["style"].type, np.float32)
        self._speed_type = _TYPES.get(inputs["speed"].type, np.float32)

    def feeds(
        self, tokens: Sequence[int], style: np.ndarray, speed: float
    ) -> dict[str, np.ndarray]:
        """The graph inputs for one call (token ids padded with 0 at both ends)."""
        return {
            self._token_name: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=self._style_type).reshape(1, -1),
            "speed": np.array([speed], dtype=self._speed_type),
        }

    def synthesize(
        self, tokens: Sequence[int], style: np.ndarray, speed: float, abort: Abort | None = None
    ) -> np.ndarray:
        """Speech for ``tokens`` as float32 samples (see ``SynthesisBackend``); ``abort``
        terminates the run from another thread (onnxruntime then raises)."""
        import onnxruntime as ort

        feeds = self.feeds(tokens, style, speed)
        if abort is None:
            audio = self.session.run(None, feeds)[0]
        else:
            options = ort.RunOptions()
            with abort.hook(lambda: setattr(options, "terminate", True)):
                audio = self.session.run(None, feeds, options)[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)
