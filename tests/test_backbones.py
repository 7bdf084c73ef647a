"""Specifications of the embedding networks in skmeta.backbones."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from skmeta.backbones import (
    BACKBONES,
    MLP,
    Conv4,
    ImageBackbone,
    ResNet12,
    build_backbone,
    embedding_size,
    output_shape,
)


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


def test_conv4_takes_84x84_rgb_to_the_usual_1600d_embedding():
    # miniImageNet's 84x84 RGB: 64 filters x 5 x 5 positions, flattened
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_backbone(None, (3, 84, 84), 64)
    assert type(model) is Conv4
    assert model.encoder[0][0].in_channels == 3
    assert embedding_size(model, (3, 84, 84)) == 1600


def test_conv4_embedding_dim_sets_the_last_block_filters_on_any_image_size():
    # embedding_dim sizes Conv4 (no warning); the embedding is filters x 5 x 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_backbone("conv4", (3, 84, 84), 32)
    assert model.encoder[3][0].out_channels == 32
    assert output_shape(model, (3, 84, 84)) == (32 * 5 * 5,)
    assert output_shape(model, (3, 28, 28)) == (32,)


# -- ResNet12 ------------------------------------------------------------------------


SMALL = (4, 6, 8, 10)


def test_resnet12_is_four_residual_blocks_of_three_convolutions():
    # Lee et al. 2019; Tian et al. 2020: three 3x3 conv-BN-LeakyReLU(0.1), a
    # 1x1 conv-BN shortcut, 2x2 max-pooling; no biases before batch norm
    model = ResNet12(in_channels=3, channels=SMALL)
    blocks = list(model.blocks.children())
    assert len(blocks) == 4
    for block, (c_in, c_out) in zip(
        blocks, [(3, 4), (4, 6), (6, 8), (8, 10)], strict=True
    ):
        convs = [block.conv1, block.conv2, block.conv3]
        assert [(c.in_channels, c.out_channels) for c in convs] == [
            (c_in, c_out),
            (c_out, c_out),
            (c_out, c_out),
        ]
        for conv in convs:
            assert (conv.kernel_size, conv.padding, conv.stride) == (
                (3, 3),
                (1, 1),
                (1, 1),
            )
            assert conv.bias is None
        for bn in (block.bn1, block.bn2, block.bn3):
            assert type(bn) is nn.BatchNorm2d
            assert bn.num_features == c_out
        conv, bn = block.shortcut
        assert (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert conv.kernel_size == (1, 1)
        assert conv.bias is None
        assert type(bn) is nn.BatchNorm2d
        assert type(block.relu) is nn.LeakyReLU
        assert block.relu.negative_slope == 0.1
        assert type(block.pool) is nn.MaxPool2d
        assert (block.pool.kernel_size, block.pool.stride) == (2, 2)


def test_resnet12_block_equals_its_formula_by_hand():
    model = ResNet12(in_channels=2, channels=SMALL).eval()
    block = model.blocks[0]
    x = torch.randn(3, 2, 12, 12)

    def bn(layer, h):
        return nn.functional.batch_norm(
            h, layer.running_mean, layer.running_var, layer.weight, layer.bias
        )

    def lrelu(h):
        return torch.where(h > 0, h, 0.1 * h)

    def conv(layer, h):
        return nn.functional.conv2d(h, layer.weight, padding=layer.padding)

    h = lrelu(bn(block.bn1, conv(block.conv1, x)))
    h = lrelu(bn(block.bn2, conv(block.conv2, h)))
    h = bn(block.bn3, conv(block.conv3, h))
    shortcut = bn(block.shortcut[1], conv(block.shortcut[0], x))
    expected = nn.functional.max_pool2d(lrelu(h + shortcut), 2)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


def test_resnet12_embedding_is_the_global_average_of_the_last_map():
    # Tian et al. 2020 average-pool the last block's map
    model = ResNet12(in_channels=3, channels=SMALL).eval()
    x = torch.randn(2, 3, 84, 84)
    with torch.no_grad():
        maps = model.blocks(x)
        assert maps.shape == (2, 10, 5, 5)
        torch.testing.assert_close(model(x), maps.mean((2, 3)))


@pytest.mark.parametrize("shape", [(3, 84, 84), (1, 28, 28), (3, 16, 16), (1, 32, 48)])
def test_resnet12_gives_channels_last_width_features_on_any_image_size(shape):
    model = ResNet12(in_channels=shape[0], channels=SMALL)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_resnet12_parameter_count_is_the_fields_12_4_million():
    # per block of c_in -> c filters: 3x3 convs c_in*c*9 + 2*c*c*9, shortcut
    # c_in*c, four batch norms 4*2*c (running statistics are buffers)
    def block(c_in, c):
        return c_in * c * 9 + 2 * c * c * 9 + c_in * c + 8 * c

    widths = [3, 64, 160, 320, 640]
    by_hand = sum(block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert by_hand == 12_424_320  # "12.4M"
    assert n_params(ResNet12()) == by_hand


def test_resnet12_by_name_takes_channels_from_x_and_gives_640_features():
    model = build_backbone("resnet12", (1, 28, 28), 64, embedding_dim_is_default=True)
    assert type(model) is ResNet12
    assert model.blocks[0].conv1.in_channels == 1
    assert output_shape(model, (1, 28, 28)) == (640,)
    assert embedding_size(model, (1, 28, 28)) == 640


def test_resnet12_channels_are_searchable_through_params():
    model = build_backbone(
        "resnet12", (3, 84, 84), 64, {"channels": SMALL}, embedding_dim_is_default=True
    )
    assert [b.conv1.out_channels for b in model.blocks] == list(SMALL)
    assert embedding_size(model, (3, 84, 84)) == 10


@pytest.mark.parametrize("bad", [(4, 6, 8), (4, 6, 8, 0), (4, 6, 8, 2.5)])
def test_resnet12_channels_must_be_four_positive_integers(bad):
    with pytest.raises(ValueError, match=r"channels must be 4 positive integers"):
        ResNet12(channels=bad)


def test_resnet12_refuses_images_under_16_pixels():
    with pytest.raises(ValueError, match="ResNet12 needs images of at least 16x16"):
        build_backbone("resnet12", (3, 15, 40), 64, {"channels": SMALL})
    model = build_backbone(
        "resnet12", (3, 16, 16), 64, {"channels": SMALL}, embedding_dim_is_default=True
    )
    assert output_shape(model, (3, 16, 16)) == (10,)


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


#: For each registered name: a sample shape it takes, its small-size arguments,
#: and the output size it gives with embedding_dim=8.
REGISTERED = {
    "conv4": ((1, 28, 28), {}, 8),
    "resnet12": ((3, 28, 28), {"channels": (4, 4, 4, 5)}, 5),
    "mlp": ((12,), {}, 8),
    "identity": ((12,), {}, 12),
}


def test_every_registered_name_is_specified_here():
    # "text" (a transformer loaded by name) is tested in tests/test_text.py.
    assert set(REGISTERED) | {"text"} == set(BACKBONES)


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_every_registered_name_builds_its_class(name):
    shape, params, size = REGISTERED[name]
    backbone = build_backbone(
        name, shape, embedding_dim=8, params=params, embedding_dim_is_default=True
    )
    assert type(backbone) is BACKBONES[name]
    assert embedding_size(backbone, shape) == size


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
    with pytest.warns(UserWarning, match="backbone_params sets out_features=9"):
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
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return self.scale * self.conv(x).mean((2, 3))


def test_a_class_gets_only_the_shape_arguments_its_signature_accepts():
    with pytest.warns(UserWarning, match="InFeaturesOnly"):
        model = build_backbone(InFeaturesOnly, (2, 3, 4), embedding_dim=99)
    assert type(model) is InFeaturesOnly
    assert model.in_features == 24
    assert model(torch.randn(5, 2, 3, 4)).shape == (5, 3)


def test_a_class_without_arguments_is_called_without_arguments():
    with pytest.warns(UserWarning, match="NoArguments"):
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
    built = build_backbone(original, (4,), embedding_dim=2)
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


def test_an_instance_is_used_as_it_is_whatever_embedding_dim():
    with pytest.warns(UserWarning, match="embedding_dim=99 does not apply"):
        built = build_backbone(MLP(in_features=4, out_features=2), (4,), 99)
    assert built(torch.randn(3, 4)).shape == (3, 2)


def test_an_instance_with_empty_params_is_accepted():
    built = build_backbone(NoArguments(), (4,), 2, params={})
    assert type(built) is NoArguments


# -- errors --------------------------------------------------------------------------


def test_unknown_name_is_a_value_error_listing_the_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown backbone 'resnet50'.*'conv4', 'identity', 'mlp', 'resnet12'",
    ):
        build_backbone("resnet50", (1, 28, 28), 64)


@pytest.mark.parametrize("name", ["conv4", "resnet12"])
@pytest.mark.parametrize("shape", [(20,), (4, 5)])
def test_an_image_backbone_for_non_image_samples_is_a_value_error(name, shape):
    cls = BACKBONES[name].__name__
    with pytest.raises(ValueError, match=rf"{cls} needs images X of shape \(n_samples"):
        build_backbone(name, shape, 64)


def test_instance_with_params_is_a_type_error():
    with pytest.raises(TypeError, match=r"not to a module instance"):
        build_backbone(MLP(4), (4,), 2, params={"hidden_dims": (3,)})


@pytest.mark.parametrize("bad", [42, int, torch.randn(3), lambda x: x])
def test_a_non_module_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"backbone must be None, a name in"):
        build_backbone(bad, (4,), 2)


def test_conv4_refuses_images_smaller_than_16_pixels():
    with pytest.raises(
        ValueError, match="Conv4 needs images of at least 16x16 pixels; got .* 8x12"
    ):
        build_backbone("conv4", (1, 8, 12), 64)
    assert build_backbone(None, (1, 16, 16), 64)(torch.zeros(2, 1, 16, 16)).shape == (
        2,
        64,
    )


# -- input limits, declared by the backbone class -------------------------------------


class Wide(ImageBackbone):
    """A backbone for images of at least 32x32: one class, no other edit."""

    min_image_size = 32

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class SquareOnly(ImageBackbone):
    """A backbone with a limit of its own: square images only."""

    @classmethod
    def check_input_shape(cls, input_shape):
        super().check_input_shape(input_shape)
        if input_shape[1] != input_shape[2]:
            raise ValueError(f"SquareOnly needs square images; got {input_shape}.")

    def __init__(self, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2, 1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def test_a_backbone_class_declares_its_minimum_image_size():
    with pytest.raises(ValueError, match="Wide needs images of at least 32x32"):
        build_backbone(Wide, (1, 28, 28), 4)
    assert embedding_size(build_backbone(Wide, (1, 32, 32), 4), (1, 32, 32)) == 4


def test_a_backbone_class_may_declare_limits_of_its_own():
    with pytest.raises(ValueError, match="SquareOnly needs square images"):
        build_backbone(SquareOnly, (1, 20, 24), 2)
    build_backbone(SquareOnly, (1, 20, 20), 2)


def test_the_limits_of_an_instance_class_are_checked_too():
    with pytest.raises(ValueError, match="Conv4 needs images of at least 16x16"):
        build_backbone(Conv4(in_channels=1), (1, 8, 8), 64)


# -- channels-last input ------------------------------------------------------------


@pytest.mark.parametrize("backbone", [None, "conv4", "resnet12", Wide])
@pytest.mark.parametrize("shape", [(28, 28, 1), (84, 84, 3), (32, 32, 4)])
def test_channels_last_images_are_named_with_the_transpose(backbone, shape):
    # today's message was "needs at least 16x16 pixels; got images of 28x1"
    with pytest.raises(ValueError, match=r"X looks channels-last") as error:
        build_backbone(backbone, shape, 64)
    assert "X.transpose(0, 3, 1, 2)" in str(error.value)
    assert "16x16" not in str(error.value)


def test_the_transpose_the_message_gives_is_the_right_one():
    X = np.random.default_rng(0).random((5, 28, 28, 3))
    with pytest.raises(ValueError, match=r"X\.transpose\(0, 3, 1, 2\)"):
        build_backbone("conv4", X.shape[1:], 64)
    fixed = X.transpose(0, 3, 1, 2)
    assert fixed.shape == (5, 3, 28, 28)
    np.testing.assert_array_equal(fixed[2, 1], X[2, :, :, 1])
    model = build_backbone("conv4", fixed.shape[1:], 64)
    assert model(torch.as_tensor(fixed, dtype=torch.float32)).shape == (5, 64)


def test_a_module_instance_on_channels_last_images_is_named_too():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"takes images of 1 channels.*channels-last"):
        build_backbone(net, (28, 28, 1), 4)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 84, 84), (3, 4, 4), (4, 28, 28)])
def test_channels_first_images_are_not_taken_for_channels_last(shape):
    net = nn.Sequential(
        nn.Conv2d(shape[0], 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    assert embedding_size(build_backbone(net, shape, 4), shape) == 4


# -- X's channels against the backbone's ----------------------------------------------


class RGBOnly(nn.Module):
    """A user's network for RGB images, with no in_channels argument."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.stem(x)).flatten(1)


