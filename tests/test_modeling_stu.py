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
