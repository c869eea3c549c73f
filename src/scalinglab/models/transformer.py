"""A decoder-only Transformer over tokens: token and position embeddings, `depth` pre-norm blocks
(causal self-attention with `heads` heads, then an MLP of `mlp_ratio` x width), a final norm and
an untied linear readout to the vocabulary. `width` sizes it (`heads` must divide it).

Attention is written as two matmuls rather than `scaled_dot_product_attention`, so torch's flop
counter sees it (it counts no FLOPs for that fused op on a CPU). Its logits are scaled by
1/sqrt(d_head) under SP and by sqrt(d_base)/d_head under muP (Yang et al. 2022, "Tensor Programs
V": 1/d, scaled to equal SP at the base width, d_base = base_width / heads); the readout, the
LRs and the inits follow from models/parametrization.py's role rule like every family's.
"""

import math

import torch
from torch import Tensor, nn

from scalinglab import ConfigError, check_number


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float,
                 scale: float) -> None:
        super().__init__()
        self.heads, self.scale = heads, scale
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))
        self.drop = nn.Dropout(dropout)

    def attention(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (b, heads, t, d_head)
        logits = (q @ k.transpose(-2, -1)) * self.scale
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        weights = self.drop(logits.masked_fill(~causal, float("-inf")).softmax(-1))
        return self.proj((weights @ v).transpose(1, 2).reshape(b, t, c))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    def __init__(self, num_outputs: int, context: int, depth: int = 2, width: int = 64,
                 heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0,
                 parametrization: str = "sp", base_width: float | None = None) -> None:
        super().__init__()
        depth = check_number("model.depth", depth, low=1, integer=True)
        width = check_number("model.width", width, low=1, integer=True)
        heads = check_number("model.heads", heads, low=1, integer=True)
        context = check_number("model.context", context, low=1, integer=True)
        mlp_ratio = check_number("model.mlp_ratio", mlp_ratio, low=1, integer=True)
        dropout = check_number("model.dropout", dropout, 0, 1, high_open=True)
        if width % heads:
            raise ConfigError(f"model.heads={heads} does not divide model.width={width}")
        d_head = width // heads
        if parametrization == "mup":  # scalinglab's factory passes its model.base_width
            d_base = (base_width or width) / heads
            scale = math.sqrt(d_base) / d_head
        else:
            scale = 1 / math.sqrt(d_head)
        self.tokens = nn.Embedding(num_outputs, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio, dropout, scale)
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (batch, time, vocabulary) for tokens (batch, time), time <= context."""
        t = x.shape[1]
        h = self.tokens(x) + self.positions(torch.arange(t, device=x.device))
        return self.readout(self.norm(self.blocks(h)))

