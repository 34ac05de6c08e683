"""clsviz.formats.fluid_names: PaddleClas 1.x fluid names <-> clsviz ResNet_vd names."""
from __future__ import annotations

import numpy as np
import pytest

import fixtures_legacy as fl
from clsviz.errors import CheckpointMismatch
from clsviz.formats import tensorfile as tf
from clsviz.formats.fluid_names import (DEPTHS, dygraph_to_fluid, fluid_to_dygraph,
                                        guess_depth, is_optimizer_state, name_table)
from clsviz.formats.programdesc import read_program


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_table_covers_the_real_network(depth):
    from clsviz.archs import get_model

    keys = list(get_model(f"ResNet{depth}_vd", class_num=7).state_dict())
    table = name_table(depth)
    assert [d for _, d in table] == keys            # same names, same order
    assert len({f for f, _ in table}) == len(table)


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_table_size_and_uniqueness(depth):
    kind, counts = DEPTHS[depth]
    per_block = 2 if kind == "basic" else 3
    n_convs = 3 + sum(counts) * per_block + len(counts)
    table = name_table(depth)
    assert len(table) == n_convs * 5 + 2
    assert len(set(f for f, _ in table)) == len(table)


@pytest.mark.parametrize("fluid,dygraph,depth", [
    ("conv1_1_weights", "stem.0.conv.weight", 18),
    ("bnv1_1_scale", "stem.0.bn.weight", 18),
    ("bnv1_3_variance", "stem.2.bn._variance", 50),
    ("res2a_branch2a_weights", "blocks.0.conv0.conv.weight", 50),
    ("bn2a_branch2a_scale", "blocks.0.conv0.bn.weight", 50),
    ("bn2a_branch2a_offset", "blocks.0.conv0.bn.bias", 50),
    ("res2a_branch1_weights", "blocks.0.short.conv.weight", 18),
    ("bn2a_branch1_mean", "blocks.0.short.bn._mean", 18),
    ("res3a_branch1_weights", "blocks.2.short.conv.weight", 18),
    ("res5b_branch2b_weights", "blocks.7.conv1.conv.weight", 18),
    ("res5c_branch2c_weights", "blocks.15.conv2.conv.weight", 50),
    ("res4a_branch1_weights", "blocks.7.short.conv.weight", 101),
    ("res4b1_branch2a_weights", "blocks.8.conv0.conv.weight", 101),
    ("res4b22_branch2c_weights", "blocks.29.conv2.conv.weight", 101),
    ("res5a_branch1_weights", "blocks.30.short.conv.weight", 101),
    ("res3h_branch2c_weights", "blocks.10.conv2.conv.weight", 152),
    ("res4b35_branch2c_weights", "blocks.46.conv2.conv.weight", 152),
    ("res3l_branch2a_weights", "blocks.14.conv0.conv.weight", 200),
    ("res4b47_branch2b_weights", "blocks.62.conv1.conv.weight", 200),
    ("fc_0.w_0", "fc.weight", 34),
    ("fc_0.b_0", "fc.bias", 152),
])
def test_spellings(fluid, dygraph, depth):
    assert dict(name_table(depth))[fluid] == dygraph


def test_deep_nets_switch_to_b_numbering_in_stage_4_only():
    for depth in (18, 34, 50):
        assert not any(f.startswith("res4b1_") for f, _ in name_table(depth))
        assert any(f.startswith("res4b_") for f, _ in name_table(depth))
    for depth in (101, 152, 200):
        names = {f for f, _ in name_table(depth)}
        assert "res4b_branch2a_weights" not in names and "res4b1_branch2a_weights" in names
        assert "res3b_branch2a_weights" in names and "res5c_branch2a_weights" in names


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_round_trip(depth):
    table = name_table(depth)
    state = {d: np.full(1, i, "float32") for i, (_, d) in enumerate(table)}
    fluid = dygraph_to_fluid(state, depth)
    assert set(fluid) == {f for f, _ in table}
    back = fluid_to_dygraph(fluid, depth)
    assert list(back) == list(state) and all(back[k] is state[k] for k in state)
    assert guess_depth(fluid) == depth and guess_depth(state) == depth


