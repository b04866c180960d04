"""KHP: audio features -> per-frame keypoints, visibility and a coarse frame (stage 1 of APVG).

Two architectures (`KHPConfig.architecture`). "notes" hears the notes, then plays them:

    input_features (B, T, F) -> KHPTranscriber -> note logits (B, T, 88, 3): onset, sustain, velocity
      -> decoded into notes -> piano roll (B, T, 88, 3)   (or a piano roll given: MIDI, a note list)
    piano roll + the keyboard's key quads in the reference frame (B, 88, 4, 2) -> KHPKeyboard:
      a note embedding per frame (B, T, D) and per-key activity features
      -> the trunk below (convolutions, reference, local-attention layers)
      -> heads as below, except the ten fingertips: a soft choice of key each (its centre) + an offset

"audio" (the first models) maps audio to motion directly:

    input_features (B, T, F)
      -> front end: LayerNorm, Linear, 2 x Conv1d (residual)            (B, T, D)
      + optional reference: keypoints (B, K, 2) and a frame (B, 3, s, s) of the performer in the
        target scene, embedded and added to every frame (a learned "none" embedding otherwise)
      -> N x local-attention transformer layers (±attention_window,
         relative position bias, so any chunk of a long input gives the same result)
      -> heads: keypoints (B, T, K, 2) in [0, 1], visibility logits (B, T, K),
                coarse frames (B, T, 3, h, w) in [0, 1]

The loss (when targets are given) combines masked coordinate L1, a heatmap-space term through the
differentiable `keypoints_to_heatmaps`, bone-length consistency, velocity, visibility BCE and L1 on
the coarse frames, and for "notes" the transcription loss and the fingertip pointer's cross-entropy;
the weights live in the config.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from .configuration_khp import KHPConfig
from .hand_anchor import anchor_hands, note_anchors
from .heatmaps import heatmap_distance
from .hub import model_card, push_object
from .piano_roll import LOWEST_PITCH, NUM_KEYS, decode_roll, is_black_key, notes_to_roll, roll_to_notes
from .skeleton import BONES, FINGERTIPS, HAND_INDICES

logger = logging.get_logger(__name__)

_HAND = sorted(i for h in HAND_INDICES.values() for i in h)
_TIPS = [i for h in ("left", "right") for i in FINGERTIPS[h]]  # the ten fingertips


@dataclass
class KHPOutput(ModelOutput):
    """Output of [`KHPModel`].

    Args:
        loss: total loss (when targets are given).
        keypoints: (B, T, K, 2) normalised (x, y) in [0, 1].
        visibility_logits: (B, T, K); sigmoid gives the probability a keypoint is visible.
        coarse_frames: (B, T, 3, h, w) in [0, 1] (or (B, N, 3, h, w) for `coarse_frame_indices`).
        last_hidden_state: (B, T, D) encoder output (of the motion decoder for "notes").
        loss_terms: (8,) the unweighted loss terms, in `KHPModel.loss_names` order.
        note_logits: (B, T, 88, 3) transcription logits (onset, sustain, velocity), "notes" only.
    """

    loss: torch.FloatTensor | None = None
    keypoints: torch.FloatTensor | None = None
    visibility_logits: torch.FloatTensor | None = None
    coarse_frames: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    loss_terms: torch.FloatTensor | None = None
    note_logits: torch.FloatTensor | None = None


@dataclass
class KHPPrediction(ModelOutput):
    """Inference output of [`KHPModel.predict`] (float32, on the CPU).

    Args:
        keypoints: (B, T, K, 2) in [0, 1]; visibility: (B, T, K) probabilities;
        coarse_frames: (B, T, 3, s, s) in [0, 1] (None without a coarse head);
        notes: "notes" models: per batch item, the notes played (transcribed from the audio, or read
            from the piano roll given), as dicts with pitch, onset, offset (s) and velocity.
    """

    keypoints: torch.FloatTensor | None = None
    visibility: torch.FloatTensor | None = None
    coarse_frames: torch.FloatTensor | None = None
    notes: list | None = None


class KHPLocalAttention(nn.Module):
    """Multi-head self-attention restricted to ±window frames, with a learned bias per offset."""

    def __init__(self, config: KHPConfig):
        super().__init__()
        self.num_heads, self.window = config.num_heads, config.attention_window
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.relative_bias = nn.Parameter(torch.zeros(config.num_heads, 2 * config.attention_window + 1))
        self.dropout = config.dropout

    def bias(self, T: int, key_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """(B or 1, H, T, T) additive mask: the relative bias inside the band, -inf outside/on padding."""
        pos = torch.arange(T, device=self.relative_bias.device)
        offset = pos[None, :] - pos[:, None]  # (T, T) key - query
        band = offset.abs() <= self.window
        bias = self.relative_bias[:, (offset.clamp(-self.window, self.window) + self.window)]  # (H, T, T)
        allowed = band[None, None]  # (1, 1, T, T)
        if key_mask is not None:  # padded keys are out; a query always sees itself (no empty rows)
            allowed = allowed & (
                key_mask[:, None, None, :].bool() | torch.eye(T, dtype=torch.bool, device=pos.device)
            )
        return bias[None].to(dtype).masked_fill(~allowed, float("-inf"))

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, d)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class KHPLayer(nn.Module):
    """Pre-norm transformer layer with local attention."""

    def __init__(self, config: KHPConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.attn = KHPLocalAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.GELU(),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), attn_bias))
        return x + self.drop(self.mlp(self.norm2(x)))


class KHPCoarseDecoder(nn.Module):
    """Per-frame latent (N, D) -> coarse frame (N, 3, s, s): 4 x 4 seed, then x2 upsampling blocks.

    The decoder paints colour and an alpha mask over a base image: the reference frame when one is
    given (so it only has to redraw what moves: arms, hands, head), else a learned average frame.
    """

    def __init__(self, config: KHPConfig):
        super().__init__()
        c = config.coarse_channels
        self.seed = nn.Linear(config.hidden_size, c * 16)
        blocks = []
        for _ in range(int(math.log2(config.coarse_size // 4))):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c, max(c // 2, 16), 3, padding=1),
                nn.GroupNorm(8, max(c // 2, 16)),
                nn.GELU(),
            ]
            c = max(c // 2, 16)
        self.blocks = nn.Sequential(*blocks)
        self.to_rgba = nn.Conv2d(c, 4, 3, padding=1)
        self.channels = config.coarse_channels
        s = config.coarse_size
        self.null_base = nn.Parameter(torch.zeros(3, s, s))  # logits of the base without a reference

    def forward(self, latent: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """latent (N, D), base (N, 3, s, s) in [0, 1] or None -> (N, 3, s, s) in [0, 1]."""
        x = self.to_rgba(self.blocks(self.seed(latent).view(-1, self.channels, 4, 4)))
        rgb, alpha = torch.sigmoid(x[:, :3]), torch.sigmoid(x[:, 3:])
        if base is None:
            base = torch.sigmoid(self.null_base).expand_as(rgb)
        return alpha * rgb + (1 - alpha) * base


class KHPReferenceEncoder(nn.Module):
    """The performer in the target scene -> (B, D): keypoints of one reference frame (camera, body
    proportions) and, with a coarse head, that frame at coarse size (colours, clothes, background)."""

    def __init__(self, config: KHPConfig):
        super().__init__()
        D = config.hidden_size
        self.keypoints = nn.Sequential(nn.Linear(config.num_keypoints * 2, D), nn.GELU(), nn.Linear(D, D))
        self.null_keypoints = nn.Parameter(torch.zeros(D))
        self.frame = None
        if config.coarse_size:
            layers, c = [], 3
            for i in range(int(math.log2(config.coarse_size // 4))):  # down to 4 x 4
                layers += [nn.Conv2d(c, 16 * 2**i, 3, stride=2, padding=1), nn.GELU()]
                c = 16 * 2**i
            self.frame = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, D))
            self.null_frame = nn.Parameter(torch.zeros(D))

    def forward(
        self,
        batch_size: int,
        reference_keypoints: torch.Tensor | None,
        reference_frames: torch.Tensor | None,
        reference_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        def pick(embedding: torch.Tensor | None, null: torch.Tensor) -> torch.Tensor:
            if embedding is None:
                return null.expand(batch_size, -1)
            if reference_mask is None:
                return embedding
            return torch.where(reference_mask[:, None].bool(), embedding, null.to(embedding.dtype))

        kp = None if reference_keypoints is None else self.keypoints(reference_keypoints.flatten(1))
        out = pick(kp, self.null_keypoints)
        if self.frame is not None:
            fr = None if reference_frames is None else self.frame(reference_frames)
            out = out + pick(fr, self.null_frame)
        return out  # (B, D)


def _wmean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of `err` (weights broadcast to it; 0 when they sum to 0)."""
    return (err * weight).sum() / weight.sum().clamp_min(1e-6)


