"""STU: Structured Temporal UNet (stage 2 of APVG): heatmaps + coarse frame + reference -> frames.

    per frame t:  [heatmaps_t (K+L maps), coarse_t (upsampled), reference]   (B, C_in, H, W)
      -> encoder (stride-2 conv blocks)                  skips at H, H/2, ..., H/2^(n-1)
      -> graph structure module at one encoder level: per-keypoint features pooled with the keypoint
         heatmaps as weights -> graph convolutions over the skeleton -> scattered back with the same
         heatmaps and fused into the feature map (intra-frame structure)
      -> ConvGRU at the bottleneck, state carried from frame t-1 (temporal consistency)
      -> decoder with skips -> colour + alpha: frame_t = alpha * reference + (1 - alpha) * colour
         (the scene behind the performer is copied from the reference, not redrawn every frame)

With `pixel_shuffle=p` > 1 the network runs at resolution / p (ESPCN's sub-pixel convolution): the maps
and the coarse frame enter at that size, the reference pixel-unshuffled (3 p^2 channels), and the colour
and alpha leave as p^2 sub-pixels each, shuffled back to full resolution, where the reference is blended
in. A 256 STU then costs about what a 128 one does (`scripts/benchmark.py stu`).

The GRU state is explicit (`forward(..., state) -> STUOutput(frames, state)`), so a pipeline can
stream any length in chunks and get exactly the one-call result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .heatmaps import DEFAULT_LIMB_SIGMA, DEFAULT_SIGMA, keypoints_to_heatmaps
from .hub import model_card, push_object
from .skeleton import BONES, NUM_KEYPOINTS, adjacency_matrix


@dataclass
class STUOutput(BaseOutput):
    """Output of [`STUModel`].

    Args:
        frames: (B, T, 3, H, W) in [0, 1].
        state: the ConvGRU state after the last frame, (B, C, h, w); pass it to the next call.
    """

    frames: torch.Tensor
    state: torch.Tensor | None = None  # a default lets it be rebuilt from a dict (accelerate's fp32 outputs)


def _block(cin: int, cout: int, stride: int = 1, convs: int = 2, first_kernel: int = 3) -> nn.Sequential:
    """`convs` (conv -> GroupNorm -> SiLU) layers, the first strided; the first kernel 3 or 1 (pointwise)."""
    layers = []
    for i in range(convs):
        k = first_kernel if i == 0 else 3
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, k, stride=stride if i == 0 else 1, padding=k // 2),
            nn.GroupNorm(min(8, cout), cout),
            nn.SiLU(),
        ]
    return nn.Sequential(*layers)


SKIP_FUSIONS = ("concat", "add")


def map_resolution(config) -> int:
    """The size of an STU's input maps (its network's top level) from its config: resolution / pixel_shuffle."""
    return config.resolution // config.get("pixel_shuffle", 1)


class GraphStructureModule(nn.Module):
    """Heatmap-weighted pooling -> graph convolutions over the skeleton -> heatmap scatter, fused."""

    def __init__(self, channels: int, hidden: int, layers: int = 2):
        super().__init__()
        self.register_buffer("adjacency", torch.from_numpy(adjacency_matrix()), persistent=False)
        self.inp = nn.Linear(channels, hidden)
        self.gcn = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(layers)])
        self.out = nn.Linear(hidden, channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, features: torch.Tensor, keypoint_maps: torch.Tensor) -> torch.Tensor:
        """features (N, C, h, w), keypoint_maps (N, K, h, w) >= 0 -> (N, C, h, w)."""
        weights = keypoint_maps / keypoint_maps.flatten(2).sum(-1)[..., None, None].clamp_min(1e-6)
        nodes = torch.einsum("nkhw,nchw->nkc", weights, features)  # (N, K, C) pooled per keypoint
        x = F.silu(self.inp(nodes))
        for layer in self.gcn:
            x = x + F.silu(
                layer(self.adjacency.to(x.dtype) @ x)
            )  # (N, K, hidden): message passing along bones
        # fuse(cat[features, scattered]) with scattered = sum_k map_k * out_k, computed as
        # conv(features, W_f) + sum_k map_k * (W_s out_k): the nodes are mixed before they are scattered back,
        # with no (N, 2C, h, w) concatenation and the result in the features' channels-last layout.
        # (`self.fuse` holds the weights but is not called: hooks or wrappers on it would not run.)
        C = features.shape[1]
        w = self.fuse.weight[:, :, 0, 0]  # (C, 2C)
        mixed = self.out(x) @ w[:, C:].T  # (N, K, C) nodes, mixed as the fuse conv's second half would
        scattered = torch.einsum("nkhw,nkc->nhwc", keypoint_maps, mixed).permute(0, 3, 1, 2)  # (N, C, h, w)
        return features + F.conv2d(features, self.fuse.weight[:, :C], self.fuse.bias) + scattered


class ConvGRU(nn.Module):
    """Convolutional GRU cell: h_t = (1 - z) h_{t-1} + z tanh(W [x, r h_{t-1}])."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel_size, padding=kernel_size // 2)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        c = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * c