def test_names_in_names_out():
    names = [f for f, _ in name_table(18)]
    mapping = fluid_to_dygraph(names, 18)
    assert mapping["bnv1_2_offset"] == "stem.1.bn.bias"


def test_optimizer_state_is_skipped_unless_asked():
    names = [f for f, _ in name_table(18)] + ["conv1_1_weights_velocity_0", "learning_rate_0",
                                               "@LR_DECAY_COUNTER@", "fc_0.w_0_moment1_0",
                                               "fc_0.w_0_beta1_pow_acc_0"]
    assert len(fluid_to_dygraph(names, 18)) == len(name_table(18))
    assert all(is_optimizer_state(n) for n in names[-5:])
    assert not any(is_optimizer_state(f) for f, _ in name_table(152))
    with pytest.raises(CheckpointMismatch, match="5 fluid name"):
        fluid_to_dygraph(names, 18, skip_optimizer=False)


def test_errors_list_the_names():
    names = [f for f, _ in name_table(50)]
    with pytest.raises(CheckpointMismatch) as e:
        fluid_to_dygraph(names, 18)          # wrong depth
    assert "bn2a_branch2c_mean" in str(e.value) and "pass depth=50" in str(e.value)
    with pytest.raises(CheckpointMismatch, match="guess_depth"):
        fluid_to_dygraph(["conv1_1_weights", "my_head.w_0"], 18)
    with pytest.raises(CheckpointMismatch, match=r"missing: .*fc_0\.b_0"):
        fluid_to_dygraph([n for n in names if n != "fc_0.b_0"], 50)
    partial = fluid_to_dygraph(["fc_0.w_0"], 50, strict=False)
    assert partial == {"fc_0.w_0": "fc.weight"}
    with pytest.raises(CheckpointMismatch, match="stem.9.conv.weight"):
        dygraph_to_fluid({"stem.9.conv.weight": 0}, 18)
    with pytest.raises(CheckpointMismatch, match="supported depths"):
        name_table(42)
    assert guess_depth(["fc_0.w_0"]) is None


# ------------------------------------------------------------------ real fluid files
@pytest.fixture(scope="module")
def resnet():
    return fl.shared("ResNet18_vd")


def test_fluid_checkpoint_folder_maps_onto_the_network(resnet):
    """(a): a fluid save_persistables folder -> clsviz ResNet18_vd -> same predictions."""
    from clsviz._paddle import dygraph_mode, paddle
    from clsviz.archs import get_model

    fx = resnet["fluid_checkpoint"]
    files = {p.name: p for p in fx.path.iterdir()}
    assert "learning_rate_0" in files and "conv1_1_weights_velocity_0" in files
    assert guess_depth(files) == 18
    state = fluid_to_dygraph({n: tf.read_tensor_file(p) for n, p in files.items()}, 18)
    weights = fx.weights()
    assert set(state) == set(weights)
    for k in weights:
        np.testing.assert_array_equal(state[k], weights[k])
    with dygraph_mode():
        net = get_model("ResNet18_vd", class_num=10)
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
        net.eval()
        out = net(paddle.to_tensor(fx.input)).numpy()
    np.testing.assert_allclose(out, fx.expected, rtol=1e-4, atol=1e-4)
    # the fluid-named static program computes the same thing, bit for bit
    np.testing.assert_allclose(fx.static_output, fx.expected, rtol=1e-5, atol=1e-5)


def test_linear_layout_is_in_out_in_both_worlds(resnet):
    """fluid ``fc_0.w_0`` and ``nn.Linear.weight`` are both [in, out]: no transpose."""
    prog = read_program(resnet["fluid_inference_loose"].files["model"])
    assert prog.vars["fc_0.w_0"].shape == (512, 10)
    assert resnet["fluid_inference_loose"].weights()["fc.weight"].shape == (512, 10)
    mul = [op for op in prog.ops if op.input("Y") == ("fc_0.w_0",)]
    assert mul and mul[0].type in ("mul", "matmul", "matmul_v2")


