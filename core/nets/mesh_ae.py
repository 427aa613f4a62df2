"""Mesh autoencoder (SpiralNet++; paper 000 §3.3, supp. A.2): mean-centred hand mesh ↔ latent 168 (21 × 8).

Encoder: per level l, SpiralConv (gather the S spiral neighbours of every vertex, concatenate, Linear)
+ ELU, then down-sampling to level l+1 (barycentric rows of `core.mesh.sampling`); flatten → Linear →
(μ, log σ²). Decoder: Linear → coarsest level, per level up-sampling then SpiralConv + ELU, final
SpiralConv → 3. Vertices go in and out in units of MESH_SCALE metres (a hand spans about ±1).

The sampling transforms are stored in the weights as buffers (non-persistent: they come from the
shipped resource), so the network is self-contained once built from a `MeshSampling`.
Latent statistics (per-dimension mean / std of μ over the training data) are persistent buffers so
that the mesh LDM can work in a whitened latent space (`normalise_latent` / `denormalise_latent`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.mesh.sampling import MeshSampling

MESH_SCALE = 0.1
LATENT_TOKENS = 21
LATENT_CHANNELS = 8
LATENT_DIM = LATENT_TOKENS * LATENT_CHANNELS


@dataclass
class MeshAEConfig:
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    latent_dim: int = LATENT_DIM

    def to_dict(self) -> dict:
        return asdict(self)


def _rows_to_index(m: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense (R, C) matrix with ≤ k non-zeros per row → (idx (R,k) long, w (R,k) float)."""
    w, idx = m.abs().topk(k, dim=1)
    w = torch.gather(m, 1, idx)
    return idx, w


class SpiralConv(nn.Module):
    def __init__(self, cin: int, cout: int, spiral: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("spiral", spiral.long(), persistent=False)
        self.lin = nn.Linear(cin * spiral.shape[1], cout)
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B,V,C) → (B,V,cout)
        b, v, c = x.shape
        s = self.spiral.shape[1]
        cout = self.lin.out_features
        if cout < c:
            # Fewer output than input channels: apply each spiral position's weights first, then
            # gather the (smaller) results — same sum, less memory traffic.
            w = self.lin.weight.reshape(cout, s, c).permute(2, 1, 0).reshape(c, s * cout)
            y = (x @ w).reshape(b, v * s, cout)
            flat = (self.spiral * s + torch.arange(s, device=x.device)).reshape(-1)
            return y.index_select(1, flat).reshape(b, v, s, cout).sum(2) + self.lin.bias
        g = x.index_select(1, self.spiral.reshape(-1)).reshape(b, v, -1)
        return self.lin(g)


