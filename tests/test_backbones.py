"""Specifications of the embedding networks in skmeta.backbones."""

import pytest
import torch
from torch import nn

from skmeta.backbones import BACKBONES, MLP, Conv4, build_backbone, embedding_size


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- Conv4 -------------------------------------------------------------------------


def test_conv4_is_four_blocks_of_conv_bn_relu_maxpool():
    # Snell et al. 2017, section 3.1: "four convolutional blocks. Each block
    # comprises a 64-filter 3x3 convolution, batch normalization layer, a ReLU
    # nonlinearity and a 2x2 max-pooling layer."
    model = Conv4(in_channels=1)
    blocks = list(model.encoder.children())
    assert len(blocks) == 4
    widths = [(1, 64), (64, 64), (64, 64), (64, 64)]
    for block, (c_in, c_out) in zip(blocks, widths, strict=True):
        conv, bn, relu, pool = list(block.children())
        assert type(conv) is nn.Conv2d
        assert (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert conv.kernel_size == (3, 3)
        assert conv.padding == (1, 1)
        assert conv.stride == (1, 1)
        assert conv.bias is not None
        assert type(bn) is nn.BatchNorm2d
        assert bn.num_features == c_out
        assert type(relu) is nn.ReLU
        assert type(pool) is nn.MaxPool2d
        assert pool.kernel_size == 2
        assert pool.stride == 2


def test_conv4_parameter_count_by_hand():
    # block 1: conv 1*64*3*3 weights + 64 biases = 640; batch norm 64 + 64 = 128
    # blocks 2-4: conv 64*64*3*3 + 64 = 36928; batch norm 128
    # (running mean/var are buffers, not parameters)
    first = (1 * 64 * 3 * 3 + 64) + (64 + 64)
    later = (64 * 64 * 3 * 3 + 64) + (64 + 64)
    assert first == 768
    assert later == 37056
    assert n_params(Conv4(in_channels=1)) == first + 3 * later == 111936


def test_conv4_maps_28x28_to_a_64d_embedding():
    out = Conv4(in_channels=1)(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 64)


def test_conv4_maps_84x84_to_64_by_5_by_5_features():
    # 84 -> 42 -> 21 -> 10 -> 5 after four 2x2 poolings (floor)
    out = Conv4(in_channels=3)(torch.randn(2, 3, 84, 84))
    assert out.shape == (2, 64 * 5 * 5)


def test_conv4_non_square_input():
    out = Conv4(in_channels=1)(torch.randn(2, 1, 32, 48))
    assert out.shape == (2, 64 * 2 * 3)


def test_conv4_out_channels_changes_the_last_block_only():
    model = Conv4(in_channels=3, out_channels=32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [64, 64, 64, 32]
    assert [c.in_channels for c in convs] == [3, 64, 64, 64]
    assert [b.num_features for b in bns] == [64, 64, 64, 32]
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 32)


def test_conv4_hidden_channels_changes_the_first_three_blocks():
    model = Conv4(in_channels=1, hidden_channels=16, out_channels=8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 16, 8]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 8)


def test_conv4_output_is_non_negative_after_relu_and_pool():
    model = Conv4(in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(4, 1, 28, 28))
    assert (out >= 0).all()


def test_conv4_strided_is_the_maml_and_reptile_omniglot_network():
    # Finn et al. 2017, section 5.1, and Nichol et al. 2018, appendix A: 3x3
    # convolutions of 64 filters and stride 2, batch norm, ReLU, no pooling.
    model = Conv4(in_channels=1, downsample="stride")
    for block in model.encoder.children():
        conv, bn, relu, pool = list(block.children())
        assert conv.kernel_size == (3, 3)
        assert conv.stride == (2, 2)
        assert conv.padding == (1, 1)
        assert type(bn) is nn.BatchNorm2d
        assert type(relu) is nn.ReLU
        assert type(pool) is nn.Identity
    # Same weights as with max-pooling: only the downsampling differs.
    assert n_params(model) == n_params(Conv4(in_channels=1)) == 111936