def transcription_loss(
    note_logits: torch.Tensor, target_piano_roll: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The transcriber's loss: onset BCE + sustain BCE over all keys of the real frames, plus the
    squared velocity error where a note sounds. note_logits and target_piano_roll (B, T, 88, 3),
    frame_mask (B, T) 1 for real frames (all when None)."""
    tr, nl = target_piano_roll.float(), note_logits.float()
    fm = (
        torch.ones_like(tr[..., 0])
        if frame_mask is None
        else frame_mask.float()[..., None].expand_as(tr[..., 0])
    )

    bce = F.binary_cross_entropy_with_logits(nl[..., :2], tr[..., :2], reduction="none")  # (B, T, 88, 2)
    vel = (torch.sigmoid(nl[..., 2]) - tr[..., 2]) ** 2
    return _wmean(bce[..., 0], fm) + _wmean(bce[..., 1], fm) + _wmean(vel, fm * tr[..., 1])


class KHPTranscriber(nn.Module):
    """Log-mel features (B, T, F) -> note logits (B, T, 88, 3): onset, sustain, velocity per key.

    Three 2D convolutions over (time, frequency) (a note is a pattern of harmonics at fixed
    frequency offsets, and an onset a change in time), frequency pooled by 4, projected per frame,
    then `transcriber_layers` local-attention layers. No per-frame normalisation of the input:
    normalising each frame would lift the noise floor of quiet frames into notes (the feature
    extractor's `floor_db` floors it relative to the recording's loudest band instead).
    """

    def __init__(self, config: KHPConfig):
        super().__init__()
        c, D = config.transcriber_channels, config.hidden_size
        self.convs = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d((1, 2)),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d((1, 2)),
        )
        self.proj = nn.Linear(2 * c * (config.feature_size // 4), D)
        self.layers = nn.ModuleList([KHPLayer(config) for _ in range(config.transcriber_layers)])
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, config.num_keys * 3)
        self.num_keys = config.num_keys

    def forward(self, features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = features.shape
        if attention_mask is not None:  # padded frames are zeros, like the convolutions' own padding
            features = features * attention_mask[..., None].to(features.dtype)
        x = self.convs(features[:, None])  # (B, 2c, T, F // 4)
        x = self.proj(x.permute(0, 2, 1, 3).reshape(B, T, -1))  # (B, T, D)
        for layer in self.layers:
            x = layer(x, layer.attn.bias(T, attention_mask, x.dtype))
        return self.head(self.norm(x)).view(B, T, self.num_keys, 3)


class KHPKeyboard(nn.Module):
    """The keyboard in the reference frame, and what is played on it.

    Each key is embedded from its pitch and its quad in the image (B, 88, 4, 2); a piano roll
    (B, T, 88, 3) becomes a per-frame note embedding (B, T, D) (the sum of the embeddings of the
    sounding keys, per roll channel), and per-key activity features (B, T, 88, P) from a temporal
    convolution over ±`key_context` frames of each key's roll (what sounds, and what comes next).
    The fingertip pointer scores each fingertip against each key with them; with key contact
    (`config.key_contact_frames`), the finger that points most surely at a key just struck sits on
    the key's press point.
    """

    def __init__(self, config: KHPConfig):
        super().__init__()
        D, P, N = config.hidden_size, 32, config.num_keys
        self.pitch = nn.Embedding(N, D)
        self.geometry = nn.Sequential(nn.Linear(8, D), nn.GELU(), nn.Linear(D, D))
        self.register_buffer("null_quads", torch.zeros(N, 4, 2))  # set_mean_keys: the training layout
        self.channels = nn.Linear(D, 3 * D)
        self.activity = nn.Conv1d(3, P, 2 * config.key_context + 1, padding=config.key_context)
        self.key_proj = nn.Linear(D, P)
        self.tip_query = nn.Linear(D, len(_TIPS) * P)
        self.tip_offset = nn.Linear(D, len(_TIPS) * 2)
        self.pointer_dim = P
        white, black = config.press_depth
        # (88,) front -> back fraction per key; a plain list, not a buffer (nothing to load or init)
        self.press_depth = [
            black if N == NUM_KEYS and is_black_key(LOWEST_PITCH + i) else white for i in range(N)
        ]

    def quads(
        self, batch_size: int, reference_keys: torch.Tensor | None, reference_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, 88, 4, 2): the reference's key quads, or the learned average layout where absent/masked."""
        null = self.null_quads[None].expand(batch_size, -1, -1, -1)
        if reference_keys is None:
            return null
        q = reference_keys.to(null.dtype)
        if reference_mask is not None:
            q = torch.where(reference_mask[:, None, None, None].bool(), q, null)
        return q

    def forward(self, piano_roll: torch.Tensor, quads: torch.Tensor):
        """-> note embedding (B, T, D), key embeddings (B, 88, D), key activity (B, T, 88, P)."""
        B, T, N, _ = piano_roll.shape
        keys = self.pitch.weight[None] + self.geometry(quads.flatten(2))  # (B, 88, D)
        per_channel = self.channels(keys).view(B, N, 3, -1)  # (B, 88, 3, D)
        notes = torch.einsum("btkc,bkcd->btd", piano_roll.to(keys.dtype), per_channel)  # (B, T, D)
        roll = piano_roll.to(keys.dtype).permute(0, 2, 3, 1).reshape(B * N, 3, T)
        activity = self.activity(roll).view(B, N, self.pointer_dim, T).permute(0, 3, 1, 2)  # (B, T, 88, P)
        return notes, keys, activity

    @staticmethod
    def key_axes(quads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 88, 4, 2) key-top quads (front-left, front-right, back-right, back-left) -> the middle of
        each key's front edge (B, 88, 2) and the vector from it to the middle of the back edge."""
        front = (quads[:, :, 0] + quads[:, :, 1]) / 2
        return front, (quads[:, :, 2] + quads[:, :, 3]) / 2 - front

    def press_points(self, quads: torch.Tensor) -> torch.Tensor:
        """(B, 88, 4, 2) key-top quads -> (B, 88, 2): where a fingertip presses each key, `press_depth`
        of the way from its front edge to its back."""
        front, length = self.key_axes(quads)
        depth = torch.tensor(self.press_depth, dtype=quads.dtype, device=quads.device)
        return front + length * depth[None, :, None]

    def contact(
        self,
        logits: torch.Tensor,
        piano_roll: torch.Tensor,
        frames: int,
        reach: float = 0.0,
        hold: bool = False,
    ) -> torch.Tensor:
        """Which fingertip sits on which key: (B, T, 10, 88) in {0, 1}.

        A key is *struck* from its onset for `frames` frames while it sounds. Each fingertip
        points at its most likely key; of the fingertips pointing at a struck key, the surest one
        touches it (one finger a key). With `reach` > 0, a struck key left without a finger then
        takes the free fingertip (touching nothing) most likely to point at it, if that likelihood
        is at least `reach`; a fingertip wanted by several such keys takes the one it likes best, and
        the others try again with the fingertips left. Without `hold` this is decided frame by frame
        (the finger on a key may change while it is struck); with `hold`, once, on the onset frame,
        and that finger stays for the `frames` frames (until a newer onset takes it or its key)."""
        onset, sounding = (
            piano_roll[..., 0].to(logits.dtype),
            piano_roll[..., 1].to(logits.dtype),
        )  # (B, T, 88)
        prob = torch.softmax(logits, dim=-1)  # (B, T, 10, 88)
        if not hold:
            padded = F.pad(onset.transpose(1, 2), (frames - 1, 0))  # (B, 88, T + frames - 1)
            struck = F.max_pool1d(padded, frames, stride=1).transpose(1, 2) * sounding  # (B, T, 88)
            return self._assign(prob, struck, reach)
        start = self._assign(prob, onset * sounding, reach).bool()  # (B, T, 10, 88): on onset frames
        touch = torch.zeros_like(start)
        for d in range(frames):  # newest first: a finger (and a key) keeps its most recent onset
            held = F.pad(start[:, : start.shape[1] - d], (0, 0, 0, 0, d, 0)) & sounding.bool()[:, :, None]
            held &= ~touch.any(-1, keepdim=True) & ~touch.any(2, keepdim=True)
            touch |= held
        return touch.to(prob.dtype)

    @staticmethod
    def _assign(prob: torch.Tensor, struck: torch.Tensor, reach: float) -> torch.Tensor:
        """`contact`'s choice, frame by frame: prob (B, T, 10, 88), struck keys (B, T, 88) ->
        (B, T, 10, 88) in {0, 1}."""
        F_, N = prob.shape[2:]
        chosen = F.one_hot(prob.argmax(-1), N).bool()  # (B, T, 10, 88)
        score = torch.where(chosen, prob, torch.full_like(prob, -1.0))
        surest = (score == score.amax(dim=2, keepdim=True)) & chosen  # one fingertip per key
        touch = surest.to(prob.dtype) * struck[:, :, None]
        for _ in range(F_ if reach > 0 else 0):  # rounds until no struck key can take a free fingertip
            free = touch.sum(-1, keepdim=True) == 0  # (B, T, 10, 1)
            unplayed = (struck > 0) & (touch.sum(2) == 0)  # (B, T, 88)
            wanted = torch.where(free & unplayed[:, :, None], prob, torch.full_like(prob, -1.0))
            best = F.one_hot(wanted.argmax(2), F_).transpose(2, 3).bool()  # (B, T, 10, 88): a key's tip
            best &= (wanted >= reach) & unplayed[:, :, None]
            liked = torch.where(best, prob, torch.full_like(prob, -1.0))
            best &= liked == liked.amax(-1, keepdim=True)  # a tip wanted by several keys: its likeliest
            if not best.any():
                break
            touch = touch + best.to(prob.dtype)
        return touch

    @staticmethod
    def approach(touch: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, T, 10, 88) contact -> the `frames` frames before each contact begins (a fingertip coming
        down on a key it was not already touching), as weights (B, T, 10, 88) summing to <= 1 per tip:
        1 on the frame before, easing in linearly from `frames` frames before (1 / frames)."""
        T = touch.shape[1]
        start = touch * (1 - F.pad(touch[:, :-1], (0, 0, 0, 0, 1, 0)))  # (B, T, 10, 88)
        before = torch.zeros_like(touch)
        for d in range(1, min(frames, T - 1) + 1):
            ease = (frames - d + 1) / frames
            before[:, : T - d] = torch.maximum(before[:, : T - d], ease * start[:, d:])
        return before / before.sum(-1, keepdim=True).clamp(min=1.0)

    @staticmethod
    def release(touch: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, T, 10, 88) contact -> the `frames` frames after each contact ends (a fingertip leaving a
        key), as weights (B, T, 10, 88) summing to <= 1 per tip: frames / (frames + 1) on the frame
        after, easing out linearly; 0 where the fingertip touches a key again."""
        T = touch.shape[1]
        end = touch * (1 - F.pad(touch[:, 1:], (0, 0, 0, 0, 0, 1)))  # (B, T, 10, 88): last contact frame
        after = torch.zeros_like(touch)
        for d in range(1, min(frames, T - 1) + 1):
            ease = (frames - d + 1) / (frames + 1)
            after[:, d:] = torch.maximum(after[:, d:], ease * end[:, : T - d])
        after = after * (touch.sum(-1, keepdim=True) == 0)
        return after / after.sum(-1, keepdim=True).clamp(min=1.0)

    def fingertips(
        self,
        h: torch.Tensor,
        keys: torch.Tensor,
        activity: torch.Tensor,
        quads: torch.Tensor,
        scale: float,
        piano_roll: torch.Tensor | None = None,
        contact_frames: int = 0,
        approach_frames: int = 0,
        lift: float = 0.0,
        reach: float = 0.0,
        hold: bool = False,
        free_lift: float = 0.0,
        release_frames: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder states (B, T, D) -> the ten fingertips (B, T, 10, 2): a soft choice of key per
        fingertip (its centre in the image) plus an offset of at most `scale` -- or, in key contact
        (`piano_roll` (B, T, 88, 3) given, `contact_frames` > 0), the struck key's press point, and for
        the `approach_frames` frames before, raised above it (`lift` of the key's length towards its
        back: a lifted fingertip seen from the front), and for the `release_frames` after, easing back
        from there; `reach`, `hold`: see `contact`; `free_lift`: the fingertips that strike nothing are
        raised by this fraction of their key's length; and the choice's logits (B, T, 10, 88)."""
        B, T, _ = h.shape
        P = self.pointer_dim
        q = self.tip_query(h).view(B, T, len(_TIPS), P)  # (B, T, 10, P)
        k = self.key_proj(keys)[:, None] + activity  # (B, T, 88, P)
        logits = torch.einsum("btfp,btkp->btfk", q, k) / math.sqrt(P)
        centres = quads.mean(2).to(h.dtype)  # (B, 88, 2)
        choice = torch.softmax(logits, dim=-1)  # (B, T, 10, 88)
        at = torch.einsum("btfk,bkx->btfx", choice, centres)  # (B, T, 10, 2)
        tips = at + scale * torch.tanh(self.tip_offset(h).view(B, T, len(_TIPS), 2))
        length = self.key_axes(quads)[1].to(h.dtype)  # (B, 88, 2): each key's front -> back
        if free_lift:  # a fingertip that strikes nothing hovers: raised towards its key's back
            tips = tips + free_lift * torch.einsum("btfk,bkx->btfx", choice, length)
        if contact_frames and piano_roll is not None:
            touch = self.contact(logits.detach(), piano_roll, contact_frames, reach, hold)  # (B, T, 10, 88)
            press = self.press_points(quads).to(h.dtype)  # (B, 88, 2)
            on_key = torch.einsum("btfk,bkx->btfx", touch, press)
            tips = torch.where(touch.sum(-1, keepdim=True) > 0, on_key, tips)  # (B, T, 10, 2)
            above = press + lift * length  # (B, 88, 2): a fingertip raised above each key
            if release_frames:
                away = self.release(touch, release_frames)  # (B, T, 10, 88)
                lifted = torch.einsum("btfk,bkx->btfx", away, above)  # weighted
                tips = lifted + (1 - away.sum(-1, keepdim=True)) * tips  # eases from above the key
            if approach_frames:
                near = self.approach(touch, approach_frames)  # (B, T, 10, 88)
                raised = torch.einsum("btfk,bkx->btfx", near, above)  # weighted
                coming = near.sum(-1, keepdim=True)  # (B, T, 10, 1): > 0 while a fingertip comes down
                tips = raised + (1 - coming) * tips  # eases from where it was to above the key
        return tips, logits


class KHPPreTrainedModel(PreTrainedModel):
    config_class = KHPConfig
    base_model_prefix = "khp"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.Conv2d | nn.Conv1d):
            init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, KHPLocalAttention):
            init.zeros_(module.relative_bias)
        elif isinstance(module, KHPCoarseDecoder):
            init.zeros_(module.null_base)
        elif isinstance(module, KHPReferenceEncoder):
            init.zeros_(module.null_keypoints)
            if module.frame is not None:
                init.zeros_(module.null_frame)


class KHPModel(KHPPreTrainedModel):
    r"""Keypoint and Heatmap Prediction: log-mel features -> keypoints, visibility, coarse frames.

    >>> import torch
    >>> from apvg_hf import KHPConfig, KHPModel
    >>> model = KHPModel(KHPConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
    ...                            coarse_channels=32, coarse_size=16)).eval()
    >>> out = model(torch.randn(2, 40, 80))  # (B, T, F)
    >>> tuple(out.keypoints.shape), tuple(out.visibility_logits.shape), tuple(out.coarse_frames.shape)
    ((2, 40, 56, 2), (2, 40, 56), (2, 40, 3, 16, 16))
    """

    loss_names = (
        "coordinate",
        "heatmap",
        "bone",
        "velocity",
        "visibility",
        "coarse",
        "transcription",
        "pointer",
    )
    card_kind = "khp"  # for apvg_hf.hub.model_card
    card_summary = (
        "Stage 1 of APVG: audio features -> body and hand keypoints, visibility and a coarse video."
    )

    def __init__(self, config: KHPConfig):
        super().__init__(config)
        D, k = config.hidden_size, config.conv_kernel_size
        if config.architecture == "notes":  # audio -> notes (transcriber) -> motion (keyboard + decoder)
            self.transcriber = KHPTranscriber(config)
            self.keyboard = KHPKeyboard(config)
        else:  # audio -> motion
            self.input_norm = nn.LayerNorm(config.feature_size)
            self.input_proj = nn.Linear(config.feature_size, D)
        self.convs = nn.ModuleList([nn.Conv1d(D, D, k, padding=k // 2) for _ in range(2)])
        self.reference = KHPReferenceEncoder(config)
        self.layers = nn.ModuleList([KHPLayer(config) for _ in range(config.num_layers)])
        self.final_norm = nn.LayerNorm(D)
        self.keypoint_head = nn.Linear(D, config.num_keypoints * 2)
        self.visibility_head = nn.Linear(D, config.num_keypoints)
        self.coarse_decoder = KHPCoarseDecoder(config) if config.coarse_size else None
        self.post_init()

    @torch.no_grad()
    def set_mean_pose(self, mean_keypoints: torch.Tensor) -> None:
        """Start the keypoint head at a pose (K, 2), e.g. the training set's mean: bias = logit(mean)."""
        mean = torch.as_tensor(mean_keypoints, dtype=self.keypoint_head.bias.dtype).clamp(1e-3, 1 - 1e-3)
        self.keypoint_head.bias.copy_(torch.logit(mean).reshape(-1))

    @torch.no_grad()
    def set_mean_keys(self, mean_quads: torch.Tensor) -> None:
        """The keyboard layout (88, 4, 2) assumed when a reference gives none ("notes" models)."""
        self.keyboard.null_quads.copy_(torch.as_tensor(mean_quads, dtype=self.keyboard.null_quads.dtype))

    @property
    def uses_notes(self) -> bool:
        """True for the note-aware architecture (transcriber + keyboard-aware motion decoder)."""
        return self.config.architecture == "notes"

    def encode(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        reference_keypoints: torch.Tensor | None = None,
        reference_frames: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, F) -> (B, T, D) for "audio" models: the front end, then `trunk`."""
        x = self.input_proj(self.input_norm(input_features))  # (B, T, D)
        return self.trunk(x, attention_mask, reference_keypoints, reference_frames, reference_mask)

    def trunk(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        reference_keypoints: torch.Tensor | None = None,
        reference_frames: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, D) frame embeddings -> (B, T, D) decoder states. Padded frames are zeroed before each
        convolution, so a padded sequence gives the same values as the sequence alone. The reference
        embedding is added to every frame."""
        mask = None if attention_mask is None else attention_mask[..., None].to(x.dtype)
        for conv in self.convs:
            h = x if mask is None else x * mask
            x = x + F.gelu(conv(h.transpose(1, 2)).transpose(1, 2))
        ref = self.reference(x.shape[0], reference_keypoints, reference_frames, reference_mask)  # (B, D)
        x = x + ref[:, None].to(x.dtype)
        for layer in self.layers:  # each layer has its own relative-position bias
            x = layer(x, layer.attn.bias(x.shape[1], attention_mask, x.dtype))
        return self.final_norm(x)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        reference_keypoints: torch.Tensor | None = None,
        reference_frames: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
        target_keypoints: torch.Tensor | None = None,
        target_visibility: torch.Tensor | None = None,
        target_coarse_frames: torch.Tensor | None = None,
        coarse_frame_indices: torch.Tensor | None = None,
        return_dict: bool | None = None,
        piano_roll: torch.Tensor | None = None,
        reference_keys: torch.Tensor | None = None,
        target_piano_roll: torch.Tensor | None = None,
    ) -> KHPOutput | tuple:
        r"""
        Args:
            input_features: (B, T, F) log-mel features, one row per video frame.
            attention_mask: (B, T) 1 for real frames, 0 for padding.
            reference_keypoints: (B, K, 2) optional keypoints of the performer in the target scene
                (any one frame): they tell the camera and body proportions the audio cannot.
            reference_frames: (B, 3, s, s) optional that frame in [0, 1] at `coarse_size`: the
                colours and look that the coarse frames should have.
            reference_mask: (B,) 1 to use the references of a sample, 0 to ignore them (as if absent).
            target_keypoints: (B, T, K, 2) targets in [0, 1]; with them, the loss is computed.
            target_visibility: (B, T, K) 0/1 targets (all visible when omitted).
            target_coarse_frames: (B, T, 3, h, w) targets in [0, 1].
            coarse_frame_indices: (N,) frame indices: decode (and score) coarse frames only there,
                to save compute in training.
            piano_roll: "notes" models: (B, T, 88, 3) the notes to play (`apvg_hf.piano_roll`). Without
                it, the notes transcribed from `input_features` are played (`decode_notes`).
            reference_keys: "notes" models: (B, 88, 4, 2) the key-top quads in the reference frame.
            target_piano_roll: "notes" models: (B, T, 88, 3) the true notes: the transcription loss.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        refs = (reference_keypoints, reference_frames, reference_mask)
        note_logits = None
        if self.uses_notes:
            if input_features is not None:
                note_logits = self.transcriber(input_features, attention_mask)  # (B, T, 88, 3)
            if piano_roll is None:
                if note_logits is None:
                    raise ValueError("a 'notes' KHP needs input_features or a piano_roll")
                piano_roll = self.decode_notes(note_logits)
            B, T = piano_roll.shape[:2]
            if note_logits is not None and note_logits.shape[1] != T:
                raise ValueError(f"input_features has {note_logits.shape[1]} frames, piano_roll {T}")
            if attention_mask is not None:  # padded frames play nothing
                piano_roll = piano_roll * attention_mask[:, :, None, None].to(piano_roll.dtype)
            quads = self.keyboard.quads(B, reference_keys, reference_mask)  # (B, 88, 4, 2)
            notes, keys, activity = self.keyboard(piano_roll, quads)
            h = self.trunk(notes, attention_mask, *refs)
        else:
            if input_features is None:
                raise ValueError("an 'audio' KHP needs input_features")
            B, T, _ = input_features.shape
            h = self.encode(input_features, attention_mask, *refs)
        K = self.config.num_keypoints
        keypoints = torch.sigmoid(self.keypoint_head(h).view(B, T, K, 2))
        pointer = None
        if self.uses_notes:  # the fingertips aim at keys
            tips, pointer = self.keyboard.fingertips(
                h,
                keys,
                activity,
                quads,
                self.config.tip_offset_scale,
                piano_roll,
                self.config.key_contact_frames,
                self.config.key_approach_frames,
                self.config.press_lift,
                self.config.key_contact_reach,
                self.config.key_contact_hold,
                self.config.free_lift,
                self.config.key_release_frames,
            )
            keypoints = keypoints.clone()
            keypoints[:, :, _TIPS] = tips.to(keypoints.dtype)
        visibility_logits = self.visibility_head(h)  # (B, T, K)
        coarse = None
        if self.coarse_decoder is not None:
            hc = h if coarse_frame_indices is None else h[:, coarse_frame_indices]
            s = self.config.coarse_size
            base = None
            if reference_frames is not None:  # per sample: the reference, or the learned base if masked
                base = reference_frames.to(hc.dtype)
                if reference_mask is not None:
                    null = torch.sigmoid(self.coarse_decoder.null_base).to(base.dtype)
                    base = torch.where(reference_mask[:, None, None, None].bool(), base, null)
                base = base[:, None].expand(B, hc.shape[1], 3, s, s).reshape(-1, 3, s, s)
            flat = hc.reshape(-1, h.shape[-1])  # (B * N, D)
            # Inference decodes in blocks of frames: the decoder's activations (64 channels up to s x s
            # a frame) stay a few MB, however long the window. Training decodes its few frames at once.
            block = len(flat) if self.training else 64
            coarse = torch.cat(
                [
                    self.coarse_decoder(flat[i : i + block], None if base is None else base[i : i + block])
                    for i in range(0, len(flat), block)
                ]
            ).view(B, hc.shape[1], 3, s, s)

        loss = terms = None
        if target_keypoints is not None:
            if target_coarse_frames is not None and coarse_frame_indices is not None:
                target_coarse_frames = target_coarse_frames[:, coarse_frame_indices]
            loss, terms = self.compute_loss(
                keypoints,
                visibility_logits,
                coarse,
                target_keypoints,
                target_visibility,
                target_coarse_frames,
                attention_mask,
                coarse_frame_indices,
                note_logits,
                target_piano_roll,
                None if pointer is None else (pointer, quads, reference_mask),
            )
        out = KHPOutput(
            loss=loss,
            keypoints=keypoints,
            visibility_logits=visibility_logits,
            coarse_frames=coarse,
            last_hidden_state=h,
            loss_terms=terms,
            note_logits=note_logits,
        )
        return out if return_dict else out.to_tuple()

    def decode_notes(self, note_logits: torch.Tensor) -> torch.Tensor:
        """(B, T, 88, 3) transcription logits -> the piano roll (B, T, 88, 3) of the notes they decode to
        (`apvg_hf.piano_roll.decode_roll` with the config's thresholds): what the decoder plays."""
        c = self.config
        probs = torch.sigmoid(note_logits.detach().float()).cpu().numpy()
        rolls = [decode_roll(p, 1.0, c.onset_threshold, c.frame_threshold) for p in probs]
        return torch.from_numpy(np.stack(rolls)).to(note_logits.device, note_logits.dtype)

    def push_to_hub(self, repo_id: str, feature_extractor=None, **kwargs) -> str:
        """Upload with a generated model card, and the feature extractor if given (see
        `apvg_hf.hub.push_folder` for the other arguments)."""
        return push_object(
            self, repo_id, model_card(self, repo_id), feature_extractor=feature_extractor, **kwargs
        )

    def forward_window(
        self, input_features: torch.Tensor | None, start: int, end: int, piano_roll=None, **kwargs
    ) -> KHPOutput:
        """Outputs for frames [start, end) of `input_features` (B, T, F) (or, for "notes" models, of
        `piano_roll` (B, T, 88, 3)), computed from that window plus `config.receptive_field` frames of
        context each side: exactly the one-pass values, so long inputs run chunk by chunk. `kwargs`
        are the reference inputs of `forward`."""
        if self.uses_notes and piano_roll is None:
            raise ValueError(
                "a 'notes' KHP runs windows of a piano roll: transcribe first (`transcribe`, or `iter_predict` / "
                "`predict`, which do both)"
            )
        seq = piano_roll if piano_roll is not None else input_features
        T, ctx = seq.shape[1], self.config.receptive_field
        lo, hi = max(0, start - ctx), min(T, end + ctx)
        keep = torch.arange(start - lo, end - lo, device=seq.device)  # the context is not decoded
        if piano_roll is not None:
            out = self(piano_roll=piano_roll[:, lo:hi], coarse_frame_indices=keep, **kwargs)
        else:
            out = self(input_features[:, lo:hi], coarse_frame_indices=keep, **kwargs)
        sl = slice(start - lo, end - lo)
        return KHPOutput(
            keypoints=out.keypoints[:, sl],
            visibility_logits=out.visibility_logits[:, sl],
            coarse_frames=out.coarse_frames,
            last_hidden_state=out.last_hidden_state[:, sl],
        )

    @torch.no_grad()
    def transcribe(self, input_features, chunk_frames: int = 1800) -> torch.Tensor:
        """ "notes" models: features (T, F) or (B, T, F) -> note probabilities (B, T, 88, 3) (onset,
        sustain, velocity), chunk by chunk with `config.transcriber_receptive_field` frames of
        context each side (exactly the one-pass values); float32 on the CPU."""
        if not self.uses_notes:
            raise ValueError("this KHP has no transcriber (architecture='audio')")
        self._check_inputs(input_features, None, None)
        self.eval()
        x = self._as_batch(input_features, 3)
        T, ctx = x.shape[1], self.config.transcriber_receptive_field
        out = []
        for a in range(0, T, chunk_frames):
            b = min(a + chunk_frames, T)
            lo, hi = max(0, a - ctx), min(T, b + ctx)
            out.append(torch.sigmoid(self.transcriber(x[:, lo:hi])[:, a - lo : b - lo].float()).cpu())
        return torch.cat(out, 1)

    @torch.no_grad()
    def iter_predict(
        self,
        input_features=None,
        reference_keypoints=None,
        reference_frames=None,
        chunk_frames: int = 1800,
        *,
        piano_roll=None,
        reference_keys=None,
        fps: float = 30.0,
    ) -> Iterator[tuple[int, int, KHPPrediction]]:
        """Inference over any length, chunk by chunk: yields (start, end, prediction of frames [start, end)).

        Each chunk is computed with `config.receptive_field` frames of context each side
        (`forward_window`), so the concatenated chunks are the one-pass result at bounded memory.
        `input_features` (T, F) or (B, T, F), a tensor or an array; references (K, 2) / (B, K, 2) and
        (3, s, s) / (B, 3, s, s) in [0, 1], optional. Runs in the model's dtype and device; the
        predictions come back as float32 on the CPU.

        "notes" models play `piano_roll` ((T, 88, 3) or (B, T, 88, 3), e.g. from MIDI) when given,
        else the notes transcribed from `input_features` (the whole input is transcribed first, and
        decoded into notes with `apvg_hf.piano_roll.roll_to_notes` at `fps`); `reference_keys`
        (88, 4, 2) / (B, 88, 4, 2) place the keys in the frame. The notes played come with the first
        chunk's prediction (`notes`). With `config.hand_anchor` set, hands far from the keys of the
        notes move there (`apvg_hf.hand_anchor`; per frame, so chunks stay exact).
        """
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.eval()
        notes = None
        self._check_inputs(input_features, piano_roll, reference_keys)
        if self.uses_notes:
            if piano_roll is None:
                if input_features is None:
                    raise ValueError("a 'notes' KHP needs input_features or a piano_roll")
                probs = self.transcribe(input_features, chunk_frames)  # (B, T, 88, 3)
                c = self.config
                notes = [roll_to_notes(p.numpy(), fps, c.onset_threshold, c.frame_threshold) for p in probs]
                T = probs.shape[1]
                piano_roll = np.stack([notes_to_roll(n, T, fps) for n in notes])
            roll = self._as_batch(piano_roll, 4)  # (B, T, 88, 3)
            if notes is None:
                notes = [roll_to_notes(r.float().cpu().numpy(), fps) for r in roll]
            seq, B = roll, len(roll)
        else:
            if input_features is None:
                raise ValueError("an 'audio' KHP needs input_features")
            seq = self._as_batch(input_features, 3)  # (B, T, F)
            B = len(seq)
        refs = {}
        if reference_keypoints is not None:
            refs["reference_keypoints"] = self._as_batch(reference_keypoints, 3).expand(B, -1, -1)
        if reference_frames is not None:
            refs["reference_frames"] = self._as_batch(reference_frames, 4).expand(B, -1, -1, -1)
        if reference_keys is not None and self.uses_notes:
            refs["reference_keys"] = self._as_batch(reference_keys, 4).expand(B, -1, -1, -1)
        T = seq.shape[1]
        anchors = None
        if self.uses_notes and self.config.hand_anchor is not None and "reference_keys" not in refs:
            logger.warning(
                "hand anchoring is off for this input: it needs the reference's keyboard (reference_keys), "
                "as its offsets were fitted in that camera"
            )
        elif self.uses_notes and self.config.hand_anchor is not None:
            centres = refs["reference_keys"].float().mean(2).cpu().numpy()  # (B, 88, 2)
            anchors = [
                (*note_anchors(n, T, fps, k, self.config.hand_anchor), k) for n, k in zip(notes, centres)
            ]
        for a in range(0, T, chunk_frames):
            b = min(a + chunk_frames, T)
            if self.uses_notes:
                o = self.forward_window(None, a, b, piano_roll=seq, **refs)
            else:
                o = self.forward_window(seq, a, b, **refs)
            keypoints = o.keypoints.float().cpu()  # (B, n, K, 2)
            if anchors is not None:
                keypoints = torch.from_numpy(
                    np.stack(
                        [
                            anchor_hands(kp.numpy(), an[:, a:b], w[:, a:b], k, self.config.hand_anchor)
                            for kp, (an, w, k) in zip(keypoints, anchors)
                        ]
                    )  # fmt: skip
                ).float()
            yield (
                a,
                b,
                KHPPrediction(
                    keypoints=keypoints,  # (B, n, K, 2)
                    visibility=torch.sigmoid(o.visibility_logits.float()).cpu(),  # (B, n, K)
                    coarse_frames=None if o.coarse_frames is None else o.coarse_frames.float().cpu(),
                    notes=notes if a == 0 else None,
                ),
            )

    def predict(
        self,
        input_features=None,
        reference_keypoints=None,
        reference_frames=None,
        chunk_frames: int = 1800,
        **kwargs,
    ):
        """The whole of `iter_predict` concatenated: a [`KHPPrediction`] of (B, T, ...) tensors
        (`kwargs`: `piano_roll`, `reference_keys`, `fps` of "notes" models).

        >>> import torch
        >>> from apvg_hf import KHPConfig, KHPModel
        >>> model = KHPModel(KHPConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16,
        ...                            coarse_channels=8, coarse_size=16))
        >>> feats = torch.randn(100, 80)                                      # (T, F)
        >>> whole, parts = model.predict(feats), model.predict(feats, chunk_frames=7)
        >>> tuple(whole.keypoints.shape), torch.allclose(whole.keypoints, parts.keypoints, atol=1e-6)
        ((1, 100, 56, 2), True)
        """
        parts = [
            p
            for _, _, p in self.iter_predict(
                input_features, reference_keypoints, reference_frames, chunk_frames, **kwargs
            )
        ]
        if not parts:  # no frames
            raise ValueError("the input has no frames")

        def cat(name: str) -> torch.Tensor | None:
            first = getattr(parts[0], name)
            return None if first is None else torch.cat([getattr(p, name) for p in parts], 1)

        return KHPPrediction(
            keypoints=cat("keypoints"),
            visibility=cat("visibility"),
            coarse_frames=cat("coarse_frames"),
            notes=parts[0].notes,
        )

    def _check_inputs(self, input_features, piano_roll, reference_keys) -> None:
        """Clear errors for inputs of the wrong shape or for the wrong architecture."""
        F_ = self.config.feature_size
        if input_features is not None:
            shape = tuple(np.shape(input_features))
            if len(shape) not in (2, 3) or shape[-1] != F_:
                raise ValueError(
                    f"input_features must be (T, {F_}) or (B, T, {F_}) (this KHP's feature extractor makes {F_} "
                    f"per frame), got shape {shape}"
                )
        if not self.uses_notes:
            if piano_roll is not None or reference_keys is not None:
                raise ValueError("piano_roll / reference_keys are for 'notes' KHPs; this one hears audio")
            return
        if piano_roll is not None:
            shape = tuple(np.shape(piano_roll))
            if len(shape) not in (3, 4) or shape[-2:] != (NUM_KEYS, 3):
                raise ValueError(
                    f"piano_roll must be (T, {NUM_KEYS}, 3) or (B, T, {NUM_KEYS}, 3), got shape {shape}"
                )
        if reference_keys is not None:
            shape = tuple(np.shape(reference_keys))
            if len(shape) not in (3, 4) or shape[-3:] != (NUM_KEYS, 4, 2):
                raise ValueError(
                    f"reference_keys must be the key-top quads, ({NUM_KEYS}, 4, 2) or (B, {NUM_KEYS}, 4, 2), got shape {shape}"
                )

    def _as_batch(self, x, ndim: int) -> torch.Tensor:
        """An array or tensor -> a tensor on the model's device and dtype with a leading batch axis."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.array(x, dtype=np.float32))
        x = x.to(self.device, self.dtype)
        return x[None] if x.ndim == ndim - 1 else x

    def compute_loss(
        self,
        keypoints: torch.Tensor,
        visibility_logits: torch.Tensor,
        coarse: torch.Tensor | None,
        target_keypoints: torch.Tensor,
        target_visibility: torch.Tensor | None,
        target_coarse: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        coarse_frame_indices: torch.Tensor | None = None,
        note_logits: torch.Tensor | None = None,
        target_piano_roll: torch.Tensor | None = None,
        pointer: tuple | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sum of the eight loss terms -> (loss, (8,) unweighted terms). `pointer`: the
        fingertip pointer's (logits (B, T, 10, 88), quads (B, 88, 4, 2), reference_mask (B,) or None)."""
        c = self.config
        B, T, K, _ = keypoints.shape
        tk = target_keypoints.to(keypoints.dtype)
        frame = (
            torch.ones(B, T, device=keypoints.device) if attention_mask is None else attention_mask.float()
        )
        vis = (
            torch.ones(B, T, K, device=keypoints.device)
            if target_visibility is None
            else target_visibility.float()
        )
        joint_w = torch.ones(K, device=keypoints.device)
        joint_w[_HAND] = c.hand_weight
        w = frame[..., None] * (vis + (1 - vis) * c.invisible_weight) * joint_w  # (B, T, K)

        coord = _wmean((keypoints - tk).abs().sum(-1), w)
        # Velocity: frame-to-frame motion, where both frames are real.
        wv = w[:, 1:] * frame[:, :-1, None]
        velocity = (
            _wmean(((keypoints[:, 1:] - keypoints[:, :-1]) - (tk[:, 1:] - tk[:, :-1])).abs().sum(-1), wv) * 10
        )
        # Bone lengths in the image.
        idx = torch.tensor(BONES, device=keypoints.device)
        lp = (keypoints[..., idx[:, 0], :] - keypoints[..., idx[:, 1], :]).norm(dim=-1)
        lt = (tk[..., idx[:, 0], :] - tk[..., idx[:, 1], :]).norm(dim=-1)
        bone = _wmean((lp - lt).abs(), w[..., idx[:, 0]] * w[..., idx[:, 1]])
        # Heatmap space: ||H(pred) - H(target)||² / (||H(pred)||² + ||H(target)||²) per keypoint map.
        s = c.heatmap_size
        heatmap = _wmean(heatmap_distance(keypoints, tk, s, s, c.heatmap_sigma), w)
        visibility = _wmean(
            F.binary_cross_entropy_with_logits(visibility_logits.float(), vis, reduction="none"),
            frame[..., None].expand_as(vis),
        )
        coarse_l1 = keypoints.new_zeros(())
        if coarse is not None and target_coarse is not None:
            fm = frame if coarse_frame_indices is None else frame[:, coarse_frame_indices]
            coarse_l1 = _wmean((coarse - target_coarse.to(coarse.dtype)).abs().mean((2, 3, 4)), fm)
        transcription = keypoints.new_zeros(())
        if note_logits is not None and target_piano_roll is not None:
            transcription = transcription_loss(note_logits, target_piano_roll, frame)
        pointer_ce = keypoints.new_zeros(())
        if pointer is not None:  # which key is under each true fingertip: the nearest centre (or press point)
            logits, quads, ref_mask = pointer
            if c.pointer_target == "press":
                centres = self.keyboard.press_points(quads.float())  # (B, 88, 2)
            else:
                centres = quads.float().mean(2)  # (B, 88, 2)
            target = (
                (tk[:, :, _TIPS, None].float() - centres[:, None, None]).norm(dim=-1).argmin(-1)
            )  # (B, T, 10)
            ce = F.cross_entropy(logits.float().flatten(0, 2), target.flatten(), reduction="none").view_as(
                target
            )
            wp = frame[..., None] * vis[:, :, _TIPS]  # (B, T, 10): real frames, visible tips ...
            if ref_mask is not None:  # ... of windows that were given the keyboard
                wp = wp * ref_mask.float()[:, None, None]
            pointer_ce = _wmean(ce, wp)
        terms = torch.stack(
            [coord, heatmap, bone, velocity, visibility, coarse_l1, transcription, pointer_ce]
        )
        weights = torch.tensor(
            [
                c.loss_coordinate,
                c.loss_heatmap,
                c.loss_bone,
                c.loss_velocity,
                c.loss_visibility,
                c.loss_coarse,
                c.loss_transcription,
                c.loss_pointer,
            ],
            device=terms.device,
            dtype=terms.dtype,
        )
        return (terms * weights).sum(), terms.detach()