def test_inference_program_names_are_the_table(resnet):
    prog = read_program(resnet["fluid_inference_combined"].files["model"])
    assert set(prog.persistable_names()) == {f for f, _ in name_table(18)}


def test_for_arch():
    from clsviz.formats.fluid_names import depth_of_arch, fluid_to_dygraph_for_arch

    assert depth_of_arch("ResNet50_vd") == 50 and depth_of_arch("ResNet18_vd_x0_25") == 18
    assert depth_of_arch("ResNet50") is None and depth_of_arch("ResNet42_vd") is None
    fluid = {f: i for i, (f, _) in enumerate(name_table(34))}
    fluid["learning_rate_0"] = -1
    for arch in ("ResNet34_vd", None):
        out = fluid_to_dygraph_for_arch(fluid, arch)
        assert out["stem.0.conv.weight"] == 0 and len(out) == len(name_table(34))
    dy = {d: i for i, (_, d) in enumerate(name_table(34))}
    assert fluid_to_dygraph_for_arch(dy, "ResNet34_vd") == dy
    with pytest.raises(CheckpointMismatch, match="only be mapped for ResNet"):
        fluid_to_dygraph_for_arch(fluid, "paddle.vision:resnet18")
    with pytest.raises(CheckpointMismatch, match="pass arch="):
        fluid_to_dygraph_for_arch({"w": 1}, None)


# ------------------------------------------------------------------ ResNet and MobileNetV3 legacy names
@pytest.mark.parametrize("arch", ["ResNet18", "ResNet50", "ResNet152", "MobileNetV3_small_x0_35",
                                  "MobileNetV3_large_x1_25"])
def test_legacy_tables_cover_the_real_networks(arch):
    from clsviz.archs import get_model
    from clsviz.formats.fluid_names import legacy_table

    keys = list(get_model(arch, class_num=7).state_dict())
    table = legacy_table(arch)
    assert [d for _, d in table] == keys
    assert len({f for f, _ in table}) == len(table)


# spellings from PaddleClas's fluid-era sources (ppcls/modeling/architectures, release/2.0):
# ConvBNLayer(name=N) -> N_weights; bn "bn_conv1" for conv1, else "bn" + N[3:]  (ResNet);
# N_weights + N_bn_{scale,offset,mean,variance}; SE N_se_{1,2}_{weights,offset}; fc_weights/fc_offset
@pytest.mark.parametrize("arch,fluid,dygraph", [
    ("ResNet18", "conv1_weights", "stem.0.conv.weight"),
    ("ResNet18", "bn_conv1_scale", "stem.0.bn.weight"),
    ("ResNet50", "bn_conv1_variance", "stem.0.bn._variance"),
    ("ResNet18", "res2a_branch1_weights", "blocks.0.short.conv.weight"),
    ("ResNet50", "bn2a_branch2c_offset", "blocks.0.conv2.bn.bias"),
    ("ResNet101", "res4b22_branch2c_weights", "blocks.29.conv2.conv.weight"),
    ("ResNet152", "res3h_branch2a_weights", "blocks.10.conv0.conv.weight"),
    ("ResNet34", "fc_0.w_0", "fc.weight"),
    ("MobileNetV3_large_x1_0", "conv1_weights", "conv.conv.weight"),
    ("MobileNetV3_large_x1_0", "conv1_bn_mean", "conv.bn._mean"),
    ("MobileNetV3_large_x1_0", "conv2_expand_weights", "blocks.0.expand_conv.conv.weight"),
    ("MobileNetV3_large_x1_0", "conv2_depthwise_bn_scale", "blocks.0.bottleneck_conv.bn.weight"),
    ("MobileNetV3_large_x1_0", "conv5_se_1_weights", "blocks.3.mid_se.conv1.weight"),
    ("MobileNetV3_large_x1_0", "conv5_se_2_offset", "blocks.3.mid_se.conv2.bias"),
    ("MobileNetV3_large_x1_0", "conv16_linear_bn_variance", "blocks.14.linear_conv.bn._variance"),
    ("MobileNetV3_small_x0_5", "conv2_se_1_offset", "blocks.0.mid_se.conv1.bias"),
    ("MobileNetV3_small_x0_5", "conv12_linear_weights", "blocks.10.linear_conv.conv.weight"),
    ("MobileNetV3_small_x0_5", "conv_last_bn_offset", "last_second_conv.bn.bias"),
    ("MobileNetV3_small_x0_5", "last_1x1_conv_weights", "last_conv.weight"),
    ("MobileNetV3_small_x0_5", "fc_weights", "fc.weight"),
    ("MobileNetV3_small_x0_5", "fc_offset", "fc.bias"),
])
def test_legacy_spellings(arch, fluid, dygraph):
    from clsviz.formats.fluid_names import legacy_table

    assert dict(legacy_table(arch))[fluid] == dygraph


