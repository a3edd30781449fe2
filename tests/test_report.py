"""fbcnn.evaluation.report: the tables and lines of docs/results.md, on small hand-made results.

Every expected line and number is written out by hand (not computed with the code under
test), so a wrong column, a mean over the wrong images or a flipped verdict fails."""

from __future__ import annotations

import json
import math

import pytest

from fbcnn.evaluation import report


def m(psnr: float, ssim: float, psnrb: float) -> dict:
    return {"psnr": psnr, "ssim": ssim, "psnrb": psnrb}


def image(name: str, jpeg: float, restored: float, predicted_qf: float,
          ssim: float = 0.5, psnrb: float = 20.0) -> dict:
    return {"name": name, "jpeg": m(jpeg, 0.5, 20.0), "restored": m(restored, ssim, psnrb),
            "predicted_qf": predicted_qf}


def row(qf: int, qf2: int | None, jpeg: dict, restored: dict, predicted_qf: float,
        per_image: list[dict] | None = None, used_qf: float | None = None) -> dict:
    return {"qf": qf, "qf2": qf2, "jpeg": jpeg, "restored": restored,
            "predicted_qf": predicted_qf, "used_qf": used_qf if used_qf is not None
            else predicted_qf, "per_image": per_image or []}


def result(rows: list[dict], gray: bool = False, images: int = 2, model: str = "net",
           seconds: float = 12.4) -> dict:
    return {"model": model, "gray": gray, "images": images, "seconds": seconds, "rows": rows}


HEAD = "| --- | --- | --- | --- | --- | --- | --- |"


# ------------------------------------------------------------------------ single / double


def test_single_table_grey_beside_the_paper() -> None:
    rows = [row(10, None, m(27.0, 0.65, 26.0), m(28.5, 0.75, 28.0), 10.5),
            row(10, 30, m(1, 1, 1), m(2, 2, 2), 3.0),  # double: not in this table
            row(50, None, m(35.0, 0.9, 34.0), m(34.9, 0.91, 34.5), 48.25)]
    assert report.single_table(result(rows, gray=True, model="g")) == [
        "| QF | JPEG (ours) | JPEG (paper) | g (ours) | FBCNN (paper) | gain (dB) "
        "| predicted QF |",
        HEAD,
        "| 10 | 27.00\\|0.650\\|26.00 | 27.80\\|0.768\\|25.10 | 28.50\\|0.750\\|28.00 "
        "| 29.67\\|0.821\\|29.22 | +1.50 | 10.5 |",
        "| 50 | 35.00\\|0.900\\|34.00 | - | 34.90\\|0.910\\|34.50 | - | -0.10 | 48.2 |",
    ]


def test_single_table_colour_paper_has_no_psnrb_and_no_fbcnn() -> None:
    rows = [row(10, None, m(26.0, 0.7, 25.0), m(27.0, 0.8, 26.5), 9.0)]
    lines = report.single_table(result(rows, gray=False))
    assert lines[2] == ("| 10 | 26.00\\|0.700\\|25.00 | 25.84\\|0.741\\|- | 27.00\\|0.800\\|26.50 "
                        "| - | +1.00 | 9.0 |")
    assert report.single_table(result(rows), paper=False) == [
        "| QF | JPEG (ours) | net (ours) | gain (dB) | predicted QF |",
        "| --- | --- | --- | --- | --- |",
        "| 10 | 26.00\\|0.700\\|25.00 | 27.00\\|0.800\\|26.50 | +1.00 | 9.0 |",
    ]


