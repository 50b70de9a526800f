"""LMGen for full-duplex models whose depformer also predicts the user's stream, in either moshi.

NVIDIA's fork has its own LMGen that already takes the user's 8 codebooks (and needs a device): the worker runs it
as NVIDIA's server builds it (`make_lmgen`). With PyPI moshi the class below adapts moshi's LMGen:

PersonaPlex runs with dep_q=16: its depformer predicts the agent's 8 codebooks and the user's 8.
moshi's LMGen then expects `num_codebooks - dep_q - 1 = 0` tokens from the user and would ignore
the Mimi tokens of the microphone. As PersonaPlex's own LMGen does, the user's tokens are written
over the predicted ones in the user rows of the token cache, at the position the next step reads,
each row with its delay. The step's compute is unchanged; only the user's audio really drives it.
"""

from __future__ import annotations

from collections import deque

import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen, LMModel

from harness.worker.flavour import is_nvidia

USER_CODEBOOKS = 8


class FullDuplexLMGen(LMGen):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - LMGen's own signature
        super().__init__(*args, **kwargs)
        lm = self.lm_model
        first_user_row = 1 + lm.num_codebooks - 1 - USER_CODEBOOKS  # text row, then agent rows
        self._user_rows = slice(first_user_row, first_user_row + USER_CODEBOOKS)
        self._user_delays = list(lm.delays[self._user_rows])
        self._forcing = lm.num_codebooks - lm.dep_q - 1 < USER_CODEBOOKS
        self._history: deque[torch.Tensor] = deque(maxlen=max(self._user_delays) + 1)

    def _init_streaming_state(self, batch_size: int):  # noqa: ANN202 - moshi's state type
        self._history.clear()
        return super()._init_streaming_state(batch_size)

    @torch.no_grad()
    def step(self, input_tokens: torch.Tensor, depformer_replace_tokens: torch.Tensor | None = None):  # noqa: ANN201
        if self._forcing:
            self._force_user_tokens(input_tokens)
        return super().step(input_tokens, depformer_replace_tokens)

    def _force_user_tokens(self, input_tokens: torch.Tensor) -> None:
        state = self._streaming_state
        assert state is not None, "wrap steps in `with lm_gen.streaming(batch_size):`"
        self._history.append(input_tokens[:, :USER_CODEBOOKS, 0])
        rows = []
        for q, delay in enumerate(self._user_delays):
            if delay < len(self._history):
                rows.append(self._history[-1 - delay][:, q])
            else:  # before the stream has `delay` frames, LMGen feeds its initial token anyway
                rows.append(state.initial[0, self._user_rows.start + q, 0].expand(input_tokens.shape[0]))
        values = torch.stack(rows, dim=1)[:, :, None]
        positions = (state.offsets % state.cache.shape[2])[:, None, None].expand_as(values)
        state.cache[:, self._user_rows].scatter_(2, positions, values)


def make_lmgen(lm: LMModel, mimi: MimiModel, device: torch.device) -> LMGen:
    """The LMGen the server of the installed moshi would build: NVIDIA's as its ServerState does (0.5 s of silence
    frames around the text prompt), PyPI's adapted for the user's stream."""
    if is_nvidia():
        return LMGen(lm, device=device, audio_silence_frame_cnt=int(0.5 * mimi.frame_rate),
                     sample_rate=int(mimi.sample_rate), frame_rate=mimi.frame_rate)
    return FullDuplexLMGen(lm)
