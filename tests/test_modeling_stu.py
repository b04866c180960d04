"""STUModel: shapes at two resolutions, streaming equivalence, save/load, the graph module matters."""

import pytest
import torch

from apvg_hf.modeling_stu import STUModel, STUOutput

TINY = dict(block_channels=(8, 16, 16), graph_hidden=8)


def inputs(B=1, T=5, H=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(B, T, 116, H, H, generator=g),
        torch.rand(B, T, 3, 8, 8, generator=g),
        torch.rand(B, 3, H, H, generator=g),
    )


@pytest.fixture
def stu():
    torch.manual_seed(0)
    return STUModel(**TINY).eval()


@pytest.mark.parametrize("H", [128, 256])
def test_shapes_at_two_resolutions(H):
    model = STUModel(block_channels=(4, 8, 8, 8), graph_hidden=4).eval()
    with torch.no_grad():
        out = model(*inputs(B=1, T=1, H=H))
    assert isinstance(out, STUOutput)
    assert out.frames.shape == (1, 1, 3, H, H) and out.state.shape == (1, 8, H // 8, H // 8)
    assert out.frames.min() >= 0 and out.frames.max() <= 1


def test_streaming_equals_one_call(stu):
    hm, coarse, ref = inputs(T=7)
    with torch.no_grad():
        whole = stu(hm, coarse, ref)
        state, parts = None, []
        for t in range(7):  # one frame per call, state carried
            out = stu(hm[:, t : t + 1], coarse[:, t : t + 1], ref, state=state)
            parts.append(out.frames)
            state = out.state
    assert (torch.cat(parts, 1) - whole.frames).abs().max() <= 1e-5
    assert (state - whole.state).abs().max() <= 1e-5


def test_state_carries_time(stu):
    hm, coarse, ref = inputs(T=1)
    with torch.no_grad():
        a = stu(hm, coarse, ref).frames
        b = stu(hm, coarse, ref, state=torch.randn_like(stu(hm, coarse, ref).state)).frames
    assert not torch.allclose(a, b)


def test_tuple_output_and_save_load(stu, tmp_path):
    hm, coarse, ref = inputs()
    with torch.no_grad():
        d = stu(hm, coarse, ref)
        frames, state = stu(hm, coarse, ref, return_dict=False)
    assert torch.equal(d.frames, frames) and torch.equal(d.state, state)
    stu.save_pretrained(tmp_path / "stu")
    assert (tmp_path / "stu" / "diffusion_pytorch_model.safetensors").exists()
    loaded = STUModel.from_pretrained(tmp_path / "stu").eval()
    for k, v in stu.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    with torch.no_grad():
        assert torch.equal(loaded(hm, coarse, ref).frames, d.frames)
    stu.save_pretrained(tmp_path / "pipe" / "stu")
    sub = STUModel.from_pretrained(tmp_path / "pipe", subfolder="stu")

    def public(config):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}

    assert public(sub.config) == public(stu.config)
    assert all(torch.equal(v, sub.state_dict()[k]) for k, v in stu.state_dict().items())


def test_graph_module_changes_the_frames(stu):
    hm, coarse, ref = inputs()
    with torch.no_grad():
        before = stu(hm, coarse, ref).frames
        for p in stu.graph.parameters():
            p.zero_()
        after = stu(hm, coarse, ref).frames
    assert (before - after).abs().max() > 1e-4


def test_ablations_build_and_run():
    for kw in ({"use_graph": False}, {"use_gru": False}):
        model = STUModel(**TINY, **kw).eval()
        with torch.no_grad():
            assert model(*inputs(T=2)).frames.shape == (1, 2, 3, 32, 32)
    assert STUModel(**TINY, use_graph=False).graph is None


def test_bad_size_is_a_clear_error(stu):
    hm, coarse, ref = inputs(H=30)
    with pytest.raises(ValueError, match="multiples of 4"):
        stu(hm, coarse, ref)


LIGHT = dict(stem_kernel_size=1, skip_fusion="add")


