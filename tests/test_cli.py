"""The CLI with PaddleClas's classic flag spellings, end to end in subprocesses."""
from __future__ import annotations

import json

import pytest

from clsviz.cli import build_parser, normalize_argv, str2bool
from conftest import run_cli


def test_classic_flag_spellings_parse():
    ap = build_parser()
    a = ap.parse_args(normalize_argv(["predict", "-i=./test.jpeg", "-m", "m.json", "-p", "p.pdiparams",
                                      "--use_gpu=1", "--use_tensorrt=True", "--ir_optim=False", "-b", "4"]))
    assert (a.image, a.use_gpu, a.use_tensorrt, a.ir_optim, a.batch_size) == ("./test.jpeg", True, True, False, 4)
    a = ap.parse_args(normalize_argv(["export", "--m=ResNet50_vd", "--p=x.pdparams", "--o=out"]))
    assert (a.arch, a.checkpoint, a.out) == ("ResNet50_vd", "x.pdparams", "out")
    a = ap.parse_args(normalize_argv(["infer", "--i=a.jpg", "--m=ResNet18_vd", "--p=c.pdparams", "--use_gpu", "0"]))
    assert a.use_gpu is False and a.arch == "ResNet18_vd"
    for v, want in (("True", True), ("1", True), ("false", False), ("0", False)):
        assert str2bool(v) is want


def test_export_predict_infer_py_infer_compare(tmp_path, resnet18_ckpt, rng_image):
    out = tmp_path / "inference"
    r = run_cli("export", f"--m=ResNet18_vd", f"--p={resnet18_ckpt}", f"--o={out}", "--class_num", "10",
                "--img_size", "64", check=True)
    for f in ("inference.json", "inference.pdiparams", "inference.yml"):
        assert (out / f).is_file(), r.stdout
        assert f in r.stdout

    def topk_lines(stdout):
        return [ln for ln in stdout.splitlines() if ln.startswith("    ")]

    r = run_cli("predict", f"-i={rng_image}", "-m", out / "inference.json", "-p", out / "inference.pdiparams",
                "--use_gpu=0", "--ir_optim=True", "--enable_benchmark=True", "-k", "3", check=True)
    assert len(topk_lines(r.stdout)) == 3 and "forward p50" in r.stdout
    r = run_cli("infer", f"--i={rng_image}", "--m=ResNet18_vd", f"--p={resnet18_ckpt}", "--use_gpu=False",
                "-k", "3", check=True)
    assert len(topk_lines(r.stdout)) == 3
    r = run_cli("py_infer", f"--i={rng_image}", f"--d={out}", "--m=inference.json", "--p=inference.pdiparams",
                "--use_gpu=0", "-k", "3", check=True)
    assert len(topk_lines(r.stdout)) == 3
    # a folder of images works as IMG
    r = run_cli("compare", "-i", rng_image.parent, "--bundle", out, "--checkpoint", resnet18_ckpt,
                "--arch", "ResNet18_vd", "--json", "--repeats", "3", check=True)
    d = json.loads(r.stdout)
    assert set(d["modes"]) == {"predictor", "dygraph", "executor"}
    for m in d["modes"].values():
        assert m["latency_ms"]["p50"] > 0 and len(m["topk"]) == 1
    assert d["agreement"]["max_abs_diff"] <= 1e-4
    r = run_cli("compare", "-i", rng_image, "--bundle", out, "--repeats", "2", check=True)
    assert "modes AGREE" in r.stdout


@pytest.mark.parametrize("args,err", [
    (["predict", "-i", "nope.jpg", "-m", "nope.json"], "FormatError"),
    (["infer", "-i", "x.jpg", "-m", "ResNet18_vd", "-p", "nope.pdparams"], "FormatError"),
    (["export", "--m=NoSuchNet", "--p=nope.pdparams", "--o=x"], "FormatError"),
])
def test_errors_are_one_line_without_trace(args, err):
    r = run_cli(*args)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and err in lines[0]
    r = run_cli("--debug", *args)
    assert "Traceback" in r.stderr