def test_double_table_paper_live1_for_grey_only() -> None:
    rows = [row(10, None, m(1, 1, 1), m(2, 2, 2), 3.0),  # single: not in this table
            row(10, 30, m(27.0, 0.7, 26.0), m(27.5, 0.72, 27.25), 31.0),
            row(50, 10, m(26.0, 0.6, 25.0), m(27.0, 0.7, 26.0), 12.0)]
    grey = report.double_table(result(rows, gray=True))
    assert grey == [
        "| QF1:QF2 | JPEG (ours) | net (ours) | gain (dB) | predicted QF | JPEG, LIVE1 (paper) "
        "| FBCNN / -D / -A PSNR, LIVE1 (paper) |",
        HEAD,
        "| 10:30 | 27.00\\|0.700\\|26.00 | 27.50\\|0.720\\|27.25 | +0.50 | 31.0 "
        "| 27.55\\|0.760 | 28.29 / 28.94 / 29.38 |",
        "| 50:10 | 26.00\\|0.600\\|25.00 | 27.00\\|0.700\\|26.00 | +1.00 | 12.0 | - | - |",
    ]
    colour = report.double_table(result(rows, gray=False))
    assert colour[2].endswith("| +0.50 | 31.0 | - | - |")


# ------------------------------------------------------------------------------- dominant


def test_dominant_table_compares_on_the_dominant_runs_images() -> None:
    """The correction-none numbers are the means over the dominant run's images only
    (a and b, not c), and rows without none data are '-' and counted."""
    none = result([row(10, None, m(25, 0.6, 24), m(32.0, 0.9, 31.0), 14.0, per_image=[
        image("a", 25, 30.0, 10.0, ssim=0.8, psnrb=29.0),
        image("b", 25, 31.0, 12.0, ssim=0.9, psnrb=30.0),
        image("c", 25, 35.0, 20.0, ssim=1.0, psnrb=34.0)])])
    dominant = result([
        row(10, None, m(25.0, 0.6, 24.0), m(31.0, 0.8, 30.0), 14.0, used_qf=11.0,
            per_image=[image("a", 25, 31, 0), image("b", 25, 31, 0)]),
        row(10, 30, m(24.0, 0.5, 23.0), m(25.0, 0.6, 24.0), 30.0, used_qf=10.0,
            per_image=[image("a", 24, 25, 0)]),  # no none row for 10:30
    ])
    lines, missing = report.dominant_table(dominant, [none])
    assert missing == 1
    assert lines == [
        "| QF / QF1:QF2 | JPEG | predicted QF fed | dominant QF fed | dominant - predicted (dB) "
        "| mean predicted QF | mean dominant QF |",
        HEAD,
        "| 10 | 25.00\\|0.600\\|24.00 | 30.50\\|0.850\\|29.50 | 31.00\\|0.800\\|30.00 | +0.50 "
        "| 11.0 | 11.0 |",
        "| 10:30 | 24.00\\|0.500\\|23.00 | - | 25.00\\|0.600\\|24.00 | - | - | 10.0 |",
    ]


def test_dominant_row_without_all_its_images_in_the_none_run_is_missing() -> None:
    none = result([row(10, None, m(1, 1, 1), m(1, 1, 1), 1.0,
                       per_image=[image("a", 25, 30, 10)])])
    dominant = result([row(10, None, m(25, 0.6, 24), m(31, 0.8, 30), 1.0, used_qf=11.0,
                           per_image=[image("a", 25, 31, 0), image("z", 25, 31, 0)])])
    lines, missing = report.dominant_table(dominant, [none])
    assert missing == 1 and lines[2].split(" | ")[2] == "-"
    assert report.subset_row(none["rows"][0], []) is None


# ------------------------------------------------------------------------------- QF sweep


def sweep_result() -> dict:
    """QF 5 and 95 are outside the MAE's 10..90; the double row is ignored."""
    return result([
        row(5, None, m(21.0, 0.5, 20.0), m(21.25, 0.5, 20.0), 8.0,
            per_image=[image("a", 20, 19.5, 9), image("b", 22, 23, 7)]),
        row(10, None, m(25.0, 0.5, 20.0), m(26.5, 0.5, 20.0), 11.0,
            per_image=[image("a", 25, 26, 12), image("b", 25, 27, 10)]),
        row(50, None, m(35.5, 0.5, 20.0), m(35.5, 0.5, 20.0), 51.0,
            per_image=[image("a", 35, 35.1, 47), image("b", 36, 35.9, 55)]),
        row(95, None, m(45.5, 0.5, 20.0), m(45.25, 0.5, 20.0), 87.0,
            per_image=[image("a", 45, 44, 80), image("b", 46, 46.5, 94)]),
        row(10, 30, m(1, 1, 1), m(0, 0, 0), 99.0,
            per_image=[image("a", 1, 0, 99), image("b", 1, 0, 99)]),
    ])


