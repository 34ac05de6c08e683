"""The registry's names and numbers: both naming schemes, list_models' table, docs/architectures.md.

The parameter and FLOP counts ``list_models`` shows are stored in
clsviz/data/architectures.json; here every one is measured again, and the docs
table must render from them (``python benchmarks/arch_table.py --write`` fixes both).
"""
from __future__ import annotations

import json
import sys

import pytest

import clsviz
from clsviz.archs import list_models, model_info, model_spec, paddlex_name
from clsviz.archs.flops import measure
from clsviz.archs.registry import STATS_FILE
from clsviz.errors import ArchitectureError
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import arch_table  # noqa: E402

STORED = json.loads(STATS_FILE.read_text(encoding="utf-8"))["models"]


def test_docs_table_is_current():
    assert arch_table.docs_section() == arch_table.render_markdown(), \
        "docs/architectures.md is stale: run python benchmarks/arch_table.py --write"
    assert arch_table.main(["--check"]) == 0


def test_stats_cover_exactly_the_registry():
    assert set(STORED) == set(list_models()), "run python benchmarks/arch_table.py --write"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_numbers_are_measured(name):
    assert measure(name, size=224) == STORED[name]


@pytest.mark.parametrize("name,params,macs,rel", [
    ("ResNet50", 25.56e6, 4.11e9, 0.01),        # PaddleClas model zoo: 25.56 M, 4.11 G "FLOPs" (MACs)
    ("ResNet18_vd", 11.71e6, 2.07e9, 0.01),     # 11.71 M, 2.07 G
    # PP-LCNet paper / PaddleClas: 2.96 M, 161 M; paddle.flops also counts BN and activations
    ("PPLCNet_x1_0", 2.96e6, 161e6, 0.04),
])
def test_numbers_agree_with_published_figures(name, params, macs, rel):
    info = model_info(name)
    assert info.params == pytest.approx(params, rel=0.005)
    assert info.macs == pytest.approx(macs, rel=rel)
    assert info.flops == 2 * info.macs


@pytest.mark.parametrize("paddlex,paddleclas", [
    ("PP-LCNet_x1_0", "PPLCNet_x1_0"), ("PP-LCNet_x0_25", "PPLCNet_x0_25"),
    ("PP-LCNetV2_base", "PPLCNetV2_base"), ("PP-HGNetV2-B0", "PPHGNetV2_B0"),
    ("PP-HGNetV2-B6", "PPHGNetV2_B6"), ("MobileNetV3_small_x1_25", "MobileNetV3_small_x1_25"),
    ("ResNet50", "ResNet50"), ("ResNet50_vd", "ResNet50_vd"),
])
def test_both_naming_schemes_resolve(paddlex, paddleclas):
    assert model_spec(paddlex).name == paddleclas
    assert paddlex_name(paddleclas) == paddlex and paddlex_name(paddlex) == paddlex
    for spelling in (paddlex.lower(), paddlex.upper(), paddleclas.replace("_", "-"), paddleclas.lower()):
        assert model_spec(spelling).name == paddleclas, spelling


def test_paddlex_names_are_in_paddlex_list_when_known():
    """Every PaddleX name the registry writes into Global.model_name is one PaddleX's list spells so."""
    names = {model_spec(n).paddlex_name for n in list_models()} - {None}
    assert {"PP-LCNet_x1_0", "PP-LCNet_x0_5", "PP-HGNetV2-B4", "PP-LCNetV2_large",
            "MobileNetV3_large_x1_0", "ResNet200_vd", "ResNet18"} <= names
    for n in names:  # PaddleX spells PP-* with a hyphen, HGNetV2 variants with a second one
        assert not n.startswith("PP") or n.startswith("PP-"), n
        assert not n.startswith("PP-HGNetV2") or n[len("PP-HGNetV2")] == "-", n
    assert paddlex_name("ResNet18_vd_x0_25") is None
    assert paddlex_name("paddle.vision:resnet18") is None and paddlex_name("mypkg.nets:build") is None