@pytest.mark.parametrize("kw", [LIGHT, dict(LIGHT, top_convs=1), dict(skip_fusion="add")])
def test_light_variants_stream_and_save(kw, tmp_path):
    torch.manual_seed(0)
    model = STUModel(**TINY, **kw).eval()
    hm, coarse, ref = inputs(T=4)
    with torch.no_grad():
        whole = model(hm, coarse, ref)
        a = model(hm[:, :2], coarse[:, :2], ref)
        b = model(hm[:, 2:], coarse[:, 2:], ref, state=a.state)
    assert whole.frames.shape == (1, 4, 3, 32, 32)
    assert (torch.cat([a.frames, b.frames], 1) - whole.frames).abs().max() <= 1e-5
    model.save_pretrained(tmp_path / "stu")
    loaded = STUModel.from_pretrained(tmp_path / "stu").eval()
    assert loaded.config.skip_fusion == kw["skip_fusion"] and loaded.lateral is not None
    with torch.no_grad():
        assert torch.equal(loaded(hm, coarse, ref).frames, whole.frames)


def test_light_variant_needs_fewer_operations_at_full_resolution():
    """The released channel layout at 128: the pointwise stem and additive skips cut the multiply-adds
    (FLOP counter) by more than a third, nearly all of it at full resolution."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(**kw):
        model = STUModel(block_channels=(16, 32, 64, 128, 128), graph_hidden=32, **kw).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs(T=1, H=128))
        return counter.get_total_flops()

    base, light = flops(), flops(**LIGHT)
    assert light < 0.65 * base, (light, base)


def test_graph_module_fused_scatter_equals_concatenation(stu):
    """The graph module mixes the nodes before scattering them; the same as fuse(cat[features, scattered])."""
    import torch.nn.functional as F

    g = stu.graph
    torch.manual_seed(1)
    features, maps = torch.randn(2, 16, 16, 16), torch.rand(2, 56, 16, 16)
    with torch.no_grad():
        got = g(features, maps)
        weights = maps / maps.flatten(2).sum(-1)[..., None, None]
        x = F.silu(g.inp(torch.einsum("nkhw,nchw->nkc", weights, features)))
        for layer in g.gcn:
            x = x + F.silu(layer(g.adjacency @ x))
        scattered = torch.einsum("nkhw,nkc->nchw", maps, g.out(x))
        want = features + g.fuse(torch.cat([features, scattered], 1))
        got_cl = g(features.to(memory_format=torch.channels_last), maps)
    assert (got - want).abs().max() <= 1e-5
    assert (got_cl - want).abs().max() <= 1e-5


def test_top_convs_and_released_config_keep_their_layers():
    assert len(STUModel(**TINY, top_convs=1).up[-1]) == 3 and len(STUModel(**TINY).up[-1]) == 6
    # a config saved before the options existed loads as the architecture it was trained with
    from apvg_hf import default_pipeline_path

    model, info = STUModel.from_pretrained(f"{default_pipeline_path()}/stu", output_loading_info=True)
    assert not any(info.values()), info
    assert model.lateral is None and model.stem[0].kernel_size == (3, 3)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"stem_kernel_size": 5}, "stem_kernel_size"),
        ({"skip_fusion": "sum"}, "skip_fusion"),
        ({"top_convs": 0}, "top_convs"),
    ],
)
def test_bad_architecture_options_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        STUModel(**TINY, **kw)


def test_pixel_shuffle_streams_saves_and_takes_maps_at_its_map_resolution(tmp_path):
    """pixel_shuffle=2: maps and coarse frames at half the resolution, reference and frames at full."""
    torch.manual_seed(0)
    model = STUModel(**TINY, resolution=64, pixel_shuffle=2).eval()
    assert model.map_resolution == 32
    hm, coarse, _ = inputs(T=4, H=32)
    ref = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(hm, coarse, ref)
        a = model(hm[:, :1], coarse[:, :1], ref)
        b = model(hm[:, 1:], coarse[:, 1:], ref, state=a.state)
    assert whole.frames.shape == (1, 4, 3, 64, 64) and whole.state.shape == (1, 16, 8, 8)
    assert model.initial_state(1, 64, 64).shape == whole.state.shape
    assert (torch.cat([a.frames, b.frames], 1) - whole.frames).abs().max() <= 1e-5
    # keypoints in: the maps rendered at 32 into a (frames, K + L + 3 + 12, 32, 32) input
    kp = torch.rand(1, 4, 56, 2, generator=torch.Generator().manual_seed(2))
    assert model.render_heatmaps(kp).shape == (1, 4, 116, 32, 32)
    assert model.input_buffer(4, 64, 64).shape == (4, 116 + 3 + 12, 32, 32)
    rendered = model.render(kp, None, coarse, ref, batch_frames=3).frames
    assert rendered.shape == (1, 4, 3, 64, 64)
    with torch.no_grad():
        direct = model(model.render_heatmaps(kp), coarse, ref).frames
    assert (rendered - direct).abs().max() <= 1e-5
    model.save_pretrained(tmp_path / "stu")
    loaded = STUModel.from_pretrained(tmp_path / "stu").eval()
    assert loaded.config.pixel_shuffle == 2
    with torch.no_grad():
        assert torch.equal(loaded(hm, coarse, ref).frames, whole.frames)
    # the alpha starts high on every sub-pixel: a fresh model mostly copies the reference
    assert (model.to_rgb.bias[12:] == 2.0).all() and model.to_rgb.out_channels == 16


def test_upscaled_from_starts_as_the_smaller_stu_upsampled():
    """Where the reference is constant on 2 x 2 blocks, the upscaled STU's frames are the small STU's
    frames upsampled (nearest): the same network on the same maps, colour and alpha on every sub-pixel."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    small = STUModel(**TINY, resolution=32).eval()
    with torch.no_grad():
        for p in small.parameters():  # away from the init (alpha bias 2): every path matters
            p.add_(0.05 * torch.randn_like(p))
    big = STUModel.upscaled_from(small, 2).eval()
    assert big.config.resolution == 64 and big.config.pixel_shuffle == 2 and big.map_resolution == 32
    kp = torch.rand(1, 5, 56, 2, generator=torch.Generator().manual_seed(1))
    _, coarse, ref = inputs(T=5, H=32)
    a = small.render(kp, None, coarse, ref, batch_frames=2).frames[0]  # (T, 3, 32, 32)
    b = big.render(kp, None, coarse, F.interpolate(ref, scale_factor=2), batch_frames=5).frames[0]
    assert (b - F.interpolate(a, scale_factor=2, mode="nearest")).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="without pixel_shuffle"):
        STUModel.upscaled_from(big, 2)


