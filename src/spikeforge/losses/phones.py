"""An auxiliary phone loss: CTC of per-step phone scores against the phones of the clip's word (not in the papers).

The keyword classes say only which word a clip is; the phones say which sounds it is made of, shared between words
(`off` and `four`, `no` and `go`), so the layers below the readout learn units that every word's classifier can use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def phone_ctc_loss(scores: torch.Tensor, phones: torch.Tensor) -> torch.Tensor:
    """CTC (Graves et al. 2006) of scores `[T, B, P + 1]` (blank last) against phones `[B, L]` (−1-padded; none: silence),
    −log p(phones | scores) divided by each clip's number of phones (at least 1), mean over clips."""
    blank = scores.shape[-1] - 1
    if phones.numel() and int(phones.max()) >= blank:
        raise ValueError(f"phone index {int(phones.max())} but the phone head has {blank} phones and a blank; "
                         f"set model.phone_classes to the number of phones + 1")
    lengths = (phones >= 0).sum(1)
    log_probs = F.log_softmax(scores.float(), -1)
    steps = torch.full((scores.shape[1],), scores.shape[0], dtype=torch.long)
    nll = F.ctc_loss(log_probs, phones.clamp_min(0), steps, lengths, blank=blank, reduction="none", zero_infinity=True)
    return (nll / lengths.clamp_min(1)).mean()
