"""The report as a reader sees it: rendered by headless Chromium from synthetic inputs.

Also checks the mesh renderer's geometry (a sphere lands where the rig's projection says) because the
figure's whole point is that every column is seen from the same camera.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from stereo_occ.config import CATEGORIES, RigConfig
from stereo_occ.data.rig import StereoRig
from stereo_occ.errors import UserError
from stereo_occ.report import (
    FigureRow,
    MeshRenderer,
    ReconstructionFigure,
    ReportInputs,
    figure_png,
    read_training_log,
    write_report,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _rig(size: int = 64) -> StereoRig:
    return StereoRig.from_config(RigConfig(image_size=size))


def test_mesh_render_matches_the_rig_projection():
    rig = _rig(64)
    radius = 0.4
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    sphere.apply_translation([0.1, -0.05, 0.0])  # off-centre, so a flipped axis would show
    with MeshRenderer(64) as renderer:
        image = renderer.render(sphere, rig.K, rig.world_to_cam[0])
        empty = renderer.render(trimesh.Trimesh(), rig.K, rig.world_to_cam[0])
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    mask = image.min(axis=2) < 250
    rows, cols = np.nonzero(mask)
    uv, _ = rig.project(np.array([[0.1, -0.05, 0.0]]), 0)
    assert abs(cols.mean() - uv[0, 0]) < 1.0 and abs(rows.mean() - uv[0, 1]) < 1.0
    expected_area = math.pi * rig.sphere_image_radius(radius) ** 2
    assert abs(mask.sum() - expected_area) / expected_area < 0.1
    assert (empty == 255).all()  # an empty reconstruction is plain background


def test_training_log_rejects_foreign_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_training_log(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="missing columns"):
        read_training_log(bad)


def _write_log(path: Path, final_loss: float, final_iou: float) -> None:
    lines = ["iteration,seconds,split,loss,iou"]
    for it in range(0, 201, 10):
        loss = 0.7 - (0.7 - final_loss) * it / 200
        lines.append(f"{it},{it * 0.5:.2f},train,{loss:.4f},")
        if it % 50 == 0 and it:
            lines.append(f"{it},{it * 0.5 + 1:.2f},val,{loss:.4f},{final_iou * it / 200:.4f}")
    path.write_text("\n".join(lines) + "\n")


def _synthetic_experiment(root: Path) -> ReportInputs:
    """A fake experiment folder: logs, figure renders, meshes; returns what the report needs."""
    rig = _rig(64)
    models = ("mono", "stereo")
    results = {
        "models": {
            name: {
                "iou": {"mug": 0.31 + k, "bowl": 0.42 + k, "bottle": 0.53 + k, "mean": 0.42 + k},
                "mesh_iou": {"mug": 0.3, "bowl": 0.4, "bottle": 0.5, "mean": 0.4 + k},
                "chamfer_l1": {"mug": 0.05, "bowl": 0.04, "bottle": 0.03, "mean": 0.04 - k / 10},
                "normal_consistency": {"mug": 0.8, "bowl": 0.8, "bottle": 0.8, "mean": 0.8},
                "fscore": {"mug": 0.2, "bowl": 0.3, "bottle": 0.4, "mean": 0.3 + k},
                "iterations": 200,
                "train_seconds": 100.0 + 50 * k * 10,
            }
            for k, name in zip((0.0, 0.1234), models)
        },
        "dataset": {
            "source": "procedural",
            "counts": {"train": {"mug": 4, "bowl": 4, "bottle": 4, "total": 12}},
            "views_per_object": 4,
            "image_size": 64,
        },
        "machine": {"cpu": "Test CPU 9000", "cores": 2, "torch": "2.13.0", "gpu": None},
        "date": "2026-11-23T20:00:00+00:00",
    }
    logs = {}
    for name, (loss, iou) in zip(models, [(0.3, 0.4), (0.2, 0.55)]):
        logs[name] = root / "runs" / name / "metrics.csv"
        logs[name].parent.mkdir(parents=True)
        _write_log(logs[name], loss, iou)
    shapes = {
        "mug": trimesh.creation.annulus(r_min=0.25, r_max=0.35, height=0.7),
        "bowl": trimesh.creation.icosphere(subdivisions=3, radius=0.4),
        "bottle": trimesh.creation.cylinder(radius=0.2, height=0.9),
    }
    rows = []
    columns = ["left input", "ground truth", *models]
    with MeshRenderer(64) as renderer:
        for cat in CATEGORIES:
            images, meshes = {}, {}
            for col in columns:
                mesh = shapes[cat] if col != "mono" else shapes[cat].copy().apply_scale(0.8)
                image = renderer.render(mesh, rig.K, rig.world_to_cam[0])
                images[col] = root / "figure" / col / f"{cat}.png"
                images[col].parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(images[col])
                if col != "left input":
                    meshes[col] = images[col].with_suffix(".ply")
                    mesh.export(meshes[col])
            rows.append(FigureRow(object_id=f"{cat}/proc-0000", category=cat, view=0, images=images, meshes=meshes))
    figure = ReconstructionFigure(columns=columns, rows=rows)
    figure.save(root / "figure" / "figure.json")
    mesh_folders = {}
    for name in models:
        folder = root / "eval" / name / "meshes" / "mug"
        folder.mkdir(parents=True)
        shapes["mug"].export(folder / "proc-0001.ply")
        mesh_folders[name] = folder.parent
    return ReportInputs(
        results=results,
        training_logs=logs,
        figure=ReconstructionFigure.load(root / "figure" / "figure.json"),
        mesh_folders=mesh_folders,
        config={"train": {"iterations": 200, "batch_size": 16}, "experiment": {"models": list(models)}},
    )


def test_report_is_self_contained(tmp_path):
    inputs = _synthetic_experiment(tmp_path)
    report = write_report(tmp_path / "report.html", inputs)
    text = report.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network
    assert "<script" not in text
    # Every src is embedded; every href is a relative link to an existing mesh file.
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]+)"', text))
    hrefs = re.findall(r'href="([^"]+)"', text)
    assert len(hrefs) == 3 * 3 + 2  # figure meshes (GT + 2 models per row) + one eval mesh per model
    assert all((tmp_path / h).is_file() for h in hrefs)
    assert "0.1896" in text and "0.1153" in text and "procedural" in text
    png = figure_png(inputs.figure)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,2400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_report_in_a_browser(tmp_path, browser):
    from selenium.webdriver.common.by import By

    report = write_report(tmp_path / "report.html", _synthetic_experiment(tmp_path))
    browser.get(report.as_uri())
    assert "experiment report" in browser.title

    table = browser.find_elements(By.TAG_NAME, "table")[0]
    rows = {
        r.find_elements(By.TAG_NAME, "td")[0].text: [c.text for c in r.find_elements(By.TAG_NAME, "td")[1:]]
        for r in table.find_elements(By.TAG_NAME, "tr")[1:]
    }
    assert rows["mono"][:4] == ["0.3100", "0.4200", "0.5300", "0.4200"]
    assert rows["stereo"][3] == "0.5434"
    assert rows["mono (study, Table 1)"][3] == "0.1896"
    assert rows["stereo (study, Table 1)"][3] == "0.1153"
    assert rows["stereo"][-2:] == ["200", "2 min 42 s"]
    best = table.find_elements(By.CSS_SELECTOR, "td.best")
    assert best and all(cell.text for cell in best)

    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 1 + 3 * 4  # curves + the figure grid
    widths = [browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in images]
    assert all(w and w > 0 for w in widths), widths

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_training_log_reads_validation_per_category_and_draws_it(tmp_path):
    from stereo_occ.report.curves import main as curves_main

    new = tmp_path / "new.csv"
    new.write_text(
        "iteration,seconds,split,loss,iou,threshold,iou_mug,iou_bowl,iou_bottle\n"
        "10,5.0,train,0.6,,,,,\n"
        "50,30.0,val,0.5,0.30,0.40,0.20,0.10,0.60\n"
        "100,60.0,val,0.4,0.35,0.45,0.25,,0.70\n"  # no bowl among the val objects here
    )
    log = read_training_log(new)
    assert log.val_category["mug"].tolist() == [0.20, 0.25]
    assert log.val_category["bottle"].tolist() == [0.60, 0.70]
    assert log.val_category["bowl"][0] == 0.10 and math.isnan(log.val_category["bowl"][1])
    first = read_training_log(new, until=50)  # only the first 50 iterations
    assert first.val_category["mug"].tolist() == [0.20] and len(first.train_loss) == 1
    old = tmp_path / "old.csv"  # a log from before the per-category columns
    _write_log(old, 0.3, 0.5)
    assert np.isnan(read_training_log(old).val_category["mug"]).all()
    out = tmp_path / "curves.png"
    curves_main([f"new={new}", f"old={old}", "--per-category", "--out", str(out)])
    with Image.open(out) as image:
        assert image.size[0] > 3 * image.size[1]  # four panels side by side