class STUModel(ModelMixin, ConfigMixin):
    r"""Structured Temporal UNet: keypoint heatmaps, coarse frames and a reference frame -> video frames.

    >>> import torch
    >>> from apvg_hf.modeling_stu import STUModel
    >>> stu = STUModel(block_channels=(8, 16, 16), graph_hidden=8).eval()
    >>> hm = torch.rand(1, 4, 56 + 60, 32, 32)                      # (B, T, K+L, H, W)
    >>> out = stu(hm, torch.rand(1, 4, 3, 8, 8), torch.rand(1, 3, 32, 32))
    >>> tuple(out.frames.shape), tuple(out.state.shape)
    ((1, 4, 3, 32, 32), (1, 16, 8, 8))
    """

    card_kind = "stu"  # for apvg_hf.hub.model_card
    card_summary = (
        "Stage 2 of APVG: keypoint heatmaps + coarse frames + an appearance reference -> video frames "
        "(graph structure module + ConvGRU temporal module)."
    )

    @register_to_config
    def __init__(
        self,
        num_keypoints: int = NUM_KEYPOINTS,
        num_limbs: int = len(BONES),
        block_channels: tuple[int, ...] = (32, 64, 128, 256),
        graph_level: int = 1,
        graph_hidden: int = 64,
        graph_layers: int = 2,
        use_graph: bool = True,
        use_gru: bool = True,
        blend_reference: bool = True,
        resolution: int = 128,
        heatmap_sigma: float = DEFAULT_SIGMA,
        limb_sigma: float = DEFAULT_LIMB_SIGMA,
        stem_kernel_size: int = 3,
        skip_fusion: str = "concat",
        top_convs: int = 2,
        pixel_shuffle: int = 1,
    ):
        super().__init__()
        for key, value, allowed in (
            ("stem_kernel_size", stem_kernel_size, (1, 3)),
            ("top_convs", top_convs, (1, 2)),
            ("pixel_shuffle", pixel_shuffle, (1, 2, 4)),
        ):
            if type(value) is not int or value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        if skip_fusion not in SKIP_FUSIONS:
            raise ValueError(f"skip_fusion must be one of {SKIP_FUSIONS}, got {skip_fusion!r}")
        if resolution % (pixel_shuffle * 2 ** (len(block_channels) - 1)):
            raise ValueError(
                f"resolution {resolution} must be a multiple of pixel_shuffle x 2^(levels - 1) = "
                f"{pixel_shuffle * 2 ** (len(block_channels) - 1)}"
            )
        p2 = pixel_shuffle**2
        cin = num_keypoints + num_limbs + 3 + 3 * p2  # heatmaps, coarse frame, reference (unshuffled)
        chans = list(block_channels)
        # The full-resolution layers cost the most per channel: stem_kernel_size=1 mixes the K + L + 6 inputs
        # with a 1x1 conv before the 3x3 one (at 128: 0.29 -> 0.03 GMAC for the stem's first layer).
        self.stem = _block(cin, chans[0], first_kernel=stem_kernel_size)
        self.down = nn.ModuleList([_block(chans[i], chans[i + 1], stride=2) for i in range(len(chans) - 1)])
        self.graph = (
            GraphStructureModule(chans[graph_level], graph_hidden, graph_layers) if use_graph else None
        )
        self.gru = ConvGRU(chans[-1]) if use_gru else None
        # Decoder, coarse to fine. "concat": upsample, concatenate the skip, 3x3 convs on both; "add": a 1x1
        # conv brings the coarser features to the skip's width at the coarse level, upsampled and added
        # (the 3x3 convs see c_i channels, not c_i + c_(i+1)). The full-resolution block has `top_convs`.
        levels = list(reversed(range(len(chans) - 1)))
        add = skip_fusion == "add"
        self.lateral = nn.ModuleList([nn.Conv2d(chans[i + 1], chans[i], 1) for i in levels]) if add else None
        self.up = nn.ModuleList(
            [
                _block(
                    chans[i] if add else chans[i + 1] + chans[i], chans[i], convs=top_convs if i == 0 else 2
                )
                for i in levels
            ]
        )
        # colour (+ alpha), p^2 sub-pixels each: channel c * p^2 + i * p + j is (c, y p + i, x p + j)
        self.to_rgb = nn.Conv2d(chans[0], (4 if blend_reference else 3) * p2, 3, padding=1)
        if blend_reference:  # start by mostly copying the reference: alpha = sigmoid(2) = 0.88
            with torch.no_grad():
                self.to_rgb.bias[3 * p2 :].fill_(2.0)

    @classmethod
    def upscaled_from(cls, stu: STUModel, factor: int = 2) -> STUModel:
        """A pixel-shuffle STU at `factor` x `stu`'s resolution that starts where `stu` is: the same network
        on the same maps, the reference entering averaged over each factor x factor block (its unshuffled
        channels share the weight), colour and alpha repeated to every sub-pixel (nearest upsampling),
        blended with the full-resolution reference. Where the reference is constant on those blocks, its
        frames are `stu`'s upsampled (nearest). The starting point for training at 256 from a 128 STU.

        >>> small = STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32)
        >>> big = STUModel.upscaled_from(small, 2)
        >>> big.config.resolution, big.config.pixel_shuffle, big.map_resolution
        (64, 2, 32)
        """
        c = {k: v for k, v in stu.config.items() if not k.startswith("_")}
        if c.get("pixel_shuffle", 1) != 1:
            raise ValueError(f"upscaled_from needs an STU without pixel_shuffle, got {c['pixel_shuffle']}")
        new = cls(**c | {"resolution": c["resolution"] * factor, "pixel_shuffle": factor})
        f2, C = factor * factor, c["num_keypoints"] + c["num_limbs"]
        sd = dict(stu.state_dict())  # load_state_dict copies: stu's own tensors are not changed
        w = sd["stem.0.weight"]  # (c0, K + L + 6, k, k): the reference's 3 channels last
        sd["stem.0.weight"] = torch.cat([w[:, : C + 3], w[:, C + 3 :].repeat_interleave(f2, 1) / f2], 1)
        sd["to_rgb.weight"] = sd["to_rgb.weight"].repeat_interleave(f2, 0)  # channel c -> c f2 + k
        sd["to_rgb.bias"] = sd["to_rgb.bias"].repeat_interleave(f2, 0)
        new.load_state_dict(sd)  # float32, whatever stu's dtype
        return new.to(stu.device)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload with a generated model card (see `apvg_hf.hub.push_folder` for the arguments)."""
        return push_object(self, repo_id, model_card(self, repo_id), **kwargs)

    def render_heatmaps(
        self, keypoints: torch.Tensor, visibility: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Keypoints (..., K, 2) in [0, 1] (+ visibility (..., K)) -> this model's input maps
        (..., K + L, R, R) at its `map_resolution` R (resolution / pixel_shuffle), with the Gaussian widths
        it was trained with (written into `out`, (M, K + L, R, R) in any layout, when given).

        Rendered sparsely (`keypoints_to_heatmaps(method="fast")`: only the tiles near each keypoint and
        bone; equal to the dense maps within 1.5e-8) at a few percent of the dense maps' cost."""
        c = self.config
        return keypoints_to_heatmaps(
            keypoints,
            self.map_resolution,
            visibility=visibility,
            sigma=c.heatmap_sigma,
            limb_sigma=c.limb_sigma,
            method="fast",
            out=out,
        )

    @property
    def map_resolution(self) -> int:
        """The size of the input maps and of the network's top level: resolution / pixel_shuffle."""
        return map_resolution(self.config)

    def initial_state(
        self, batch_size: int, height: int, width: int, device=None, dtype=None
    ) -> torch.Tensor:
        """Zeros for the GRU state of frames height x width (the output frames' size)."""
        s = 2 ** (len(self.config.block_channels) - 1) * self.config.pixel_shuffle
        c = self.config.block_channels[-1]
        return torch.zeros(batch_size, c, height // s, width // s, device=device, dtype=dtype)

    def forward(
        self,
        heatmaps: torch.Tensor,
        coarse: torch.Tensor,
        reference: torch.Tensor,
        state: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> STUOutput | tuple:
        r"""
        Args:
            heatmaps: (B, T, K + L, H / p, W / p) keypoint and limb maps (`render_heatmaps`), in [0, 1],
                p = pixel_shuffle.
            coarse: (B, T, 3, h, w) coarse frames in [0, 1] (any size; upsampled to H / p × W / p).
            reference: (B, 3, H, W) one frame of the performer and scene, in [0, 1]: the output's size.
            state: (B, C, H / (p 2^n), W / (p 2^n)) GRU state from the previous call (zeros when None).
        """
        B, T = heatmaps.shape[:2]
        x = self.assemble_inputs(heatmaps.flatten(0, 1), coarse, reference)  # (BT, Cin, H / p, W / p)
        frames, state = self.run(x, B, T, state)
        if not return_dict:
            return frames, state
        return STUOutput(frames=frames, state=state)

    def input_buffer(self, frames: int, height: int, width: int, device=None, dtype=None) -> torch.Tensor:
        """An empty (frames, K + L + 3 + 3 p^2, H / p, W / p) input for output frames H x W, in the layout
        the convolutions want, channels-last (oneDNN's fast path on CPU, tensor cores' on GPU;
        `iter_render` puts the weights in it too), where the maps can be rendered in place
        (`keypoints_to_heatmaps(out=)`)."""
        c = self.config
        p = c.pixel_shuffle
        shape = (frames, c.num_keypoints + c.num_limbs + 3 + 3 * p * p, height // p, width // p)
        return torch.empty(shape, device=device, dtype=dtype, memory_format=torch.channels_last)

    def assemble_inputs(
        self,
        heatmaps: torch.Tensor | None,
        coarse: torch.Tensor,
        reference: torch.Tensor,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's input (B·T, K + L + 3 + 3 p^2, H / p, W / p): heatmaps (B·T, K + L, H / p, W / p)
        (None: already in `out`), the coarse frames (B, T, 3, h, w) upsampled, the reference (B, 3, H, W)
        pixel-unshuffled and repeated."""
        B, T = coarse.shape[:2]
        p = self.config.pixel_shuffle
        H, W = reference.shape[-2:]
        if H % p or W % p:
            raise ValueError(f"the reference's size {H} x {W} must be a multiple of pixel_shuffle = {p}")
        C = self.config.num_keypoints + self.config.num_limbs
        if out is None:
            dtype = reference.dtype if heatmaps is None else heatmaps.dtype
            out = self.input_buffer(B * T, H, W, reference.device, dtype)
        if heatmaps is not None:
            out[:, :C] = heatmaps
        # One copy of each part into place: a torch.cat and the conversion to channels-last cost about a
        # third of the STU's time at 256.
        out[:, C : C + 3] = F.interpolate(
            coarse.flatten(0, 1).float(), size=(H // p, W // p), mode="bilinear", align_corners=False
        )
        ref = F.pixel_unshuffle(reference, p) if p > 1 else reference  # (B, 3 p^2, H / p, W / p)
        out[:, C + 3 :] = ref[:, None].expand(B, T, *ref.shape[1:]).flatten(0, 1)
        return out

    def run(
        self, x: torch.Tensor, batch_size: int, frames: int, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on assembled inputs x (B·T, Cin, H / p, W / p) -> frames (B, T, 3, H, W), GRU state."""
        B, T = batch_size, frames
        p = self.config.pixel_shuffle
        H, W = x.shape[-2] * p, x.shape[-1] * p
        s = 2 ** (len(self.config.block_channels) - 1)
        if x.shape[-2] % s or x.shape[-1] % s:
            raise ValueError(f"height and width must be multiples of {s * p}, got {H} x {W}")
        C = self.config.num_keypoints + self.config.num_limbs
        ref = x[:, C + 3 :]  # (BT, 3 p^2, H / p, W / p)
        skips = [self.stem(x)]
        for i, down in enumerate(self.down):
            h = skips[-1]
            if self.graph is not None and i == self.config.graph_level:
                h = self._structure(h, x)
            skips.append(down(h))
        if self.graph is not None and self.config.graph_level == len(self.down):
            skips[-1] = self._structure(skips[-1], x)

        bottom = skips[-1]  # (BT, C, H/s, W/s)
        if state is None:
            state = self.initial_state(B, H, W, bottom.device, bottom.dtype)
        if self.gru is not None:
            seq = bottom.view(B, T, *bottom.shape[1:])
            outs = []
            for t in range(T):  # the temporal module: state carried frame to frame
                state = self.gru(seq[:, t], state)
                outs.append(state)
            bottom = torch.stack(outs, 1).flatten(0, 1)

        y = bottom
        for i, (block, skip) in enumerate(zip(self.up, reversed(skips[:-1]))):
            if self.lateral is not None:  # "add": narrowed at the coarse level, upsampled, added
                y = F.interpolate(self.lateral[i](y), size=skip.shape[-2:], mode="nearest") + skip
            else:  # "concat": upsampled, concatenated
                y = torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="nearest"), skip], dim=1)
            y = block(y)
        # (BT, (3 [+ 1]) p^2, H / p, W / p); composited in float32 under autocast too
        out = self.to_rgb(y).float()
        if p > 1:  # sub-pixels to full resolution: (BT, 3 [+ 1], H, W)
            out, ref = F.pixel_shuffle(out, p), F.pixel_shuffle(ref, p)
        frames = torch.sigmoid(out[:, :3])
        if self.config.blend_reference:
            alpha = torch.sigmoid(out[:, 3:])
            frames = alpha * ref.float() + (1 - alpha) * frames
        return frames.view(B, T, 3, H, W), state

    @torch.no_grad()
    def iter_render(
        self,
        keypoints: torch.Tensor | None,
        visibility: torch.Tensor | None,
        coarse: torch.Tensor,
        reference: torch.Tensor,
        state: torch.Tensor | None = None,
        batch_frames: int = 4,
        autocast_dtype: torch.dtype | None = None,
        heatmaps: torch.Tensor | None = None,
        clock=None,
    ) -> Iterator[STUOutput]:
        """Inference over a clip, `batch_frames` frames per step with the GRU state carried: yields one
        [`STUOutput`] per step (frames (B, m, 3, R, R) float32 in [0, 1] on the CPU, and the state to
        pass on). Together they are the one-call result, with the heatmaps of only one step in memory.

        Args:
            keypoints: (B, n, K, 2) in [0, 1]; visibility: (B, n, K) probabilities or None;
                or `heatmaps` (B, n, K + L, R / p, R / p) rendered already (then both may be None).
            coarse: (B, n, 3, s, s) in [0, 1]; reference: (B, 3, R, R) in [0, 1].
            state: the GRU state from the previous call (None: the start of a performance).
            autocast_dtype: e.g. torch.bfloat16 to run the network under autocast.
            clock: optional profiler with `lap(name)` ("heatmaps", "stu").
        """
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.eval()
        # NHWC weights: oneDNN's fast convolutions on CPU (about 1.2-1.35x at 128 and 256, fp32 and bf16;
        # scripts/benchmark.py). Values are unchanged; save_pretrained writes them contiguous as before.
        self.to(memory_format=torch.channels_last)
        dev, dt = self.device, self.dtype
        n = (heatmaps if heatmaps is not None else keypoints).shape[1]
        reference = reference.to(dev, dt)
        R = reference.shape[-1]
        buffer = None  # the step's assembled input, reused: memory stays flat however long the clip
        for c in range(0, n, batch_frames):
            sl = slice(c, c + batch_frames)
            co = coarse[:, sl].to(dev, dt)  # (B, m, 3, s, s)
            B, m = co.shape[:2]
            if buffer is None or len(buffer) != B * m:
                buffer = self.input_buffer(B * m, R, R, dev, dt)
            if heatmaps is not None:
                x = self.assemble_inputs(heatmaps[:, sl].to(dev, dt).flatten(0, 1), co, reference, out=buffer)
            else:  # the maps rendered straight into the input (no copy, no layout conversion)
                kp = keypoints[:, sl].to(dev).flatten(0, 1)  # (B·m, K, 2)
                vis = None if visibility is None else visibility[:, sl].to(dev).flatten(0, 1)
                C = self.config.num_keypoints + self.config.num_limbs
                self.render_heatmaps(kp, vis, out=buffer[:, :C])
                x = self.assemble_inputs(None, co, reference, out=buffer)
            if clock is not None:
                clock.lap("heatmaps")
            with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                frames, state = self.run(x, B, m, state)
            frames = frames.float().cpu()
            if clock is not None:
                clock.lap("stu")
            yield STUOutput(frames=frames, state=state)

    def render(self, keypoints, visibility, coarse, reference, state=None, batch_frames: int = 4, **kwargs):
        """The whole of `iter_render` at once: [`STUOutput`] with frames (B, n, 3, R, R) and the last state.

        >>> import torch
        >>> stu = STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32)
        >>> kp, co, ref = torch.rand(1, 9, 56, 2), torch.rand(1, 9, 3, 8, 8), torch.rand(1, 3, 32, 32)
        >>> a, b = stu.render(kp, None, co, ref, batch_frames=9), stu.render(kp, None, co, ref, batch_frames=2)
        >>> tuple(a.frames.shape), torch.allclose(a.frames, b.frames, atol=1e-5)
        ((1, 9, 3, 32, 32), True)
        """
        outs = list(self.iter_render(keypoints, visibility, coarse, reference, state, batch_frames, **kwargs))
        if not outs:
            raise ValueError("nothing to render: no frames")
        return STUOutput(frames=torch.cat([o.frames for o in outs], 1), state=outs[-1].state)

    def _structure(self, features: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """features (BT, C, h, w), the assembled inputs (BT, Cin, H, W): the keypoint maps come first."""
        K = self.config.num_keypoints
        (H, W), (h, w) = inputs.shape[-2:], features.shape[-2:]
        # Pooled whole, then sliced: the channel slice of a channels-last input is not contiguous, and
        # pooling it alone copies it first (4x slower at 256; the same means).
        if (h, w) == (H, W):
            maps = inputs[:, :K]
        elif H % h == 0 and W % w == 0 and H // h == W // w:
            maps = F.avg_pool2d(inputs, H // h)[:, :K]
        else:
            maps = F.adaptive_avg_pool2d(inputs, (h, w))[:, :K]
        return self.graph(features, maps.to(features.dtype))