@pytest.mark.parametrize(
    "backbone",
    [RGBOnly, RGBOnly(), Conv4(in_channels=3), ResNet12(in_channels=3, channels=SMALL)],
    ids=["class", "instance", "conv4", "resnet12"],
)
def test_a_backbone_for_rgb_on_grey_x_is_a_value_error_naming_both(backbone):
    with pytest.raises(
        ValueError, match=r"takes images of 3 channels .* but X's have 1"
    ) as error:
        build_backbone(backbone, (1, 28, 28), 8, embedding_dim_is_default=True)
    assert "np.repeat(X, 3, axis=1)" in str(error.value)
    assert isinstance(error.value.__cause__, RuntimeError)  # torch's, chained


def test_a_grey_backbone_on_rgb_x_suggests_the_mean_over_channels():
    with pytest.raises(ValueError, match=r"X.mean\(axis=1, keepdims=True\)"):
        build_backbone(Conv4(in_channels=1), (3, 28, 28), 64)


def test_a_mismatch_inside_the_network_is_not_blamed_on_x():
    # the first convolution takes X's 3 channels; the second is wired wrong
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(4, 8, 3), nn.Flatten())
    with pytest.raises(ValueError, match=r"Sequential cannot take samples") as error:
        build_backbone(net, (3, 28, 28), 8, embedding_dim_is_default=True)
    assert "X's have" not in str(error.value)


