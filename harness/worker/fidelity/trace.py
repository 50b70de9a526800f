"""Step an LMModel frame by frame outside LMGen, greedy or teacher-forced, keeping every logit.

LMGen samples its tokens and keeps only them; fidelity needs the logits, and the candidate must read the
reference's tokens (teacher forcing). This loop calls the model's own pieces (`forward_text`, then
`forward_depformer` codebook by codebook in a fresh depformer stream), as `LMGen._step` and
`LMGen.depformer_step` do, and builds each step's input column as LMGen's token cache does:

- row k reads the initial token while the step index is <= delays[k] (LMGen's `is_init`);
- rows the model generates (text, the depformer's codebooks) read the token chosen at the previous step;
- the user's rows (the last 8) read the user's Mimi token of frame (step - delays[k]); PersonaPlex's depformer
  also predicts them (dep_q=16), and, as its LMGen and harness.worker.pipeline.lmgen do, the user's tokens win.

Greedy (argmax) rather than sampling: two models compared on sampled tokens differ by the dice, not the numerics.
tests/test_fidelity.py checks this loop's free run against LMGen's own greedy steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from moshi.models.lm import LMModel

USER_CODEBOOKS = 8


@dataclass
class Trace:
    tokens: torch.Tensor  # [frames, 1 + dep_q] long: the token each step chose (or was forced to), text first
    text_logits: torch.Tensor  # [frames, text_card] float32, host
    audio_logits: torch.Tensor  # [frames, dep_q, card] float32, host


def trace(lm: LMModel, user: torch.Tensor, forced: Optional[torch.Tensor] = None) -> Trace:
    """Run len(user) steps of `lm` on the user's Mimi tokens ([frames, 8] long).

    forced None: greedy free run, each step reads the tokens it chose itself. forced [frames, 1 + dep_q]: teacher
    forcing, each step reads (and conditions the depformer on) these tokens instead; the logits are the model's own.
    """
    frames = user.shape[0]
    device = next(iter(lm.parameters())).device
    k_rows, dep_q = lm.num_codebooks, lm.dep_q
    delays = [int(d) for d in lm.delays]
    first_user = k_rows - USER_CODEBOOKS
    initial = lm._get_initial_token().to(device)  # [1, K, 1]
    chosen: list[torch.Tensor] = []
    text_out: list[torch.Tensor] = []
    audio_out: list[torch.Tensor] = []
    user = user.to(device)
    with torch.no_grad(), lm.streaming(1):
        for step in range(frames):
            column = initial.clone()
            for k in range(k_rows):
                if step <= delays[k]:
                    continue
                if k >= first_user:
                    column[0, k, 0] = user[step - delays[k], k - first_user]
                elif k <= dep_q:
                    column[0, k, 0] = chosen[step - 1][k]
            transformer_out, text_logits = lm.forward_text(column)
            text_logits = text_logits[0, 0, 0]
            own = forced[step].to(device) if forced is not None else None
            token = own[0] if own is not None else text_logits.float().argmax()
            tokens = [token]
            step_logits = []
            with lm.depformer.streaming(1):
                for cb in range(dep_q):
                    logits = lm.forward_depformer(cb, tokens[-1].view(1, 1, 1), transformer_out)[0, 0, 0]
                    step_logits.append(logits)
                    tokens.append(own[1 + cb] if own is not None else logits.float().argmax())
            chosen.append(torch.stack(tokens))
            text_out.append(text_logits.float().cpu())
            audio_out.append(torch.stack(step_logits).float().cpu())
    return Trace(tokens=torch.stack(chosen).cpu(), text_logits=torch.stack(text_out),
                 audio_logits=torch.stack(audio_out))
