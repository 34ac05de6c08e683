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