def test_sweep_summary_figures() -> None:
    sweep = report.sweep_summary(sweep_result())
    per_qf = {r["qf"]: r for r in sweep["per_qf"]}
    assert list(per_qf) == [5, 10, 50, 95]
    # |predicted - QF| per image at QF 10 and 50: 2, 0, 3, 5 -> 2.5 (with QF 5 and 95: 4.25)
    assert sweep["mae_qf10_90"] == pytest.approx(2.5)
    assert sweep["mae_met"] is True and sweep["mae_target"] == 3.0
    assert [per_qf[q]["predicted_qf_mae"] for q in (5, 10, 50, 95)] == pytest.approx(
        [3.0, 1.0, 4.0, 8.0])
    assert [per_qf[q]["images_worse"] for q in (5, 10, 50, 95)] == [1, 0, 1, 1]
    assert [per_qf[q]["worst_image_gain_db"] for q in (5, 10, 50, 95)] == pytest.approx(
        [-0.5, 1.0, -0.1, -1.0])
    assert per_qf[95]["gain_db"] == pytest.approx(-0.25)
    assert sweep["min_gain_db"] == pytest.approx(-0.25) and sweep["min_gain_qf"] == 95
    assert sweep["worst_image_gain_db"] == pytest.approx(-1.0)
    assert sweep["never_worse"] is False and sweep["no_image_worse_than_limit"] is False


@pytest.mark.parametrize("errors, met", [((3, 3), True), ((3, 3.5), False), ((0, 0), True)])
def test_mae_target_is_at_most_three(errors: tuple[float, float], met: bool) -> None:
    sweep = report.sweep_summary(result([row(40, None, m(30, 0.5, 20), m(31, 0.5, 20), 40.0,
                                             per_image=[image("a", 30, 31, 40 + errors[0]),
                                                        image("b", 30, 31, 40 - errors[1])])]))
    assert sweep["mae_met"] is met
    assert report.sweep_verdict(sweep).startswith(
        f"Predicted-QF MAE over QF 10..90: {sum(errors) / 2:.1f} (target <= 3: "
        f"{'met' if met else 'not met'}). ")


@pytest.mark.parametrize("worst, never_worse, met", [
    (-0.15, True, True), (-0.25, True, False), (0.1, True, True)])
def test_worst_image_verdict(worst: float, never_worse: bool, met: bool) -> None:
    sweep = report.sweep_summary(result([row(40, None, m(30.0, 0.5, 20), m(31.0, 0.5, 20), 40,
                                             per_image=[image("a", 30, 30 + worst, 40),
                                                        image("b", 30, 32, 40)])]))
    assert sweep["worst_image_gain_db"] == pytest.approx(worst)
    assert sweep["never_worse"] is never_worse
    assert sweep["no_image_worse_than_limit"] is met
    assert report.sweep_verdict(sweep).endswith(
        f"Worst single image: {worst:+.2f} dB (target: no image below -0.2 dB: "
        f"{'met' if met else 'not met'}).")


def test_sweep_verdict_and_table_lines() -> None:
    sweep = report.sweep_summary(sweep_result())
    assert report.sweep_verdict(sweep) == (
        "Predicted-QF MAE over QF 10..90: 2.5 (target <= 3: met). Lowest mean gain over "
        "QF 5..95: -0.25 dB at QF 95 (never worse than the JPEG on average: no). Worst single "
        "image: -1.00 dB (target: no image below -0.2 dB: not met).")
    lines = report.sweep_table(sweep)
    assert lines[0] == ("| QF | JPEG PSNR | restored PSNR | gain (dB) | images worse "
                        "| worst image (dB) | mean predicted QF | predicted-QF MAE |")
    assert lines[2] == "| 5 | 21.00 | 21.25 | +0.25 | 1/2 | -0.50 | 8.0 | 3.0 |"
    assert lines[5] == "| 95 | 45.50 | 45.25 | -0.25 | 1/2 | -1.00 | 87.0 | 8.0 |"
    assert len(lines) == 6