@pytest.mark.parametrize(
    ("size", "side"),
    # ceil(x / 2) four times: 28 -> 14 -> 7 -> 4 -> 2; 84 -> 42 -> 21 -> 11 -> 6
    [(28, 2), (84, 6), (16, 1), (17, 2)],
)
def test_conv4_strided_halves_each_side_rounding_up(size, side):
    out = Conv4(in_channels=1, downsample="stride")(torch.randn(2, 1, size, size))
    assert out.shape == (2, 64 * side * side)


def test_conv4_strided_equals_the_stride_two_convolutions_by_hand():
    model = Conv4(in_channels=1, downsample="stride").eval()
    x = torch.randn(3, 1, 28, 28)
    expected = x
    for block in model.encoder.children():
        conv, bn = block[0], block[1]
        expected = nn.functional.conv2d(
            expected, conv.weight, conv.bias, stride=2, padding=1
        )
        expected = nn.functional.relu(
            nn.functional.batch_norm(
                expected, bn.running_mean, bn.running_var, bn.weight, bn.bias
            )
        )
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected.flatten(1))


def test_conv4_unknown_downsample_is_an_error_naming_it():
    with pytest.raises(ValueError, match="downsample must be 'maxpool' or 'stride'"):
        Conv4(downsample="avgpool")


def test_conv4_defaults_to_one_input_channel():
    assert Conv4().encoder[0][0].in_channels == 1


# -- MLP ---------------------------------------------------------------------------


def test_mlp_layer_widths_and_relus():
    model = MLP(in_features=10, out_features=4, hidden_dims=(32, 16))
    layers = list(model.layers.children())
    assert [type(m) for m in layers] == [
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
    ]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (10, 32),
        (32, 16),
        (16, 4),
    ]


def test_mlp_default_is_one_hidden_layer_of_128_and_64_outputs():
    model = MLP(in_features=10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 128), (128, 64)]
    # (10*128 + 128) + (128*64 + 64)
    assert n_params(model) == 1408 + 8256


def test_mlp_without_hidden_layers_is_one_linear_map():
    model = MLP(in_features=6, out_features=3, hidden_dims=())
    assert [type(m) for m in model.layers] == [nn.Linear]
    x = torch.randn(4, 6)
    linear = model.layers[0]
    torch.testing.assert_close(model(x), x @ linear.weight.T + linear.bias)


def test_mlp_output_dim_and_output_can_be_negative():
    out = MLP(in_features=8, out_features=5)(torch.randn(64, 8))
    assert out.shape == (64, 5)
    assert (out < 0).any(), "no activation on the output layer"


def test_mlp_flattens_extra_dimensions():
    model = MLP(in_features=2 * 3 * 4, out_features=5)
    x = torch.randn(7, 2, 3, 4)
    out = model(x)
    assert out.shape == (7, 5)
    torch.testing.assert_close(out, model(x.reshape(7, -1)))


# -- build_backbone -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_registered_name_builds_its_class(name):
    shape = (1, 28, 28) if name == "conv4" else (12,)
    backbone = build_backbone(name, shape, embedding_dim=8)
    assert type(backbone) is BACKBONES[name]
    assert embedding_size(backbone, shape) == (12 if name == "identity" else 8)


def test_none_picks_conv4_for_image_samples():
    model = build_backbone(None, (3, 28, 28), embedding_dim=32)
    assert type(model) is Conv4
    assert model.encoder[0][0].in_channels == 3
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 32)


def test_none_picks_mlp_for_tabular_samples():
    model = build_backbone(None, (20,), embedding_dim=8)
    assert type(model) is MLP
    assert model.layers[0].in_features == 20
    assert model(torch.randn(3, 20)).shape == (3, 8)


def test_names_build_their_class_with_the_shape():
    conv = build_backbone("conv4", (1, 28, 28), embedding_dim=16)
    assert type(conv) is Conv4
    assert conv(torch.randn(2, 1, 28, 28)).shape == (2, 16)
    mlp = build_backbone("mlp", (2, 8, 8), embedding_dim=10)
    assert type(mlp) is MLP
    # an MLP on images sees the flat sample: 2 * 8 * 8 = 128 inputs
    assert mlp.layers[0].in_features == 128
    assert mlp(torch.randn(3, 2, 8, 8)).shape == (3, 10)


