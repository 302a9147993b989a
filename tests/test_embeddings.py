"""Embeddings, neighbours, data health, maps, Grad-CAM and the drill-down, on the real cats-and-dogs photos with
a pretrained MobileNet, and the `embed` and `neighbours` commands end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from planted import DUPLICATE, DUPLICATED, GRADCAM_BOX, GRADCAM_CAT, MISLABELLED, MODEL

from core import embeddings, projection

pytest_plugins = ["planted"]  # the session fixtures
REPO = Path(__file__).resolve().parents[1]


def test_parquet_has_one_row_per_image_matching_the_cached_features(planted_dataset, planted_embeddings, tmp_path):
    from core.zoo import ModelRef

    emb = planted_embeddings
    assert embeddings.write_export(emb, tmp_path / "e.parquet") == [tmp_path / "e.parquet"]
    table = pd.read_parquet(tmp_path / "e.parquet")
    records = planted_dataset.images
    assert list(table.columns) == ["file", "split", "class", "vector"] and len(table) == len(records) == 3001
    assert list(table.file) == [r.path.relative_to(planted_dataset.root).as_posix() for r in records]
    assert list(table.split) == [r.split for r in records]
    assert list(table["class"]) == [planted_dataset.classes[r.label] for r in records]
    vectors = np.stack(table.vector)
    assert vectors.shape == (3001, ModelRef.parse(MODEL).spec.feature_dim) and vectors.dtype == np.float32
    with np.load(emb.source) as cached:
        assert np.array_equal(vectors, cached["features"])
    written = embeddings.write_export(emb, tmp_path / "e.npy")
    assert np.array_equal(np.load(written[0]), vectors) and list(pd.read_csv(written[1]).file) == list(table.file)


def test_nearest_neighbour_of_a_dataset_image_is_itself(planted, planted_embeddings):
    emb = planted_embeddings
    query = embeddings.embed_files(MODEL, [planted / GRADCAM_CAT])[0]
    found = embeddings.neighbours_table(emb, query, k=5)
    assert found.file[0] == GRADCAM_CAT and found.similarity[0] == pytest.approx(1.0, abs=1e-4)
    assert found.similarity.is_monotonic_decreasing and found.similarity[1] < 0.99
    graph = embeddings.neighbour_graph(emb)
    assert not (graph.indices == np.arange(len(emb))[:, None]).any()  # leave-one-out: never itself
    assert embeddings.neighbour_graph(emb) is graph  # kept: a rerun does not rebuild it


def test_planted_near_duplicate_and_mislabelled_image_are_found(planted_embeddings):
    emb = planted_embeddings
    graph = embeddings.neighbour_graph(emb)
    duplicates = embeddings.near_duplicates(emb, graph)
    pairs = {frozenset(pair) for pair in zip(duplicates.file, duplicates["similar file"], strict=True)}
    assert frozenset((DUPLICATE, DUPLICATED)) in pairs, duplicates.head()
    assert len(duplicates) < 10  # a short list: not every pair of similar cats
    mislabelled = embeddings.likely_mislabelled(emb, graph)
    row = mislabelled[mislabelled.file == MISLABELLED]
    assert len(row) == 1 and row["neighbours' class"].iloc[0] == "cats" and row["share of neighbours"].iloc[0] >= 0.7
    assert len(mislabelled) < len(emb) * 0.1
    outliers = embeddings.outliers(emb, graph)
    assert 0 < len(outliers) < len(emb) * 0.05
    assert (outliers["mean neighbour similarity"] < outliers["dataset median"]).all()


def test_knn_accuracy_above_90_percent(planted_embeddings):
    emb = planted_embeddings
    accuracy = embeddings.knn_accuracy(emb, embeddings.neighbour_graph(emb))
    assert 0.9 < accuracy < 1.0, accuracy


def test_maps_keep_classes_apart(planted_embeddings):
    emb = planted_embeddings
    sample = projection.map_sample(emb.labels, 300)
    assert len(sample) == 300 and abs((emb.labels[sample] == 0).mean() - 0.5) < 0.02  # classes in proportion
    for xy in (projection.pca(emb.unit[sample]), projection.tsne(emb.unit[sample])):
        assert xy.shape == (300, 2) and np.isfinite(xy).all()
    distances = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.diag(np.full(300, np.inf))
    nearest = distances.argsort(axis=1)[:, :10]
    agreement = (emb.labels[sample][nearest] == emb.labels[sample][:, None]).mean()
    assert agreement > 0.75, agreement  # t-SNE keeps the neighbourhoods (chance: 0.5): cats near cats


def test_gradcam_puts_most_of_its_mass_inside_the_cat(planted, planted_run):
    from core.complete import load_complete
    from core.gradcam import heatmap, share_inside
    from core.images import open_image
    from core.records import ModelResult
    from core.store import Store

    result = next(r for r in Store().results(planted_run) if isinstance(r, ModelResult))
    image = open_image(planted / GRADCAM_CAT)
    heat, explained = heatmap(load_complete(result), image)
    assert result.classes[explained] == "cats"
    assert heat.shape == (image.height, image.width) == (449, 499)
    assert heat.min() >= 0 and heat.sum() == pytest.approx(1.0, rel=1e-4)
    left, top, right, bottom = GRADCAM_BOX
    area = (right - left) * (bottom - top) / (image.width * image.height)
    inside = share_inside(heat, GRADCAM_BOX)
    assert inside > 0.6 and inside > area + 0.2, (inside, area)


def test_gradcam_states_which_models_cannot():
    from core.gradcam import GradCamUnavailable, feature_map_layer
    from core.zoo import ModelRef

    assert feature_map_layer(ModelRef.parse("MobileNet:0.25@64/none").build()) == "conv_pw_13_relu"
    with pytest.raises(GradCamUnavailable, match="1x1"):
        feature_map_layer(ModelRef.parse("MobileNet:0.25@32/none").build())


def test_drill_down_matches_the_confusion_matrix(planted_run):
    from core.mistakes import cell, confident_mistakes, predict_test_images
    from core.records import ModelResult
    from core.store import Store

    store = Store()
    result = next(r for r in store.results(planted_run) if isinstance(r, ModelResult))
    scored = predict_test_images(store.run(planted_run), result)
    assert (scored.predictions == np.asarray(result.test_predictions)).mean() > 0.99
    for true in range(2):
        for predicted in range(2):
            images = cell(scored, true, predicted)
            assert abs(len(images) - result.confusion[true][predicted]) <= 2
            assert images.probability.is_monotonic_decreasing
    worst = confident_mistakes(scored, 5)
    assert len(worst) == 5 and (worst["true class"] != worst["predicted class"]).all()
    assert worst.probability.is_monotonic_decreasing and worst.probability.iloc[0] > 0.5


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *arguments], cwd=REPO, capture_output=True, text=True, env=os.environ.copy()
    )


def test_cli_embed_and_neighbours(planted, planted_embeddings, tmp_path):
    out = tmp_path / "out" / "cats.parquet"
    done = run_cli("embed", str(planted), "--model", MODEL, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "3,001 images x 256 dimensions" in done.stdout and len(pd.read_parquet(out)) == 3001
    done = run_cli("embed", str(planted), "--model", MODEL, "--out", str(tmp_path / "cats.npy"))
    assert done.returncode == 0 and np.load(tmp_path / "cats.npy").shape == (3001, 256), done.stderr
    assert (tmp_path / "cats.csv").exists()
    done = run_cli("neighbours", str(planted), "--model", MODEL, "--image", str(planted / MISLABELLED), "-k", "3")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert len(rows) == 3 and rows[0][1] == MISLABELLED and rows[0][-1] == "1.0000", done.stdout
    assert [row[-2] for row in rows[1:]] == ["cats", "cats"]  # a cat's neighbours are cats, whatever its folder
    done = run_cli("embed", str(planted), "--model", MODEL, "--out", str(tmp_path / "cats.txt"))
    assert done.returncode == 2 and "Received: --out" in done.stderr
    done = run_cli("neighbours", str(tmp_path / "missing"), "--model", MODEL, "--image", str(planted / MISLABELLED))
    assert done.returncode == 2 and "does not exist" in done.stderr
