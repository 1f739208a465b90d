"""Optional semantic features: the prompt's MiniLM embedding as a one-hot of its nearest cluster.

Clusters are fitted without outcomes (spherical k-means on embeddings of training prompts) and
saved as a small .npz; a router loads them with its extractor. The embedding costs milliseconds
per prompt on a CPU (see `fleetroute bench decision --semantic`), far more than the text
features, so it is opt-in: `pip install 'fleetroute[semantic]'`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fleetroute_router.features.request import Features, RequestInfo
from fleetroute_router.features.text import FEATURE_NAMES, text_features, text_vector

Matrix = npt.NDArray[np.float64]
CLUSTERS = 16
ITERATIONS = 25


def embed(texts: Sequence[str], cache_dir: Path | None = None) -> Matrix:
    """MiniLM embeddings of texts, cached on disk per text digest."""
    from fleetroute_router.features.minilm import MiniLM  # optional extra: imported on use

    path = (cache_dir or default_cache_dir()) / "minilm-embeddings.npz"
    known: dict[bytes, npt.NDArray[np.float32]] = {}
    if path.is_file():
        with np.load(path) as saved:
            known = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
    keys = [hashlib.sha256(t.encode("utf-8")).digest()[:16] for t in texts]
    missing = sorted({k: i for i, k in enumerate(keys) if k not in known}.items())
    if missing:
        vectors = MiniLM().encode([texts[i] for _, i in missing])
        known.update({k: v for (k, _), v in zip(missing, vectors, strict=True)})
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys]).astype(np.float64)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetroute"


class Clusters:
    """Unit-vector centroids; a prompt's feature is the one-hot of its most similar centroid."""

    def __init__(self, centroids: Matrix) -> None:
        self.centroids = centroids

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"cluster:{i}" for i in range(self.centroids.shape[0]))

    @classmethod
    def fit(cls, embeddings: Matrix, k: int = CLUSTERS, seed: int = 0) -> Clusters:
        """Spherical k-means (cosine similarity, k-means++ seeding), deterministic for a seed."""
        if embeddings.shape[0] < k:
            raise ValueError(f"need at least {k} prompts to fit {k} clusters")
        rng = np.random.default_rng(seed)
        chosen = [int(rng.integers(embeddings.shape[0]))]  # k-means++ seeding, by cosine distance
        for _ in range(1, k):
            distance = np.clip(1.0 - (embeddings @ embeddings[chosen].T).max(axis=1), 0.0, None)
            total = float(distance.sum())
            chosen.append(
                int(rng.choice(embeddings.shape[0], p=distance / total))
                if total > 0
                else int(rng.integers(embeddings.shape[0]))
            )
        centroids = embeddings[chosen].copy()
        for _ in range(ITERATIONS):
            nearest = np.argmax(embeddings @ centroids.T, axis=1)
            for j in range(k):
                members = embeddings[nearest == j]
                if len(members):
                    mean = members.sum(0)
                    centroids[j] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return cls(centroids)

    def transform(self, embeddings: Matrix) -> Matrix:
        """One-hot rows of each embedding's nearest centroid."""
        nearest = np.argmax(embeddings @ self.centroids.T, axis=1)
        onehot: Matrix = np.eye(self.centroids.shape[0])[nearest]
        return onehot

    def save(self, path: Path) -> None:
        np.savez(path, centroids=self.centroids)

    @classmethod
    def load(cls, path: Path) -> Clusters:
        with np.load(path) as saved:
            return cls(np.asarray(saved["centroids"], dtype=np.float64))


class SemanticExtractor:
    """Text features followed by the semantic cluster one-hot (a router's FeatureExtractor)."""

    def __init__(self, clusters: Clusters) -> None:
        from fleetroute_router.features.minilm import MiniLM  # optional extra: imported on use

        self.clusters = clusters
        self.feature_names = (*FEATURE_NAMES, *clusters.names)
        self._model = MiniLM()

    def __call__(self, request: RequestInfo) -> Features:
        base = text_features(request)
        embedding = self._model.encode([request.prompt]).astype(np.float64)
        vector = np.concatenate([base.vector, self.clusters.transform(embedding)[0]])
        return Features(prompt_tokens=base.prompt_tokens, vector=vector, task=base.task)


def replay_featurizer(
    training_prompts: Sequence[str], k: int = CLUSTERS, cache_dir: Path | None = None
) -> ReplayFeaturizer:
    """Replay features: text features plus clusters fitted on the training prompts."""
    return ReplayFeaturizer(Clusters.fit(embed(training_prompts, cache_dir), k), cache_dir)


class ReplayFeaturizer:
    """Featurises batches of requests for offline replay (embeddings cached on disk)."""

    def __init__(self, clusters: Clusters, cache_dir: Path | None = None) -> None:
        self.clusters, self._cache_dir = clusters, cache_dir

    def __call__(self, requests: Sequence[RequestInfo]) -> Matrix:
        text = np.stack([text_vector(r)[0] for r in requests])
        semantic = self.clusters.transform(embed([r.prompt for r in requests], self._cache_dir))
        return np.concatenate([text, semantic], axis=1)
