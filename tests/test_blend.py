"""N-way interpolation: against a hand computation, exactness at the ends, buffers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dni.blend import EXACT_EVERY, Blender, interpolate
from dni.errors import IncompatibleModels, WeightsError


class NormNet(nn.Module):
    """Conv + BatchNorm (float running stats, integer counter) + InstanceNorm affine."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.inorm(torch.relu(self.bn(self.conv(x)))))


def member_states(count: int) -> list[dict[str, torch.Tensor]]:
    states = []
    for seed in range(count):
        torch.manual_seed(seed)
        net = NormNet()
        with torch.no_grad():
            net.bn.running_mean.normal_()
            net.bn.running_var.uniform_(0.5, 2.0)
            net.bn.num_batches_tracked.fill_(100 + seed)
            net.inorm.weight.normal_()
        states.append(net.state_dict())
    return states


def live_model(states: list[dict[str, torch.Tensor]]) -> tuple[NormNet, Blender]:
    model = NormNet().eval()
    model.load_state_dict(states[0])
    return model, Blender(model, states)


def test_three_way_blend_matches_hand_computation() -> None:
    states = member_states(3)
    model, blender = live_model(states)
    w = (0.2, 0.5, 0.3)
    blender.set_weights(w)
    live = model.state_dict()
    for key, first in states[0].items():
        if first.is_floating_point():
            expected = sum(wi * sd[key].double() for wi, sd in zip(w, states, strict=True))
            torch.testing.assert_close(live[key].double(), expected, rtol=1e-6, atol=1e-6)
        else:  # integer buffers are not interpolated: they stay the first member's
            assert torch.equal(live[key], first)
    # the running statistics really are blended
    hand = 0.2 * states[0]["bn.running_var"] + 0.5 * states[1]["bn.running_var"] \
        + 0.3 * states[2]["bn.running_var"]
    torch.testing.assert_close(model.bn.running_var, hand)


def test_two_way_blend_and_functional_interpolate_agree() -> None:
    states = member_states(2)
    model, blender = live_model(states)
    blender.set_weights([0.35, 0.65])
    reference = interpolate(states, [0.35, 0.65])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_exact_member_gives_bit_identical_output(index: int) -> None:
    states = member_states(3)
    model, blender = live_model(states)
    blender.set_weights([0.3, 0.3, 0.4])  # leave the live weights elsewhere first
    blender.set_weights([float(i == index) for i in range(3)])
    plain = NormNet().eval()
    plain.load_state_dict(states[index])
    x = torch.rand(1, 3, 17, 19)
    with torch.inference_mode():
        assert torch.equal(model(x), plain(x))


def test_cache_returns_the_same_weights() -> None:
    states = member_states(3)
    model, blender = live_model(states)
    blender.set_weights([0.1, 0.2, 0.7])
    first = {k: v.clone() for k, v in model.state_dict().items()}
    blender.set_weights([0.5, 0.5, 0.0])
    blender.set_weights([0.1, 0.2, 0.7])  # served from the cache
    for key, value in model.state_dict().items():
        assert torch.equal(value, first[key])


def test_parameters_stay_the_same_objects() -> None:
    """Optimisers and hooks keep working: the blender rebinds storage, not Parameters."""
    states = member_states(2)
    model = NormNet().eval()
    before = [id(p) for p in model.parameters()]
    Blender(model, states).set_weights([0.5, 0.5])
    assert [id(p) for p in model.parameters()] == before


def test_float64_and_float32_groups() -> None:
    states = member_states(2)
    model = NormNet().eval()
    model.out.double()
    states = [{k: (v.double() if k.startswith("out.") else v) for k, v in sd.items()}
              for sd in states]
    blender = Blender(model, states)
    blender.set_weights([0.25, 0.75])
    assert model.out.weight.dtype == torch.float64
    expected = 0.25 * states[0]["out.weight"] + 0.75 * states[1]["out.weight"]
    torch.testing.assert_close(model.out.weight, expected)