class Resample(nn.Module):
    """x_out = M · x_in for a sparse (V_out, V_in) matrix with ≤ 3 non-zeros a row (barycentric rows),
    applied as one sparse-CSR × dense product in vertex-major layout (≈ 6× faster than gathering)."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        idx, w = _rows_to_index(m)
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("w", w.float(), persistent=False)
        self.shape = tuple(m.shape)
        self._csr = None

    def _matrix(self, device) -> torch.Tensor:
        if self._csr is None or self._csr.device != device:
            import warnings

            rows = torch.arange(self.shape[0], device=self.idx.device).repeat_interleave(self.idx.shape[1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # "sparse CSR support is in beta"
                coo = torch.sparse_coo_tensor(torch.stack([rows, self.idx.reshape(-1)]), self.w.reshape(-1),
                                              self.shape).coalesce()
                self._csr = coo.to_sparse_csr().to(device)
        return self._csr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, v, c = x.shape
        xv = x.transpose(0, 1).reshape(v, b * c)
        return (self._matrix(x.device) @ xv).reshape(self.shape[0], b, c).transpose(0, 1)


class MeshAE(nn.Module):
    def __init__(self, sampling: MeshSampling, config: MeshAEConfig | None = None) -> None:
        super().__init__()
        cfg = config or MeshAEConfig()
        self.config = cfg
        ch = list(cfg.channels)
        n_levels = len(ch)
        if len(sampling.spirals) < n_levels + 1:
            raise ValueError(f"need {n_levels + 1} mesh levels, the resource has {len(sampling.spirals)}")
        self.num_vertices = sampling.num_vertices[0]
        self.coarse = sampling.num_vertices[n_levels]
        self.register_buffer("joint_regressor", sampling.joint_regressor.clone(), persistent=False)
        enc, dn = [], []
        cin = 3
        for l in range(n_levels):
            enc.append(SpiralConv(cin, ch[l], sampling.spirals[l]))
            dn.append(Resample(sampling.down[l]))
            cin = ch[l]
        self.enc, self.down = nn.ModuleList(enc), nn.ModuleList(dn)
        self.enc_fc = nn.Linear(self.coarse * ch[-1], 2 * cfg.latent_dim)
        self.dec_fc = nn.Linear(cfg.latent_dim, self.coarse * ch[-1])
        # Decoder: up to level l then SpiralConv(ch[l] → ch[l-1]) for l = L-1 … 1; the last step goes
        # up to the full mesh and straight into the output SpiralConv (ch[0] → 3) — a full-resolution
        # ch[0] → ch[0] conv would double the decoding cost for little gain.
        dec, up = [], []
        for l in reversed(range(1, n_levels)):
            up.append(Resample(sampling.up[l]))
            dec.append(SpiralConv(ch[l], ch[l - 1], sampling.spirals[l]))
        self.dec, self.up = nn.ModuleList(dec), nn.ModuleList(up)
        self.up0 = Resample(sampling.up[0])
        self.head = SpiralConv(ch[0], 3, sampling.spirals[0])
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(cfg.latent_dim))

    # -- encoder / decoder (units: MESH_SCALE metres, mean-centred) --------------------------
    def encode(self, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,V,3) mean-centred, scaled → (μ, log σ²) each (B, latent)."""
        x = verts
        for conv, dn in zip(self.enc, self.down):
            x = dn(F.elu(conv(x)))
        mu, logvar = self.enc_fc(x.flatten(1)).chunk(2, -1)
        return mu, logvar.clamp(-20, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) → (B,V,3) scaled, mean-centred (approximately: the decoder is not constrained)."""
        x = self.dec_fc(z).reshape(z.shape[0], self.coarse, -1)
        for up, conv in zip(self.up, self.dec):
            x = F.elu(conv(up(x)))
        return self.head(self.up0(x))

    def forward(self, verts: torch.Tensor, sample: bool = True):
        mu, logvar = self.encode(verts)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decode(z), mu, logvar

    def regress_joints(self, verts: torch.Tensor) -> torch.Tensor:
        """(B,V,3) → (B,21,3) with the fitted linear regressor (any units / frame)."""
        return torch.einsum("jv,bvc->bjc", self.joint_regressor.to(verts.dtype), verts)

    # -- metres API ------------------------------------------------------------------------------
    def encode_metres(self, verts_m: torch.Tensor) -> torch.Tensor:
        """Vertices (B,V,3) metres, any translation → μ (B, latent) (the mesh is mean-centred here)."""
        v = verts_m - verts_m.mean(1, keepdim=True)
        return self.encode(v / MESH_SCALE)[0]

    def decode_metres(self, z: torch.Tensor, root_relative: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, latent) → (vertices (B,V,3), joints (B,21,3)) in metres; `root_relative` puts the
        regressed wrist at the origin (the frame of the stage-1 joints), else mean-centred."""
        v = self.decode(z) * MESH_SCALE
        j = self.regress_joints(v)
        if root_relative:
            w = j[:, :1]
            v, j = v - w, j - w
        return v, j

    def normalise_latent(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean) / self.latent_std

    def denormalise_latent(self, zn: torch.Tensor) -> torch.Tensor:
        return zn * self.latent_std + self.latent_mean

    def flops_per_decode(self) -> int:
        f = 2 * self.dec_fc.in_features * self.dec_fc.out_features
        for conv, up in zip(self.dec, self.up):
            nv = up.idx.shape[0]
            f += 2 * nv * conv.lin.in_features * conv.lin.out_features
        f += 2 * self.num_vertices * self.head.lin.in_features * 3
        return f


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)), mean over batch and latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()


def load_mesh_ae(name: str = "mesh_ae", models_dir=None, sampling: MeshSampling | None = None) -> MeshAE:
    """The shipped autoencoder (eval mode)."""
    from core.mesh.sampling import load_sampling
    from core.weights import load_network

    return load_network(name, lambda cfg: MeshAE(sampling or load_sampling(), MeshAEConfig(**cfg["net"])),
                        models_dir)[0]
