"""Kokoro in torch: the ``kokoro`` package's ``KModel``, loaded from local files only.

``KModel`` downloads ``config.json`` and the checkpoint from the hub when they are not given,
and loads a mismatched checkpoint silently (``strict=False``). Here both files are local and
required, and the weights are loaded strictly, so a wrong file is an error, not noise.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airvoice.engines.kokoro.errors import KokoroError, ModelFileMissingError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The parts of a Kokoro checkpoint, each a state dict of one ``KModel`` attribute.
CHECKPOINT_PARTS = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")


class TorchBackend:
    """Runs ``kokoro.KModel`` from ``config.json`` and a ``.pth`` checkpoint on a torch device."""

    name = "torch"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        config: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        import torch

        self.checkpoint = Path(checkpoint)
        self.config_path = Path(config) if config else self.checkpoint.with_name("config.json")
        for path, what in ((self.checkpoint, "checkpoint"), (self.config_path, "config.json")):
            if not path.is_file():
                raise ModelFileMissingError(
                    f"Kokoro {what} {str(path)!r} does not exist; download config.json and "
                    "kokoro-v1_0.pth of hexgrad/Kokoro-82M into one folder and pass its path"
                )
        self.config = json.loads(self.config_path.read_text(encoding="utf-8"))
        self.device = torch.device(device)
        self.model = _load_kmodel(self.config, self.checkpoint).to(self.device).eval()
        self.vocab: dict[str, int] = dict(self.config["vocab"])
        # KModel keeps no state between calls, but one forward at a time keeps GPU memory flat.
        self._lock = threading.Lock()

    def synthesize(self, tokens: Sequence[int], style: np.ndarray, speed: float) -> np.ndarray:
        """Speech for ``tokens`` as float32 samples (see ``SynthesisBackend``)."""
        import torch

        ids = torch.tensor([[0, *tokens, 0]], dtype=torch.long, device=self.device)
        ref = np.asarray(style, dtype=np.float32).reshape(1, -1)
        ref = torch.as_tensor(ref, device=self.device)
        with self._lock, torch.inference_mode():
            audio, _durations = self.model.forward_with_tokens(ids, ref, float(speed))
        return audio.float().reshape(-1).cpu().numpy()


def _load_kmodel(config: dict[str, Any], checkpoint: Path) -> Any:
    import torch
    from kokoro.model import KModel

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several untyped errors for a bad file
        raise ModelFileMissingError(
            f"cannot read the Kokoro checkpoint {str(checkpoint)!r} ({exc}); download it again"
        ) from exc
    missing = [part for part in CHECKPOINT_PARTS if part not in state]
    if missing:
        raise KokoroError(
            f"{str(checkpoint)!r} is not a Kokoro checkpoint (no {', '.join(missing)}); "
            "pass kokoro-v1_0.pth of hexgrad/Kokoro-82M"
        )
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with warnings.catch_warnings():  # weight_norm deprecation and LSTM dropout notes
        warnings.simplefilter("ignore")
        # An empty checkpoint builds the modules without loading: the strict load follows.
        model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=empty)
    for part in CHECKPOINT_PARTS:
        weights = {_strip_prefix(k): v for k, v in state[part].items()}
        try:
            getattr(model, part).load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise KokoroError(
                f"the {part} weights of {str(checkpoint)!r} do not fit its config.json ({exc}); "
                "use the config.json that came with the checkpoint"
            ) from exc
    return model


def _strip_prefix(key: str) -> str:
    """Checkpoints saved from ``DataParallel`` name every weight ``module.<name>``."""
    return key.removeprefix("module.")
