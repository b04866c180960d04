"""APVGFeatureExtractor: a waveform -> log-mel features with exactly one row per video frame.

Row i describes the audio around the middle of video frame i, `(i + 0.5) / fps` seconds, through an
`n_fft`-sample window: T = ceil(duration * fps) rows for any sampling rate and any fps. Each row depends
only on the samples in its window, so long audio can be processed in pieces (with `n_fft / 2` samples
of context on either side) and give the same rows.

>>> import numpy as np
>>> fe = APVGFeatureExtractor(fps=30)
>>> out = fe(np.zeros(44100, dtype=np.float32), sampling_rate=44100)  # 1 s at 44.1 kHz
>>> out["input_features"].shape, out["attention_mask"].shape
((1, 30, 80), (1, 30))
"""

from __future__ import annotations

import math

import numpy as np
import soxr
from transformers import BatchFeature, FeatureExtractionMixin, SequenceFeatureExtractor  # noqa: F401 (diffusers looks the base up here)
from transformers.audio_utils import mel_filter_bank
from transformers.utils import logging

logger = logging.get_logger(__name__)


class APVGFeatureExtractor(SequenceFeatureExtractor):
    """Log-mel features aligned to video frames.

    Args:
        feature_size: number of mel bands.
        sampling_rate: the rate features are computed at; other rates are resampled (soxr, high quality).
        fps: video frame rate: one feature row per frame.
        n_fft: window (and FFT) length in samples at `sampling_rate` (1024 = 64 ms at 16 kHz).
        f_min, f_max: mel band limits in Hz.
        padding_value: value of padded rows in a batch (silence is about -1.5 after scaling).
        floor_db: None: mel power is floored at 1e-10 (-100 dB), the first models' features. A number:
            floored at `floor_db` below the loudest mel band of the whole input (and never below
            1e-10), so the noise floor every real recording has (hiss, hum, room tone, dithering)
            sits at the floor instead of drawing a pattern 30-60 dB below the music. The features
            then depend on the whole input (its peak), not only on each frame's window.

    Input: a 1D waveform, a 2D multichannel one ((N, C) or (C, N), C <= 8, averaged to mono), or a list
    of them; numpy arrays, lists or torch tensors. Output: `input_features` (B, T, feature_size) and
    `attention_mask` (B, T) for batches of different lengths.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        fps: float = 30.0,
        n_fft: int = 1024,
        f_min: float = 30.0,
        f_max: float = 8000.0,
        padding_value: float = 0.0,
        return_attention_mask: bool = True,
        floor_db: float | None = None,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if fps <= 0 or n_fft < 16 or not 0 <= f_min < f_max <= sampling_rate / 2:
            raise ValueError(
                f"bad settings: fps={fps}, n_fft={n_fft}, f_min={f_min}, f_max={f_max}, sampling_rate={sampling_rate}"
            )
        if floor_db is not None and not (math.isfinite(floor_db) and floor_db > 0):
            raise ValueError(f"floor_db must be None or a number > 0, got {floor_db}")
        self.floor_db = None if floor_db is None else float(floor_db)
        self.fps = float(fps)
        self.n_fft = int(n_fft)
        self.f_min, self.f_max = float(f_min), float(f_max)
        self.mel_filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=feature_size,
            min_frequency=f_min,
            max_frequency=f_max,
            sampling_rate=sampling_rate,
            norm="slaney",
            mel_scale="slaney",
            dtype=np.float32,
        )  # (n_fft // 2 + 1, feature_size)
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)

    # -- input checks ---------------------------------------------------------------------------------
    @staticmethod
    def to_mono(waveform) -> np.ndarray:
        """Any accepted waveform -> (N,) float32 mono (integer PCM scaled by its type, channels averaged;
        see `apvg_hf.video_io.to_float_waveform`); clear errors for what cannot be audio."""
        from .video_io import to_float_waveform, to_mono

        if hasattr(waveform, "detach"):  # torch tensor
            waveform = waveform.detach().cpu().float().numpy()
        return to_mono(to_float_waveform(waveform))

    def num_frames(self, num_samples: int, sampling_rate: int, fps: float | None = None) -> int:
        """T = ceil(duration * fps), with half a sample of tolerance: a waveform whose length was
        rounded to whole samples (e.g. 167 frames at 30 fps = 89066.67 samples at 16 kHz, stored as
        89067) still gets 167 rows."""
        fps = fps or self.fps
        return max(1, math.ceil((num_samples - 0.5) / sampling_rate * fps - 1e-9))

    # -- features -------------------------------------------------------------------------------------
    def _log_mel(self, x: np.ndarray, num_frames: int, fps: float, block: int = 2048) -> np.ndarray:
        """(N,) mono at self.sampling_rate -> (num_frames, feature_size), computed in blocks of rows."""
        half = self.n_fft // 2
        padded = np.pad(x, (half, half + self.n_fft))
        out = np.empty((num_frames, self.feature_size), dtype=np.float32)
        offsets = np.arange(self.n_fft)
        for b0 in range(0, num_frames, block):
            rows = np.arange(b0, min(b0 + block, num_frames))
            centres = np.round((rows + 0.5) * self.sampling_rate / fps).astype(np.int64)
            centres = np.minimum(centres, len(x))  # (the last frame's middle may fall after the end)
            frames = padded[centres[:, None] + offsets[None, :]] * self.window  # (R, n_fft)
            power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # (R, n_fft // 2 + 1)
            out[rows] = power @ self.mel_filters  # (R, feature_size) mel power
        floor = 1e-10
        if self.floor_db is not None and num_frames:
            floor = max(floor, float(out.max()) * 10 ** (-self.floor_db / 10))
        return (np.log10(np.maximum(out, floor)) + 4.0) / 4.0

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        fps: float | None = None,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurise one waveform or a batch (a list of waveforms) -> BatchFeature."""
        if sampling_rate is None:
            logger.warning(
                f"No sampling_rate given to {self.__class__.__name__}: assuming {self.sampling_rate} Hz. "
                "Pass sampling_rate= to resample correctly."
            )
            sampling_rate = self.sampling_rate
        if not (math.isfinite(sampling_rate) and sampling_rate > 0):
            raise ValueError(f"sampling_rate must be a finite number > 0, got {sampling_rate}")
        fps = float(fps or self.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {fps}")
        batched = isinstance(raw_audio, list | tuple) and len(raw_audio) > 0 and not np.isscalar(raw_audio[0])
        waves = list(raw_audio) if batched else [raw_audio]
        features = []
        for wave in waves:
            x = self.to_mono(wave)
            T = self.num_frames(len(x), sampling_rate, fps)
            if sampling_rate != self.sampling_rate:
                x = soxr.resample(x, sampling_rate, self.sampling_rate, quality="HQ").astype(np.float32)
            features.append(self._log_mel(x, T, fps))
        encoded = BatchFeature({"input_features": features})
        return self.pad(
            encoded,
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            return_attention_mask=self.return_attention_mask
            if return_attention_mask is None
            else return_attention_mask,
            return_tensors=return_tensors or "np",
        )
