"""Mesh latent diffusion model (paper 000 §3.3, Fig. 4, supp. A.3; DiT with adaLN-Zero).

Tokens: the (whitened) mesh latent x_t as 21 tokens × 8 channels, concatenated per token with the
joint condition Ĵ0 (21 × 3, root-relative / JOINT_SCALE) → 21 × 11 → Linear → width, plus a learned
token embedding. Each block (all three sub-layers modulated by adaLN-Zero from the conditioning
vector c = timestep embedding + pooled global image feature):
  1. cross-attention from the tokens to each of the four image-feature levels: the query (width w)
     is split into four groups of w/4 channels, group l attends to level l with its own K/V, and the
     four results are concatenated (back to w) and projected — the paper's "cross-attention with
     each image feature, concatenated", at the cost of one attention of width w;
  2. self-attention over the 21 tokens;
  3. MLP.
Final adaLN layer → Linear → 8 per token → the 168-d latent x̂0 (x0 prediction, paper eq. 4).

Cost control (DESIGN §10): image features and the cross-attention keys/values of every block are
computed once per image (`prepare_context`); when many hypotheses share one image their queries are
folded into one long query sequence against that image's keys instead of repeating the keys.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.nets.mesh_ae import LATENT_CHANNELS, LATENT_TOKENS
from core.nets.joint_diffusion import timestep_embedding
from core.nets.layers import PlainLayerNorm, gated, mlp_activation, modulate


@dataclass
class MeshLDMConfig:
    width: int = 128
    depth: int = 3
    heads: int = 4
    cross_heads: int = 2          # heads per image-feature level (each of width / 4 channels)
    mlp_ratio: float = 2.0
    level_dims: list[int] = field(default_factory=lambda: [32, 64, 128, 192])
    level_tokens: list[int] = field(default_factory=lambda: [256, 256, 64, 16])
    tokens: int = LATENT_TOKENS
    latent_channels: int = LATENT_CHANNELS
    joint_channels: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return modulate(x, shift[:, None], scale[:, None])


class Block(nn.Module):
    def __init__(self, cfg: MeshLDMConfig) -> None:
        super().__init__()
        w = cfg.width
        self.heads = cfg.heads
        self.n_levels = len(cfg.level_dims)
        self.cross_heads = cfg.cross_heads
        if w % (self.n_levels * cfg.cross_heads):
            raise ValueError("width must be divisible by levels × cross_heads")
        self.group = w // self.n_levels
        self.norm_c = PlainLayerNorm(w)
        self.q = nn.Linear(w, w)
        self.kv = nn.ModuleList(nn.Linear(d, 2 * self.group) for d in cfg.level_dims)
        self.cross_out = nn.Linear(w, w)
        self.norm_s = PlainLayerNorm(w)
        self.qkv = nn.Linear(w, 3 * w)
        self.proj = nn.Linear(w, w)
        self.norm_m = PlainLayerNorm(w)
        hidden = int(w * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), mlp_activation(), nn.Linear(hidden, w))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 9 * w))
        nn.init.zeros_(self.ada[1].weight)   # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def context(self, levels: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level (K, V), each (B_img, heads, N_l, d)."""
        out = []
        for lin, tok in zip(self.kv, levels):
            b, n, _ = tok.shape
            k, v = lin(tok).reshape(b, n, 2, self.cross_heads, -1).permute(2, 0, 3, 1, 4)
            out.append((k, v))
        return out

    def _cross(self, h: torch.Tensor, ctx: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        b, n, w = h.shape
        bc = ctx[0][0].shape[0]
        per = b // bc                                  # hypotheses per image (sample-major batch)
        q = self.q(h).reshape(bc, per * n, self.n_levels, self.cross_heads, -1)
        outs = []
        for i, (k, v) in enumerate(ctx):
            qi = q[:, :, i].transpose(1, 2)                        # (bc, cross_heads, per*n, d)
            o = F.scaled_dot_product_attention(qi, k, v)
            outs.append(o.transpose(1, 2).reshape(b, n, self.group))
        return self.cross_out(torch.cat(outs, -1))

    def forward(self, x: torch.Tensor, c: torch.Tensor, ctx) -> torch.Tensor:
        sc, gc, ac, ss, gs, as_, sm, gm, am = self.ada(c).chunk(9, -1)
        x = gated(x, ac[:, None], self._cross(_modulate(self.norm_c(x), sc, gc), ctx))
        b, n, w = x.shape
        h = _modulate(self.norm_s(x), ss, gs)
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = gated(x, as_[:, None], self.proj(h))
        return gated(x, am[:, None], self.mlp(_modulate(self.norm_m(x), sm, gm)))


class MeshLDMContext:
    """Per-image precomputation: cross-attention K/V of every block and the global image vector."""

    def __init__(self, kv: list, glob: torch.Tensor) -> None:
        self.kv = kv
        self.glob = glob

    @property
    def batch(self) -> int:
        return int(self.glob.shape[0])


class MeshLDM(nn.Module):
    """x̂0 = f(x_t, t | Ĵ0, image); x_t (B,168) whitened latent, t (B,), joints (B,21,3) / JOINT_SCALE."""

    def __init__(self, config: MeshLDMConfig | None = None) -> None:
        super().__init__()
        cfg = config or MeshLDMConfig()
        self.config = cfg
        w = cfg.width
        self.inp = nn.Linear(cfg.latent_channels + cfg.joint_channels, w)
        self.tok_emb = nn.Parameter(torch.randn(cfg.tokens, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.glob_mlp = nn.Sequential(nn.Linear(cfg.level_dims[-1], w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = PlainLayerNorm(w)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.head = nn.Linear(w, cfg.latent_channels)
        for m in (self.final_ada[1], self.head):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def prepare_context(self, levels: list[torch.Tensor]) -> MeshLDMContext:
        """Image tokens (from `ImageEncoder.features`) → K/V of every block, once per image."""
        return MeshLDMContext([blk.context(levels) for blk in self.blocks], self.glob_mlp(levels[-1].mean(1)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, joints: torch.Tensor,
                context: MeshLDMContext | None = None, levels: list[torch.Tensor] | None = None) -> torch.Tensor:
        cfg = self.config
        if context is None:
            if levels is None:
                raise ValueError("MeshLDM needs image features (levels) or a prepared context")
            context = self.prepare_context(levels)
        b = x_t.shape[0]
        if b % context.batch:
            raise ValueError(f"batch {b} is not a multiple of the image batch {context.batch}")
        per = b // context.batch
        x = x_t.reshape(b, cfg.tokens, cfg.latent_channels)
        h = self.inp(torch.cat([x, joints.to(x.dtype)], -1)) + self.tok_emb
        glob = context.glob.repeat_interleave(per, 0) if per > 1 else context.glob
        c = self.time_mlp(timestep_embedding(t, cfg.width)) + glob
        for blk, kv in zip(self.blocks, context.kv):
            h = blk(h, c, kv)
        shift, scale = self.final_ada(c).chunk(2, -1)
        return self.head(_modulate(self.norm(h), shift, scale)).reshape(b, -1)

    def flops_per_sample(self) -> int:
        """Matmul FLOPs of one denoiser call for one hypothesis (keys/values excluded: once per image)."""
        cfg = self.config
        w, n = cfg.width, cfg.tokens
        nl = len(cfg.level_dims)
        per_tok = 2 * (w * w + w * w + 3 * w * w + w * w + 2 * w * int(w * cfg.mlp_ratio))
        attn = 2 * 2 * n * (w // nl * sum(cfg.level_tokens) + w * n)
        return cfg.depth * (n * per_tok + attn) + 2 * n * w * (cfg.latent_channels + cfg.joint_channels + cfg.latent_channels)


def load_mesh_ldm(name: str = "mesh_ldm", models_dir=None) -> tuple[MeshLDM, dict]:
    from core.weights import load_network

    return load_network(name, lambda cfg: MeshLDM(MeshLDMConfig(**cfg["net"])), models_dir)
