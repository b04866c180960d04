"""KHP (Keypoint and Heatmap Prediction) configuration."""

from __future__ import annotations

from transformers import PretrainedConfig

from .hand_anchor import resolve as resolve_hand_anchor
from .skeleton import NUM_KEYPOINTS


class KHPConfig(PretrainedConfig):
    r"""Configuration of a [`KHPModel`]: audio features -> keypoints, visibility and coarse frames.

    The temporal encoder sees a bounded context: each of `num_layers` attention layers looks
    `attention_window` frames each way, and the two front-end convolutions `conv_kernel_size // 2`
    frames each, so the model's output at a frame depends on `receptive_field` frames either side
    and nothing further. That is what lets a pipeline run any length in overlapping chunks and get
    exactly the single-pass result.

    Args:
        feature_size: log-mel bins per frame (from `APVGFeatureExtractor`).
        num_keypoints: keypoints per frame (56: 14 body + 2 × 21 hand).
        hidden_size, num_layers, num_heads, intermediate_size: the transformer encoder.
        attention_window: frames each way a layer attends to (30 = 1 s at 30 fps).
        conv_kernel_size: kernel of the two convolutions in the front end.
        dropout: dropout in the encoder.
        coarse_size: side of the coarse frames (32 or 64); 0 disables the coarse-frame head.
        coarse_channels: channels of the coarse decoder's first (4 × 4) layer, halved per upsampling.
        heatmap_size, heatmap_sigma: resolution and Gaussian width of the heatmap-space loss.
        loss_*: weights of the loss terms (coordinates, heatmaps, bone lengths, velocity,
            visibility, coarse frames); `invisible_weight` scales coordinate terms of hidden keypoints.
        hand_weight: extra weight on hand keypoints in the coordinate terms.
        reference_dropout: in training, the fraction of windows whose reference (keypoints and frame
            of the performer in the scene) is withheld, so one model works with and without it.

        architecture: "audio" (audio features -> motion directly, the first models) or "notes": a
            transcriber hears the notes (88-key onset / sustain / velocity per frame), and a motion
            decoder plays them: it reads a piano roll (transcribed, or from MIDI) and the keyboard's
            geometry in the reference frame, and aims each fingertip at a key (a pointer over the
            88 key positions plus a small offset).
        num_keys: keys of the keyboard (88).
        transcriber_layers, transcriber_channels: the transcriber's local-attention layers and the
            channels of its 2D convolutions over (time, frequency).
        key_context: frames of piano roll each way the fingertip pointer sees per key (anticipation).
        tip_offset_scale: the largest fingertip offset from its key's centre, in image units.
        key_contact_frames: key contact (0: off). For this many frames from a note's onset, the
            fingertip that points at the struck key most surely sits on the key's press point: a
            struck key has a finger on it. The pointer picks the finger; the keyboard's geometry
            says where. Chosen on the validation split (4 for the virtual pianist).
        key_approach_frames: with key contact, for this many frames before a fingertip comes down on
            a key it is raised above the key (`press_lift`): it is seen to strike.
        key_release_frames: with key contact, for this many frames after a fingertip leaves a key it
            eases back from above the key (`press_lift`) to where the decoder puts it, instead of jumping
            there (0: off).
        key_contact_reach: with key contact, a struck key that no fingertip points at (its most likely
            key) takes the free fingertip (touching no struck key) most likely to point at it, if that
            likelihood is at least this; 0: off (only fingertips pointing at the key strike it).
        key_contact_hold: with key contact, choose the striking fingertip once, on the onset frame, and
            keep it on the key (False: chosen again on every frame while the key is struck).
        free_lift: with key contact, the fingertips that strike nothing are raised by this fraction of
            their key's length towards its back (0: off): they hover instead of resting on a key.
        press_lift: how far a raised fingertip sits from the press point, as a fraction of the key's
            length towards its back (the image direction of "up" for a camera in front and above).
        press_depth: where on a key top a fingertip presses, as fractions of the way from the key's
            front edge to its back (white keys, black keys).
        onset_threshold, frame_threshold: decoding the transcriber's probabilities into notes.
        loss_transcription: weight of the transcription loss (onset and sustain BCE, velocity MSE).
        loss_pointer: weight of the fingertip pointer's cross-entropy against the key under each true
            fingertip (nearest key centre): it teaches which key a finger is over, not only where.
        pointer_target: which key is "under" a true fingertip for that cross-entropy: the one with the
            nearest "centre" (the first models) or the nearest "press" point (where key contact puts it).
        hand_anchor: None (off), or hand anchoring's settings (`apvg_hf.hand_anchor`; fitted for one
            performer by `apvg_hf.training.khp.fit_hand_anchor`): after the network, hands far from the
            keys of the notes played move there. "notes" models only.

    >>> from apvg_hf import KHPConfig
    >>> config = KHPConfig(hidden_size=64, num_layers=2)
    >>> config.model_type, config.receptive_field
    ('apvg_khp', 64)
    """

    model_type = "apvg_khp"

    def __init__(
        self,
        feature_size: int = 80,
        num_keypoints: int = NUM_KEYPOINTS,
        hidden_size: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        intermediate_size: int = 768,
        attention_window: int = 30,
        conv_kernel_size: int = 5,
        dropout: float = 0.1,
        coarse_size: int = 32,
        coarse_channels: int = 64,
        heatmap_size: int = 64,
        heatmap_sigma: float = 0.03,
        loss_coordinate: float = 1.0,
        loss_heatmap: float = 1.0,
        loss_bone: float = 0.5,
        loss_velocity: float = 2.0,
        loss_visibility: float = 0.1,
        loss_coarse: float = 1.0,
        invisible_weight: float = 0.5,
        hand_weight: float = 2.0,
        reference_dropout: float = 0.3,
        initializer_range: float = 0.02,
        architecture: str = "audio",
        num_keys: int = 88,
        transcriber_layers: int = 3,
        transcriber_channels: int = 16,
        key_context: int = 8,
        tip_offset_scale: float = 0.05,
        key_contact_frames: int = 0,
        key_approach_frames: int = 0,
        key_release_frames: int = 0,
        press_lift: float = 0.5,
        key_contact_reach: float = 0.0,
        key_contact_hold: bool = False,
        free_lift: float = 0.0,
        press_depth: tuple[float, float] | list[float] = (0.2333, 0.65),
        onset_threshold: float = 0.5,
        frame_threshold: float = 0.5,
        loss_transcription: float = 1.0,
        loss_pointer: float = 0.2,
        pointer_target: str = "centre",
        hand_anchor: dict | None = None,
        **kwargs,
    ):
        if architecture not in ("audio", "notes"):
            raise ValueError(f"architecture must be 'audio' or 'notes', got {architecture!r}")
        if coarse_size not in (0, 16, 32, 64, 128):
            raise ValueError(f"coarse_size must be 0 (off), 16, 32, 64 or 128, got {coarse_size}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        if attention_window < 1 or conv_kernel_size < 1 or conv_kernel_size % 2 == 0:
            raise ValueError("attention_window must be >= 1 and conv_kernel_size odd")
        self.feature_size = feature_size
        self.num_keypoints = num_keypoints
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.attention_window = attention_window
        self.conv_kernel_size = conv_kernel_size
        self.dropout = dropout
        self.coarse_size = coarse_size
        self.coarse_channels = coarse_channels
        self.heatmap_size = heatmap_size
        self.heatmap_sigma = heatmap_sigma
        self.loss_coordinate = loss_coordinate
        self.loss_heatmap = loss_heatmap
        self.loss_bone = loss_bone
        self.loss_velocity = loss_velocity
        self.loss_visibility = loss_visibility
        self.loss_coarse = loss_coarse
        self.invisible_weight = invisible_weight
        self.hand_weight = hand_weight
        self.reference_dropout = reference_dropout
        self.initializer_range = initializer_range
        self.architecture = architecture
        self.num_keys = num_keys
        self.transcriber_layers = transcriber_layers
        self.transcriber_channels = transcriber_channels
        self.key_context = key_context
        self.tip_offset_scale = tip_offset_scale
        if key_contact_frames < 0:
            raise ValueError(f"key_contact_frames must be >= 0, got {key_contact_frames}")
        if len(press_depth) != 2 or not all(0.0 <= float(v) <= 1.0 for v in press_depth):
            raise ValueError(f"press_depth must be two fractions in [0, 1] (white, black), got {press_depth}")
        if key_approach_frames < 0:
            raise ValueError(f"key_approach_frames must be >= 0, got {key_approach_frames}")
        self.key_contact_frames = int(key_contact_frames)
        self.key_approach_frames = int(key_approach_frames)
        if key_release_frames < 0:
            raise ValueError(f"key_release_frames must be >= 0, got {key_release_frames}")
        self.key_release_frames = int(key_release_frames)
        self.press_lift = float(press_lift)
        if not 0.0 <= key_contact_reach <= 1.0:
            raise ValueError(f"key_contact_reach must be a probability in [0, 1], got {key_contact_reach}")
        self.key_contact_reach = float(key_contact_reach)
        self.key_contact_hold = bool(key_contact_hold)
        self.free_lift = float(free_lift)
        self.press_depth = [float(v) for v in press_depth]
        self.onset_threshold = onset_threshold
        self.frame_threshold = frame_threshold
        self.loss_transcription = loss_transcription
        self.loss_pointer = loss_pointer
        if pointer_target not in ("centre", "press"):
            raise ValueError(f"pointer_target must be 'centre' or 'press', got {pointer_target!r}")
        self.pointer_target = pointer_target
        if hand_anchor is not None:
            if architecture != "notes":
                raise ValueError("hand_anchor needs a 'notes' KHP (it places hands on the notes' keys)")
            hand_anchor = resolve_hand_anchor(hand_anchor)
        self.hand_anchor = hand_anchor
        super().__init__(**kwargs)

    @property
    def receptive_field(self) -> int:
        """Frames of context each way that can influence one output frame (of the motion decoder, for
        "notes": its input is the piano roll)."""
        contact = self.key_contact_frames + max(self.key_approach_frames, self.key_release_frames)
        extra = max(self.key_context, contact) if self.architecture == "notes" else 0
        return self.num_layers * self.attention_window + 2 * (self.conv_kernel_size // 2) + extra

    @property
    def transcriber_receptive_field(self) -> int:
        """Frames of audio features each way that can influence one frame of transcription."""
        return self.transcriber_layers * self.attention_window + 3