def test_pixel_shuffle_at_256_costs_about_what_128_does():
    """The released channel layout: the 256 STU with pixel_shuffle=2 needs < 1.2x the multiply-adds of the
    128 STU (FLOP counter), a quarter of the plain 256 STU's."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(res, **kw):
        model = STUModel(block_channels=(16, 32, 64, 128, 128), graph_hidden=32, resolution=res, **kw).eval()
        m = model.map_resolution
        hm, coarse, _ = inputs(T=1, H=m)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(hm, coarse, torch.rand(1, 3, res, res))
        return counter.get_total_flops()

    at128, at256, shuffled = flops(128), flops(256), flops(256, pixel_shuffle=2)
    assert shuffled < 1.2 * at128 and shuffled < 0.3 * at256, (at128, at256, shuffled)


def test_pixel_shuffle_errors_are_clear():
    with pytest.raises(ValueError, match="pixel_shuffle"):
        STUModel(**TINY, pixel_shuffle=3)
    with pytest.raises(ValueError, match="multiple of pixel_shuffle"):
        STUModel(**TINY, resolution=36, pixel_shuffle=2)
    model = STUModel(**TINY, resolution=64, pixel_shuffle=2)
    hm, coarse, _ = inputs(T=1, H=32)
    with pytest.raises(ValueError, match="multiple of pixel_shuffle"):
        model(hm, coarse, torch.rand(1, 3, 63, 63))