def test_params_are_forwarded_to_the_constructor():
    model = build_backbone("mlp", (10,), 4, params={"hidden_dims": (7, 5)})
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [7, 5, 4]
    conv = build_backbone(None, (1, 28, 28), 20, params={"hidden_channels": 8})
    convs = [m.out_channels for m in conv.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [8, 8, 8, 20]


def test_params_override_the_shape_arguments():
    model = build_backbone("mlp", (10,), 4, params={"out_features": 9})
    assert model(torch.randn(2, 10)).shape == (2, 9)


def test_params_dict_is_not_modified():
    params = {"hidden_dims": (3,)}
    build_backbone("mlp", (4,), 2, params=params)
    assert params == {"hidden_dims": (3,)}


class InFeaturesOnly(nn.Module):
    """A custom backbone whose signature accepts in_features and nothing else."""

    def __init__(self, in_features):
        super().__init__()
        self.in_features = in_features
        self.linear = nn.Linear(in_features, 3)

    def forward(self, x):
        return self.linear(x.flatten(1))


class NoArguments(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x)


class ChannelsAndScale(nn.Module):
    def __init__(self, in_channels, out_channels, scale=1.0):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = scale


def test_a_class_gets_only_the_shape_arguments_its_signature_accepts():
    model = build_backbone(InFeaturesOnly, (2, 3, 4), embedding_dim=99)
    assert type(model) is InFeaturesOnly
    assert model.in_features == 24
    assert model(torch.randn(5, 2, 3, 4)).shape == (5, 3)


def test_a_class_without_arguments_is_called_without_arguments():
    model = build_backbone(NoArguments, (4,), embedding_dim=99)
    assert type(model) is NoArguments
    assert model(torch.randn(3, 4)).shape == (3, 2)


def test_a_class_taking_channels_gets_channels_and_params():
    model = build_backbone(
        ChannelsAndScale, (5, 8, 8), embedding_dim=12, params={"scale": 0.5}
    )
    assert (model.in_channels, model.out_channels, model.scale) == (5, 12, 0.5)


def test_an_instance_is_deep_copied_with_its_state():
    original = MLP(in_features=4, out_features=2)
    built = build_backbone(original, (4,), embedding_dim=99)
    assert built is not original
    assert type(built) is MLP
    state, built_state = original.state_dict(), built.state_dict()
    assert state.keys() == built_state.keys()
    for key in state:
        torch.testing.assert_close(built_state[key], state[key])
        assert built_state[key].data_ptr() != state[key].data_ptr()
    # training the copy leaves the original alone
    with torch.no_grad():
        next(built.parameters()).add_(1.0)
    assert not torch.equal(next(built.parameters()), next(original.parameters()))


def test_an_instance_ignores_embedding_dim():
    built = build_backbone(MLP(in_features=4, out_features=2), (4,), embedding_dim=99)
    assert built(torch.randn(3, 4)).shape == (3, 2)


def test_an_instance_with_empty_params_is_accepted():
    built = build_backbone(NoArguments(), (4,), 2, params={})
    assert type(built) is NoArguments


# -- errors --------------------------------------------------------------------------


def test_unknown_name_is_a_value_error_listing_the_names():
    with pytest.raises(
        ValueError, match=r"Unknown backbone 'resnet12'.*'conv4', 'identity', 'mlp'"
    ):
        build_backbone("resnet12", (1, 28, 28), 64)


@pytest.mark.parametrize("shape", [(20,), (4, 5)])
def test_conv4_for_non_image_samples_is_a_value_error(shape):
    with pytest.raises(ValueError, match=r"backbone='conv4' needs images"):
        build_backbone("conv4", shape, 64)


def test_instance_with_params_is_a_type_error():
    with pytest.raises(TypeError, match=r"not to a module instance"):
        build_backbone(MLP(4), (4,), 2, params={"hidden_dims": (3,)})


@pytest.mark.parametrize("bad", [42, int, torch.randn(3), lambda x: x])
def test_a_non_module_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"backbone must be None, a name in"):
        build_backbone(bad, (4,), 2)


def test_conv4_refuses_images_smaller_than_16_pixels():
    with pytest.raises(ValueError, match="at least 16x16 pixels; got images of 8x12"):
        build_backbone("conv4", (1, 8, 12), 64)
    assert build_backbone(None, (1, 16, 16), 64)(torch.zeros(2, 1, 16, 16)).shape == (
        2,
        64,
    )