def test_a_failed_probe_leaves_the_module_as_it_was():
    net = RGBOnly().train()
    with pytest.raises(ValueError, match="X's have 1"):
        output_shape(net, (1, 28, 28))
    assert net.training
    assert all(not m._forward_pre_hooks for m in net.modules())
    assert output_shape(net, (3, 28, 28)) == (8,)


def test_a_tabular_backbone_of_another_width_is_a_value_error_with_torchs_reason():
    with pytest.raises(ValueError, match=r"Linear cannot take samples of shape \(4,\)"):
        build_backbone(nn.Linear(5, 3), (4,), 3)


# -- embedding_dim that cannot apply ------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "params", "reason"),
    [
        (RGBOnly(), None, "the RGBOnly instance given is used as it is"),
        (RGBOnly, None, "RGBOnly\\(\\) takes neither out_channels nor out_features"),
        ("resnet12", {"channels": SMALL}, "ResNet12\\(\\) takes neither"),
        ("conv4", {"out_channels": 8}, "backbone_params sets out_channels=8"),
        ("identity", None, "Identity\\(\\) takes neither"),
    ],
)
def test_an_embedding_dim_that_cannot_apply_is_a_warning_naming_the_output(
    backbone, params, reason
):
    shape = (3, 28, 28)
    with pytest.warns(UserWarning) as record:
        model = build_backbone(backbone, shape, 16, params)
    (warning,) = record
    message = str(warning.message)
    assert message.startswith("embedding_dim=16 does not apply to the backbone ")
    assert re.search(reason, message)
    assert f"has shape {output_shape(model, shape)}" in message


