"""Fine-tune a cross-encoder on mined groups: data contract, losses, trainer, model card."""

from __future__ import annotations

# Loading lives in synthrank.scoring (shared with evaluation); benches and tests import it from here.
from synthrank.scoring import load_cross_encoder as load_cross_encoder