def test_empty_sweep_meets_nothing() -> None:
    sweep = report.sweep_summary(result([]))
    assert math.isnan(sweep["mae_qf10_90"]) and sweep["mae_met"] is False
    assert sweep["never_worse"] is False and sweep["no_image_worse_than_limit"] is False


# ------------------------------------------------------------------------ model / document


def test_model_header_provenance_line() -> None:
    first = {"gray": False, "model_parameters": 2_340_000,
             "model_config": {"widths": [16, 32, 64, 128], "blocks": 2},
             "model_metadata": {"name": "color", "train_seconds": "480", "iterations": "20"}}
    assert report.model_header("color", first) == [
        "## color", "",
        "colour (RGB, 4:2:0 JPEG); 2.34 M parameters, widths 16/32/64/128, 2 residual "
        "block(s) a stage; iterations 20, train_seconds 480.", ""]
    stages = json.dumps([{"name": "color", "config": {"data": {}}}] * 3)
    meta = {"fbcnn.provenance": stages, "iterations": "20"}
    assert report.model_header("color", {**first, "model_metadata": meta})[2].endswith(
        "; 3 training stages (each in the model card), iterations 20.")
    assert report.model_header("g", {"gray": True})[2] == (
        "grey (BT.601 Y of the colour images); widths , ? residual block(s) a stage.")


def test_model_section_order_and_stored_sweep() -> None:
    single = result([row(10, None, m(27, 0.6, 26), m(28, 0.7, 27), 10.0)], images=1)
    sweep = {**sweep_result(), "qf_sweep": {**report.sweep_summary(sweep_result()),
                                            "mae_qf10_90": 7.0}}
    lines = report.model_section("net", {"qfsweep": sweep, "none": single})
    text = "\n".join(lines)
    assert lines[0] == "## net"
    assert text.index("Single JPEG on BSDS500, 1 image, correction none (12 s)") < text.index(
        "QF sweep on BSDS500, single JPEG, 2 images")
    assert "Double JPEG" not in text and "BSD68" not in text and "dominant QF" not in text
    assert "Predicted-QF MAE over QF 10..90: 7.0" in text  # the stored summary is used


def test_document_header_and_commands() -> None:
    run = report.Run(command="python scripts/make_results.py --limit 2", date="2026-01-02",
                     platform="Linux", torch="2.13.0", threads=2, data="d", bsd68="b",
                     limit=2, double_limit=50, qf_sweep_limit=30, limited=True)
    text = report.document(run, ["## x", ""], ["fbcnn evaluate --data d"])
    lines = text.splitlines()
    assert lines[0] == "# Results on BSDS500"
    assert lines[2].startswith("Generated by `python scripts/make_results.py --limit 2` on "
                               "2026-01-02 (Linux, torch 2.13.0, 2 torch threads)")
    assert ("**Limited image counts (see each table): a smoke test, not comparable with the "
            "paper.**") in lines
    assert "Single JPEG with the predicted QF on 2 images;" in text
    assert text.endswith("## x\n\n## Commands\n\nEach JSON file in `results/` comes from one "
                         "evaluation; the equivalent command lines:\n\n```\n"
                         "fbcnn evaluate --data d\n```\n")
    full = report.document_header(report.Run(**{**run.__dict__, "limit": None,
                                                "limited": False}))
    assert not any("Limited" in line for line in full)
    assert "Single JPEG with the predicted QF on all images;" in "\n".join(full)


@pytest.mark.parametrize("n, caption", [(1, "1 image"), (2, "2 images"), (0, "0 images")])
def test_images_caption(n: int, caption: str) -> None:
    assert report.images_caption({"images": n}) == caption