@pytest.mark.parametrize(
    ("backbone", "params"),
    [(RGBOnly(), None), (RGBOnly, None), ("resnet12", {"channels": SMALL})],
)
def test_no_warning_when_embedding_dim_was_left_at_its_default(backbone, params):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_backbone(backbone, (3, 28, 28), 16, params, embedding_dim_is_default=True)


@pytest.mark.parametrize(
    ("backbone", "params"),
    [(RGBOnly(), None), ("conv4", None), ("mlp", None), ("conv4", {"out_channels": 8})],
)
def test_no_warning_when_the_output_has_embedding_dim_features(backbone, params):
    # RGBOnly gives 8 features; conv4 and mlp are sized by embedding_dim
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_backbone(backbone, (3, 28, 28), 8, params)


@pytest.mark.parametrize(
    "name, params",
    [
        ("conv4", dict(in_channels=3, out_channels=8, hidden_channels=4)),
        ("resnet12", dict(in_channels=3, channels=(4, 4, 4, 8))),
    ],
)
def test_built_image_networks_run_in_channels_last_memory_to_the_same_values(
    name, params
):
    torch.manual_seed(0)
    built = build_backbone(name, (3, 20, 20), 8, params)
    convolutions = [m for m in built.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(
        c.weight.is_contiguous(memory_format=torch.channels_last) for c in convolutions
    )
    plain = type(built)(**params)
    plain.load_state_dict(built.state_dict())
    plain.eval(), built.eval()
    x = torch.rand(4, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(built(x), plain(x), rtol=1e-5, atol=1e-5)


def test_a_users_image_backbone_keeps_its_memory_layout():
    class Mine(ImageBackbone):  # its forward may view the maps as it likes
        def __init__(self, in_channels=1, out_channels=4):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 3)

        def forward(self, x):
            z = self.conv(x)
            return z.view(len(z), z.shape[1], -1).mean(2)

    built = build_backbone(Mine, (1, 8, 8), 4)
    assert built.conv.weight.is_contiguous()
    assert built(torch.rand(2, 1, 8, 8)).shape == (2, 4)