@pytest.mark.parametrize("weights, message", [
    ([0.5, 0.6], "sum to 1"),
    ([-0.1, 1.1], "negative"),
    ([float("nan"), 1.0], "finite"),
    ([1.0], "give 2 weights"),
])
def test_bad_weights_are_refused(weights: list[float], message: str) -> None:
    states = member_states(2)
    _, blender = live_model(states)
    with pytest.raises(WeightsError, match=message):
        blender.set_weights(weights)
    with pytest.raises(WeightsError, match=message):
        interpolate(states, weights)


def test_mismatched_members_name_the_first_bad_tensor() -> None:
    a, b = member_states(2)
    b["conv.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(IncompatibleModels, match="conv.weight"):
        interpolate([a, b], [0.5, 0.5])
    del b["out.bias"]
    with pytest.raises(IncompatibleModels, match="out.bias"):
        interpolate([a, b], [0.5, 0.5])


def test_a_new_blender_starts_as_the_first_member() -> None:
    states = member_states(2)
    model = NormNet().eval()
    blender = Blender(model, states)
    assert blender.current == (1.0, 0.0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, states[0][key])


def test_channels_last_layout_keeps_values_and_is_channels_last() -> None:
    states = member_states(3)
    model = NormNet().eval()
    blender = Blender(model, states, channels_last=True)
    blender.set_weights([0.2, 0.3, 0.5])
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference = interpolate(states, [0.2, 0.3, 0.5])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=1e-6, atol=1e-7)
    blender.set_weights([0.0, 1.0, 0.0])
    plain = NormNet().eval()
    plain.load_state_dict(states[1])
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)),
                                   plain(x), rtol=1e-5, atol=1e-5)


def _assert_at(model: nn.Module, states: list[dict[str, torch.Tensor]], t: float,
               ulps: float) -> None:
    """Live float tensors equal (1 - t) A + t B to within `ulps` units of their scale."""
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            exact = (1 - t) * states[0][key].double() + t * states[1][key].double()
            scale = exact.abs().max().clamp_min(1e-30)
            err = (value.double() - exact).abs().max() / scale
            assert err <= ulps * torch.finfo(value.dtype).eps, (key, float(err))


def test_a_slider_drag_steps_in_place_and_stays_exact_to_a_few_ulps() -> None:
    states = member_states(2)
    model, blender = live_model(states)
    blender.set_weights([0.9, 0.1])  # a jump onto the pair: one exact lerp, no deltas yet
    assert blender._deltas is None
    ts = torch.rand(200, generator=torch.Generator().manual_seed(0)).tolist()
    for t in ts:
        blender.set_weights([1 - t, t])
        _assert_at(model, states, t, ulps=2 * EXACT_EVERY)
    assert blender._deltas is not None  # the drag kept B - A and stepped along it
    blender.set_weights([0.0, 1.0])  # a member is still bit for bit, after any drag
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, states[1][key])


def test_in_place_steps_are_bounded_by_periodic_exact_lerps(monkeypatch) -> None:
    states = member_states(2)
    model, blender = live_model(states)
    lerps = []
    real_lerp = torch.lerp
    monkeypatch.setattr(torch, "lerp", lambda *a, **k: (lerps.append(1), real_lerp(*a, **k))[1])
    moves = 3 * (EXACT_EVERY + 1)
    for k in range(moves):
        t = 0.05 + 0.9 * k / moves
        blender.set_weights([1 - t, t])
    groups = len(blender._groups)
    assert len(lerps) == 3 * groups  # one exact lerp, then EXACT_EVERY steps, and again


def test_half_precision_groups_always_lerp() -> None:
    states = [{k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
              for sd in member_states(2)]
    model = NormNet().eval().half()
    blender = Blender(model, states)
    for t in (0.2, 0.4, 0.6):
        blender.set_weights([1 - t, t])
        expected = torch.lerp(states[0]["conv.weight"], states[1]["conv.weight"], t)
        assert torch.equal(model.conv.weight, expected)
    assert blender._deltas is None