def test_legacy_tables_by_family():
    from clsviz.formats.fluid_names import legacy_table

    small = {f for f, _ in legacy_table("MobileNetV3_small_x1_0")}
    large = {f for f, _ in legacy_table("MobileNetV3_large_x1_0")}
    assert "conv3_se_1_weights" not in small and "conv12_expand_weights" in small  # 11 blocks, no SE in 2-3
    assert "conv16_expand_weights" in large and "conv17_expand_weights" not in large
    assert "conv2_se_1_weights" not in large and "conv2_se_1_weights" in small
    assert legacy_table("MobileNetV3_small_x0_35") == legacy_table("MobileNetV3_small_x1_25")
    assert legacy_table("ResNet18_vd_x0_25") == name_table(18)
    for arch in ("PPLCNet_x1_0", "PPHGNetV2_B0", "paddle.vision:resnet18", "ResNet200", "MobileNetV3_x1_0"):
        assert legacy_table(arch) is None, arch


def _write_persistables(folder, state, arch):
    """A fluid save_persistables folder: one tensor file per legacy name, plus optimizer state."""
    from clsviz.formats.fluid_names import dygraph_to_fluid_for_arch

    folder.mkdir()
    fluid = dygraph_to_fluid_for_arch(state, arch)
    for name, arr in fluid.items():
        tf.write_tensor_file(folder / name, arr)
    first = next(iter(fluid))
    tf.write_tensor_file(folder / f"{first}_velocity_0", np.zeros_like(fluid[first]))
    tf.write_tensor_file(folder / "learning_rate_0", np.array([0.1], "float32"))
    return fluid


@pytest.mark.parametrize("arch", ["MobileNetV3_small_x0_35", "ResNet18"])
def test_legacy_persistables_run_and_export(arch, tmp_path):
    """A fluid-era folder of this family: guessed, run in dygraph, exported — same numbers as the network."""
    import clsviz
    from clsviz.formats.fluid_names import guess_arch
    from paddleclas_oracle import calibrate_bn, random_state
    from clsviz._paddle import dygraph_mode, paddle

    net = clsviz.get_model(arch, class_num=6)
    with dygraph_mode():
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in random_state(net, 3).items()})
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    calibrate_bn(net, x)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    with dygraph_mode(), paddle.no_grad():
        want = net(paddle.to_tensor(x)).numpy()
    folder = tmp_path / "persistables"
    fluid = _write_persistables(folder, state, arch)
    assert guess_arch(fluid) == arch and guess_arch(state) == arch
    rep = clsviz.inspect(folder)
    assert arch in str(rep.to_dict())
    clf = clsviz.load(folder, mode="dygraph", arch=arch)
    np.testing.assert_allclose(clf.forward(x), want, rtol=1e-5, atol=1e-5)
    r = clsviz.export(arch, folder, tmp_path / "bundle", image_shape=(3, 64, 64))
    pred = clsviz.load(tmp_path / "bundle", mode="predictor", ir_optim=False, enable_mkldnn=False)
    e = np.exp(want - want.max(axis=1, keepdims=True))  # export appends a softmax by default
    np.testing.assert_allclose(pred.forward(x), e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-5)
    assert r.max_abs_diff <= 1e-4
    with pytest.raises(CheckpointMismatch, match="MobileNetV3|ResNet"):
        clsviz.load(folder, mode="dygraph", arch="ResNet50" if arch != "ResNet50" else "ResNet18")
