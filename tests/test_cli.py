"""The command line: the main job on the phantom and on real layouts, training, export, errors."""

import json
import math
import os
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

from slicreg_lite import evaluation
from slicreg_lite.apps.cli import main
from slicreg_lite.cohort.layouts import export_cohort
from slicreg_lite.cohort.nifti import save_nifti
from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.pipeline import stages, weights

SMOKE = get_config("smoke")
QUIET = RunSettings(jobs=1, progress=False)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One cache for the module, and the main job run once on the embedded phantom."""
    root = tmp_path_factory.mktemp("cli")
    previous = os.environ.get("SLICREG_CACHE")
    os.environ["SLICREG_CACHE"] = str(root / "cache")
    try:
        printed = StringIO()
        with redirect_stdout(printed):
            code = main(["run", "--preset", "smoke", "--out", str(root / "out"), "--quiet",
                         "--jobs", "1"])
        assert code == 0
        yield {"root": root, "printed": printed.getvalue(), "cache": root / "cache"}
    finally:
        if previous is None:
            os.environ.pop("SLICREG_CACHE")
        else:
            os.environ["SLICREG_CACHE"] = previous


def table_rows(printed: str) -> dict:
    """method -> cells of the printed results table."""
    return {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in printed.splitlines() if line.startswith("| ") and "+-" in line}


def run_main(args) -> tuple[int, str]:
    printed = StringIO()
    with redirect_stdout(printed):
        code = main(args)
    return code, printed.getvalue()


def test_cli_run_prints_the_whole_table_and_writes_the_results(shared):
    printed = shared["printed"]
    header = next(line for line in printed.splitlines() if line.startswith("| method |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == ["spleen", "r.kidney", "l.kidney", "liver", "avg(4)", "avg(13)",
                       "HD95 mm", *evaluation.TRUTH_COLUMNS, *evaluation.EXTRA_COLUMNS[1:]]
    rows = table_rows(printed)
    assert list(rows) == [m.label for m in evaluation.METHODS]
    for method, cells in rows.items():
        for cell in cells[:6]:  # Dice: "mean+-std", both finite
            mean, std = (float(x) for x in cell.split("+-"))
            assert math.isfinite(mean) and math.isfinite(std) and 0 <= mean <= 100
        registered = method != "initial, not registered"
        # HD95 in mm: every scored row has one, at most the volume's diagonal (a missed organ)
        diagonal = np.linalg.norm((np.array(SMOKE.grid.shape) - 1) * SMOKE.grid.spacing_mm)
        assert 0 <= float(cells[6]) <= diagonal + 0.05  # the cell is rounded to 0.1 mm
        # the phantom's ground truth: TRE, its 95th percentile, EPE for every row
        tre, tre95, epe = (float(c) for c in cells[7:10])
        assert 0 < tre <= tre95 and 0 < epe
        cells = cells[:7] + cells[10:]
        for cell in cells[7:9]:  # deformation: every registration has one
            assert (cell != "-") == registered
            if registered:
                assert math.isfinite(float(cell))
        assert (cells[10] != "-") == registered  # the alignment time
        assert (cells[9] != "-") == (registered and "teacher" not in method)  # inference
    assert "Slic-Reg (paper) reaches" in printed and "faster than the teacher" in printed
    assert "This toolkit's centre fit (an extension, not in the paper)" in printed
    # the decomposition rows: where accuracy goes between the teacher and Slic-Reg
    assert "to the keypoint + spline representation" in printed
    # the paper's comparator, and which row learnt from labels
    assert "Slic-Reg (paper) vs PDD-Net, two warps, the paper's comparator" in printed
    assert "PDD-Net's second warp" in printed and "What the training scans' labels buy" in printed
    assert f"organ labels: {evaluation.PDD_LABELS}." in printed

    out = shared["root"] / "out" / "smoke"
    for name in ("table.md", "results.json", "dice_boxplots.png", "overlays.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == evaluation.RESULTS_SCHEMA and results["data"] == "phantom"
    assert results["preset"] == "smoke" and results["template_id"] == SMOKE.split.template_id
    assert results["subject_ids"] == list(SMOKE.split.evaluation_ids)
    assert results["columns"] == columns[:6] and results["labels"]["6"] == "liver"
    assert results["typical_subject"] in SMOKE.split.evaluation_ids
    assert math.isfinite(results["total_seconds"])
    assert list(results["methods"]) == [m.label for m in evaluation.METHODS]
    for method, entry in results["methods"].items():
        assert set(entry) == {"dice", "dice_per_subject", "hd95_mm", "hd95_per_subject",
                              "unscored_subjects", "unreliable_subjects", "std_log_jacobian",
                              "percent_folding", "max_percent_folding", "inference_seconds",
                              "alignment_seconds", "tre_mm", "tre95_mm", "epe_mm",
                              "tre_per_subject", "epe_per_subject", "per_registration"}
        assert all(len(entry["tre_per_subject"][str(i)]) == len(results["landmarks"][str(i)])
                   > 5 for i in SMOKE.split.evaluation_ids)
        assert entry["tre_mm"] > 0 and entry["epe_mm"] > 0
        assert entry["hd95_mm"] > 0 and all(len(row) == 13 for row in
                                            entry["hd95_per_subject"].values())
        assert set(entry["dice"]) == set(columns[:6]) and entry["unscored_subjects"] == []
        assert all(len(v) == 2 and all(math.isfinite(x) for x in v)
                   for v in entry["dice"].values())
        assert sorted(map(int, entry["dice_per_subject"])) == sorted(SMOKE.split.evaluation_ids)
        assert all(len(row) == 13 for row in entry["dice_per_subject"].values())
        if method != "initial, not registered":
            assert math.isfinite(entry["percent_folding"])
            assert math.isfinite(entry["alignment_seconds"])
    # the teacher brings the phantom's landmarks closer to their true partners
    tre = {m.label: results["methods"][m.label]["tre_mm"] for m in evaluation.METHODS}
    assert tre[evaluation.TEACHER] < tre[evaluation.INITIAL]
    assert "true correspondence" in printed
    fields = sorted(p.name for p in (out / "fields").iterdir())
    assert fields == [f"subject{i:04d}.nii.gz" for i in SMOKE.split.evaluation_ids]
    # results.json reads back to the same table and findings (what the README quotes)
    stored = evaluation.from_json(results)
    assert stored.to_markdown() in (out / "table.md").read_text()
    assert all(f"- {line}" in printed for line in evaluation.findings(stored))
    with pytest.raises(ValueError, match="schema"):
        evaluation.from_json({**results, "schema": "other/1"})


def results_without_times(printed: str) -> dict:
    """The table's Dice, HD95 and deformation cells (times differ from run to run; only
    the phantom has a ground truth to compare with)."""
    header = next(line for line in printed.splitlines() if line.startswith("| method |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    keep = [i for i, c in enumerate(columns)
            if c not in (*evaluation.TRUTH_COLUMNS, "inference s", "alignment s")]
    return {method: [cells[i] for i in keep] for method, cells in table_rows(printed).items()}


def write_learn2reg_description(folder: Path, split) -> None:
    """A dataset.json as Learn2Reg writes one: labels per modality, validation pairs."""
    from slicreg_lite.core.labels import LABEL_NAMES

    def image(i):
        return f"./imagesTr/AbdomenCTCT_{i:04d}_0000.nii.gz"

    description = {
        "name": "AbdomenCTCT", "tensorImageSize": {"0": "3D"},
        "labels": {"0": {"0": "background",
                         **{str(n): name for n, name in enumerate(LABEL_NAMES, start=1)}}},
        "numTraining": len(split.train_ids) + len(split.test_ids),
        "training": [{"image": image(i), "label": image(i).replace("images", "labels")}
                     for i in sorted((*split.train_ids, *split.test_ids))],
        "test": [],
        "registration_val": [{"fixed": image(split.template_id), "moving": image(i)}
                             for i in split.evaluation_ids],
    }
    (folder / "dataset.json").write_text(json.dumps(description, indent=1))


@pytest.mark.parametrize("layout", ["bcv", "learn2reg"])
def test_a_run_from_an_exported_folder_gives_the_embedded_table(shared, layout):
    folder = shared["root"] / f"exported-{layout}"
    # the paper's cohort; the phantom's validation subjects are not exported
    subjects = stages.cohort(SMOKE, "phantom", (*SMOKE.split.train_ids, *SMOKE.split.test_ids),
                             run=QUIET)
    export_cohort(subjects, folder, layout=layout, split=SMOKE.split)
    if layout == "learn2reg":
        write_learn2reg_description(folder, SMOKE.split)  # our own, not the exporter's
    before = {p.name for p in (shared["cache"] / "smoke").iterdir()}
    # phantom scans in a real layout: the teacher keeps the phantom's settings
    code, printed = run_main(["run", "--preset", "smoke", "--data", f"{layout}:{folder}",
                              "--scans", "phantom", "--out", str(shared["root"] / f"out-{layout}"),
                              "--quiet", "--jobs", "1"])
    assert code == 0
    assert f"data '{layout}:{folder.resolve()}'" in printed
    assert results_without_times(printed) == results_without_times(shared["printed"])
    # everything was computed from the files, into a cache folder of their own
    [added] = {p.name for p in (shared["cache"] / "smoke").iterdir()} - before
    assert added.startswith(f"{layout}-exported-{layout}-")


def test_jobs_change_no_cache_folder(shared):
    folders = sorted(str(p) for p in shared["cache"].glob("smoke/phantom/*"))
    code, printed = run_main(["run", "--preset", "smoke", "--out",
                              str(shared["root"] / "out-jobs"), "--quiet", "--jobs", "2"])
    assert code == 0
    assert sorted(str(p) for p in shared["cache"].glob("smoke/phantom/*")) == folders
    assert results_without_times(printed) == results_without_times(shared["printed"])


def test_a_folder_without_labels_is_registered_but_not_scored(shared, capsys):
    folder = shared["root"] / "unlabelled"
    subjects = stages.cohort(SMOKE, "phantom", run=QUIET)
    export_cohort(subjects, folder, layout="folder", split=SMOKE.split)
    for path in (folder / "labels").iterdir():
        path.unlink()
    (folder / "labels").rmdir()
    code, printed = run_main(["run", "--preset", "smoke", "--data", f"folder:{folder}",
                              "--out", str(shared["root"] / "out-unlabelled"), "--quiet",
                              "--jobs", "1"])
    assert code == 0
    assert "no labels to score them" in printed
    rows = {line.split("|")[1].strip(): line for line in printed.splitlines()
            if line.startswith("| ") and "no labels" in line}
    assert list(rows) == [m.label for m in evaluation.METHODS if not m.trained_with_labels]
    assert f"{evaluation.SLIC_REG}: not scored, no labels" in printed
    assert (f"{evaluation.PDD_LABELS}: not computed, its network learns from labels the "
            "training scans lack") in printed
    out = shared["root"] / "out-unlabelled" / "smoke"
    results = json.loads((out / "results.json").read_text())
    entry = results["methods"][evaluation.SLIC_REG]
    assert entry["dice"] is None and len(entry["unscored_subjects"]) == 3
    assert math.isfinite(entry["percent_folding"]) and entry["alignment_seconds"] > 0
    assert len(list((out / "fields").glob("*.nii.gz"))) == 3
    assert not (out / "overlays.png").exists()


def test_cli_rejects_unknown_preset(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--preset", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("data, message", [
    ("dicom:/tmp", "expected one of phantom, bcv:PATH, learn2reg:PATH, folder:PATH; "
                   "got 'dicom:/tmp'"),
    ("bcv:/nowhere/at/all", "root: expected the BCV dataset folder"),
    ("folder:", "expected one of phantom"),
])
def test_cli_rejects_a_bad_data_source_before_any_work(data, message, capsys):
    assert main(["run", "--preset", "smoke", "--data", data, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_template_that_is_not_in_the_data(capsys):
    assert main(["run", "--preset", "smoke", "--template", "99", "--quiet"]) == 2
    assert "template (data 'phantom'): '99' is not one of the scans" in capsys.readouterr().err


def test_cli_unwritable_output(shared, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--preset", "smoke", "--out", str(blocker), "--quiet"]) == 2
    assert "cannot write the results" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["bcv", "learn2reg", "folder"])
def test_cli_export_writes_a_layout_that_reads_back(shared, tmp_path, layout):
    code, printed = run_main(["export", str(tmp_path / layout), "--preset", "smoke",
                              "--layout", layout, "--quiet"])
    assert code == 0 and f"--data {layout}:" in printed
    data = open_source(f"{layout}:{tmp_path / layout}", SMOKE)
    paper_split = sorted((*SMOKE.split.train_ids, *SMOKE.split.test_ids))
    assert [str(i) for i in data.split.all_ids] == [str(i) for i in paper_split] \
        or layout == "folder"
    assert str(data.split.template_id) == str(SMOKE.split.template_id) and data.is_btcv
    scan = data.load(data.split.template_id)
    np.testing.assert_array_equal(scan.image, stages.cohort(SMOKE, "phantom", (38,),
                                                            run=QUIET)[38].image)


def test_cli_train_writes_weights(shared, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setattr(weights, "weights_dir", lambda: folder)
    code, printed = run_main(["train", "--preset", "smoke", "--backbone", "unet", "--quiet",
                              "--jobs", "1"])
    assert code == 0 and "wrote" in printed
    assert (folder / "smoke" / "unet_slic.pt").exists()
    assert "unet_slic" in (folder / "manifest.json").read_text()
    code, printed = run_main(["train", "--preset", "smoke", "--backbone", "pdd", "--head",
                              "unsupervised", "--quiet", "--jobs", "1"])
    assert code == 0 and "pairs of scans" in printed
    assert "pdd_unsupervised" in (folder / "manifest.json").read_text()
    data = open_source("phantom", SMOKE)
    assert weights.shipped_weights(SMOKE, data, "pdd", "unsupervised") == \
        folder / "smoke" / "pdd_unsupervised.pt"
    # a head of another network is refused by name
    code, _ = run_main(["train", "--preset", "smoke", "--backbone", "pdd", "--head", "slic",
                        "--quiet"])
    assert code == 2


def test_cli_train_publishes_weights_for_another_source(shared, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setattr(weights, "weights_dir", lambda: folder)
    data_folder = shared["root"] / "exported-bcv"
    if not data_folder.exists():
        export_cohort(stages.cohort(SMOKE, "phantom", run=QUIET), data_folder)
    code, _ = run_main(["train", "--preset", "smoke", "--data", f"bcv:{data_folder}",
                        "--quiet", "--jobs", "1"])
    assert code == 0
    data = open_source(f"bcv:{data_folder}", SMOKE)
    [published] = folder.glob("smoke/bcv-*/deeplab_slic.pt")
    # trained with the teacher's settings for real scans (the default for --data bcv:)
    real = get_config("smoke", real_ct=True)
    assert weights.shipped_weights(real, data, "deeplab", "slic") == published
    assert weights.shipped_weights(SMOKE, data, "deeplab", "slic") is None
    entry = json.loads((folder / "manifest.json").read_text())
    assert entry[str(published.relative_to(folder))]["command"].endswith(
        f"--data {data.spec} --backbone deeplab --head slic")
    # the phantom does not get them
    assert weights.shipped_weights(SMOKE, open_source("phantom", SMOKE), "deeplab",
                                   "slic") is None


def test_cli_bad_scans_are_named(shared, tmp_path, capsys):
    folder = tmp_path / "bad"
    affine = np.diag([12.0, 12.0, 12.0, 1.0])
    for name in ("a", "b", "c"):
        save_nifti(folder / "images" / f"{name}.nii.gz", np.zeros((8, 8, 8, 2)), affine)
    assert main(["run", "--preset", "smoke", "--data", f"folder:{folder}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a.nii.gz' must hold a 3D volume; got shape (8, 8, 8, 2) (4D)" in err


@pytest.mark.parametrize("arguments, real", [
    (["run"], False), (["run", "--scans", "ct"], True), (["run", "--data", "bcv:DIR"], True),
    (["run", "--data", "bcv:DIR", "--scans", "phantom"], False),
])
def test_the_teacher_takes_real_ct_settings_for_real_data(arguments, real):
    from slicreg_lite.apps.cli import _real_ct, build_parser
    from slicreg_lite.core.config import REAL_CT_TEACHER, is_real_ct

    args = build_parser().parse_args([*arguments, "--preset", "smoke"])
    assert _real_ct(args, is_real_ct(args.data)) is real
    cfg = get_config("smoke", real_ct=real)
    assert (cfg.teacher.regularisation == REAL_CT_TEACHER["smoke"]["regularisation"]) is real