def test_list_models_is_names_with_a_table():
    pp = list_models("PP-LCNet_*")
    assert list(pp) == ["PPLCNet_x0_25", "PPLCNet_x0_35", "PPLCNet_x0_5", "PPLCNet_x0_75",
                        "PPLCNet_x1_0", "PPLCNet_x1_5", "PPLCNet_x2_0", "PPLCNet_x2_5"]
    assert pp == list(pp) and pp == tuple(pp) and "PPLCNet_x1_0" in pp
    assert list_models("pp-hgnetv2-*") == [f"PPHGNetV2_B{i}" for i in range(7)]
    row = pp.info[4]
    assert (row.name, row.paddlex_name, row.family) == ("PPLCNet_x1_0", "PP-LCNet_x1_0", "PP-LCNet")
    assert row.params == STORED["PPLCNet_x1_0"]["params"] and row.flops == 2 * STORED["PPLCNet_x1_0"]["macs"]
    text = repr(pp)
    assert "PP-LCNet_x1_0" in text and f"{row.params / 1e6:.2f}M" in text and "GFLOPs" in text
    html = pp._repr_html_()
    assert "<table>" in html and "PP-LCNet_x1_0" in html and "GFLOPs @224" in html
    d = pp.to_dict()[4]
    assert d["params"] == row.params and d["macs"] == row.macs and d["paddlex_name"] == "PP-LCNet_x1_0"
    assert len(clsviz.list_models()) == len(STORED)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ArchitectureError, match="unknown architecture") as e:
        clsviz.get_model("PP-LCNet_x1_1")
    assert "PPLCNet_x1_0" in str(e.value) or "PPLCNet_x1_5" in str(e.value)
    with pytest.raises(ArchitectureError, match="cannot build"):
        clsviz.get_model("PPLCNet_x1_0", stride_list=[2, 2])           # PaddleClas needs 5 entries
    with pytest.raises(ArchitectureError, match="cannot build"):
        clsviz.get_model("PPHGNetV2_B0", no_such_option=1)


def test_duplicate_spellings_are_refused():
    from clsviz.archs import register_model

    with pytest.raises(ArchitectureError, match="registered twice"):
        register_model("pp_lcnet_x1_0")(lambda class_num=1000: None)
    with pytest.raises(ArchitectureError, match="registered twice"):
        register_model("MyNet", paddlex_name="PP-HGNetV2-B0")(lambda class_num=1000: None)
    assert "MyNet" not in list_models()


@pytest.mark.parametrize("arch", ["PPLCNet_x0_35", "PPLCNetV2_small", "MobileNetV3_large_x0_75", "PPHGNetV2_B1",
                                  "ResNet34", "ResNet34_vd", "paddle.vision:mobilenet_v2"])
def test_a_checkpoint_names_its_architecture(arch):
    """Names and shapes identify the network, whatever the class count (a fine-tuned checkpoint)."""
    from clsviz.archs import guess_architecture

    state = {k: v.numpy() for k, v in clsviz.get_model(arch, class_num=37).state_dict().items()}
    assert guess_architecture(state) == arch
    assert guess_architecture({k: v.shape for k, v in state.items()}) == arch
    state.pop(next(iter(state)))
    assert guess_architecture(state) is None


def test_other_options_or_unknown_networks_are_not_guessed(tmp_path):
    from clsviz._paddle import paddle
    from clsviz.archs import guess_architecture

    net = clsviz.get_model("PPLCNet_x0_35", class_num=5, use_last_conv=False)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert guess_architecture(state) is None and guess_architecture({}) is None
    # the guess reaches the user: the dygraph mode's error and inspect name it
    p = tmp_path / "ckpt.pdparams"
    paddle.save(clsviz.get_model("PPHGNetV2_B0", class_num=3).state_dict(), str(p))
    with pytest.raises(clsviz.OptionError, match="no architecture is known") as e:
        clsviz.load(p, mode="dygraph")
    assert "'PPHGNetV2_B0'" in str(e.value)
    assert "PPHGNetV2_B0" in str(clsviz.inspect(p).to_dict())
