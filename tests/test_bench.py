"""The latency lab: functional checks only (tiny models, few repeats, no timing assertions)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clsviz._paddle import paddle
from clsviz.bench import (BenchReport, count_flops, interleaved, machine_info, overhead_only, run_bench,
                          sweep_configs, synthetic_jpeg)

TINY = "ResNet18_vd_x0_25"


def test_flop_counter_matches_hand_count_on_tiny_conv_net():
    nn = paddle.nn

    class Tiny(nn.Layer):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2D(3, 4, 3, padding=1)                         # 1×3×8×8 → 1×4×8×8
            self.c2 = nn.Conv2D(4, 8, 3, stride=2, padding=1, groups=2)     # → 1×8×4×4
            self.bn = nn.BatchNorm2D(8)                                      # not counted
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = self.bn(self.c2(nn.functional.relu(self.c1(x))))
            return self.fc(paddle.flatten(x, 1))

    # conv: out elements × (C_in/groups) × k × k;  linear: out elements × in_features
    c1 = (4 * 8 * 8) * (3 * 3 * 3)      # 6912
    c2 = (8 * 4 * 4) * (4 // 2 * 3 * 3)  # 2304
    fc = 10 * 128                       # 1280
    f = count_flops(Tiny(), (1, 3, 8, 8))
    assert [r[2] for r in f.layers] == [c1, c2, fc]
    assert f.macs == c1 + c2 + fc and f.flops == 2 * f.macs
    # batch scales linearly
    assert count_flops(Tiny(), (3, 3, 8, 8)).macs == 3 * f.macs
    d = f.to_dict()
    assert d["macs"] == f.macs and d["layers"] == 3


def test_flop_counter_agrees_with_published_resnet18_vd():
    import clsviz

    f = count_flops(clsviz.get_model("ResNet18_vd"), (1, 3, 224, 224))
    assert f.macs == pytest.approx(2.07e9, rel=0.01)  # PaddleClas model zoo: 2.07 G (MACs)


def test_machine_info_reads_the_system():
    m = machine_info()
    assert m["cores"] >= 1 and m["fp32_lanes"] in (4, 8, 16) and m["fma_units"] == 2
    assert m["peak_gflops_fp32"] > 0 and m["peak_gflops_fp32_datapath"] <= m["peak_gflops_fp32"]
    assert m["cpu"] and m["mhz_source"]


def test_interleaved_runs_each_contender_in_every_round():
    calls = []
    fns = {k: (lambda k=k: calls.append(k) or {"total": 0.001, "x": 0.0}) for k in "abc"}
    st = interleaved(fns, repeats=4, warmup=1)
    assert sorted(calls) == sorted(list("abc") * 5)
    assert all(len(set(calls[i:i + 3])) == 3 for i in range(0, 15, 3))  # one of each per round
    assert st["a"]["total"].n == 4 and st["b"]["x"].p50 == 0.0


def test_sweep_configs_cover_the_grid():
    cfgs = dict(sweep_configs(threads=[1, 2], bf16=True))
    assert len(cfgs) == 2 * (2 * 2 + 2)  # threads × (oneDNN × IR) + bf16 only with oneDNN
    assert all(kw["enable_mkldnn"] for kw in cfgs.values() if kw["precision"] == "bf16")
    assert len(dict(sweep_configs(threads=[1], bf16=False))) == 4


def test_synthetic_jpeg(tmp_path):
    from PIL import Image

    p = synthetic_jpeg(tmp_path / "x.jpg", (320, 180))
    with Image.open(p) as im:
        assert im.size == (320, 180) and im.format == "JPEG"


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    images = [synthetic_jpeg(out / f"i{i}.jpg", (96, 80), seed=i) for i in range(3)]
    sweep = [("default", {"cpu_threads": None, "enable_mkldnn": True, "ir_optim": True, "precision": "fp32"}),
             ("t1 oneDNN off", {"cpu_threads": 1, "enable_mkldnn": False, "ir_optim": True, "precision": "fp32"})]
    sweep[0][1]["cpu_threads"] = machine_info()["cores"]
    if paddle.base.core.supports_bfloat16():
        sweep.append(("bf16", dict(sweep[0][1], precision="bf16")))
    rep = run_bench(TINY, repeats=2, warmup=1, image_size=32, batch_sizes=(1, 2), repeats_batch=2,
                    sweep=sweep, images=images, out=out / "out", workdir=out / "work")
    return rep, out / "out"


def test_bench_writes_json_markdown_and_plot(tiny_report):
    rep, out = tiny_report
    d = json.loads((out / "bench.json").read_text())
    for key in ("machine", "versions", "method", "ratios", "overhead_ratio", "cold_start", "modes", "sweep",
                "default_config", "agreement", "overhead", "preprocessing", "flops", "gflops"):
        assert key in d, key
    assert set(d["overhead_ratio"]) == {"predictor", "dygraph", "executor"}
    assert set(d["ratios"]["overhead_bound"]) == {"predictor", "dygraph", "executor"}
    for mode in ("predictor", "dygraph", "executor"):
        row = d["modes"][mode]["1"]
        assert set(row["stages_ms"]) == {"preprocess", "forward", "postprocess"}
        assert set(row["stages_ms"]["forward"]) >= {"p50", "p90", "mean"}
        assert row["images_per_s"] > 0 and "2" in d["modes"][mode]
        cold = d["cold_start"][mode]
        assert "error" not in cold, cold
        assert cold["build_s"] > 0 and cold["peak_rss_mb"] > 0
    assert d["default_config"] == "default" and d["sweep"]["default"]["default"]
    assert d["ratios"]["default_vs_best_fp32"] >= 1.0
    import clsviz

    assert d["flops"]["macs"] == count_flops(clsviz.get_model(TINY), (1, 3, 32, 32)).macs
    assert d["preprocessing"]["ratio"] > 0 and "draft" in d["preprocessing"]
    for pair in d["overhead"].values():
        assert pair["max_abs_diff"] <= 1e-5  # the raw loop computes the same thing
    md = (out / "bench.md").read_text()
    assert "overhead" in md and "GFLOP/s" in md
    assert (out / "bench.png").stat().st_size > 1000
    assert isinstance(rep, BenchReport) and "<table>" in rep._repr_html_()
    again = BenchReport.from_dict(d)  # bench.json round-trips
    assert again.to_markdown() == rep.to_markdown() and again.ratios == d["ratios"]
    from clsviz.bench import LatencyRow, OverheadRow

    row, ovh = rep.modes["predictor"]["1"], rep.overhead["predictor"]  # typed rows, not dicts
    assert isinstance(row, LatencyRow) and row.batch == 1 and row.stages["forward"].p50 > 0
    assert isinstance(ovh, OverheadRow) and ovh.bound_ratio is not None and ovh.raw_ms.n >= 30
    assert again.modes == rep.modes and again.overhead == rep.overhead and again.sweep == rep.sweep
    assert rep.sweep["default"].default and rep.sweep["default"].ms.n == 2
    assert again.cold == rep.cold and rep.cold["dygraph"].build_s == d["cold_start"]["dygraph"]["build_s"]
    from clsviz.bench import AgreementRow, PreprocessingCheck

    assert isinstance(rep.preprocessing, PreprocessingCheck) and rep.preprocessing.ms["forward"].n == 2
    assert again.preprocessing == rep.preprocessing and again.agreement == rep.agreement
    assert all(isinstance(a, AgreementRow) for a in rep.agreement.values())
    for key in ("agreement", "preprocessing"):  # bench.json's sections as before, and they round-trip
        assert again.to_dict()[key] == d[key] == json.loads(json.dumps(rep.to_dict()[key]))
    assert set(d["preprocessing"]) == {"image", "ms", "ratio", "draft"}
    from clsviz.bench import Machine, Method
    from clsviz.bench.machine import machine_info

    assert isinstance(rep.machine, Machine) and isinstance(rep.method, Method)
    assert d["machine"] == json.loads(json.dumps(machine_info()))  # the same section as before
    assert list(d["method"])[:3] == ["warmup", "repeats", "repeats_batch"] and d["method"]["repeats"] == 2
    assert rep.method.other_processes_cores_busy is not None and rep.method.loadavg_before is not None
    for key in ("machine", "method"):
        assert again.to_dict()[key] == d[key] and again.__getattribute__(key) == rep.__getattribute__(key)


def test_bf16_agreement_is_reported(tiny_report):
    rep, _ = tiny_report
    if not rep.bf16_supported:
        pytest.skip("no bf16 on this CPU")
    a = rep.agreement["bf16"]  # a typed row
    assert a.n == 3 and 0.0 <= a.top1_agree <= 1.0 and a.min_cosine > 0.99


def test_overhead_path_runs_for_every_mode(tmp_path):
    res = overhead_only(TINY, repeats=1, image_size=32, workdir=tmp_path)
    assert set(res["overhead_ratio"]) == {"predictor", "dygraph", "executor"}
    assert res["repeats"] >= 30  # never fewer than 30 medians' worth
    assert set(res["overhead_bound"]) == {"predictor", "dygraph", "executor"}
    for v in res["overhead"].values():
        assert np.isfinite(v["ratio"]) and v["clsviz_ms"]["n"] >= 30 and v["max_abs_diff"] <= 1e-5


def test_cli_bench_overhead_json(tiny_report):
    from conftest import run_cli

    bundle = tiny_report[1].parent / "work" / f"{TINY}_32"  # --model also takes a bundle folder
    p = run_cli("bench", "--overhead", "--json", "--model", bundle, "--repeats", "1", timeout=600)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert set(d["overhead_ratio"]) == {"predictor", "dygraph", "executor"}


def test_unknown_model_is_a_clear_error(tmp_path):
    from clsviz.errors import ClsvizError

    with pytest.raises(ClsvizError):
        run_bench("NoSuchNet", repeats=1, cold=False, sweep=False, workdir=tmp_path)
