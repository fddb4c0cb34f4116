"""PyTorch twin of the reference ViT of `deno task speed --method vit` (model/ops/vit_step_spec.ts).

A plain pre-LN ViT in timm's module layout and names: the patch embedding is a linear layer on the flattened
`(py, px, c)` patches (as ours, so both sides do the same FLOPs), a learned position embedding, `depth` blocks of
(LN, multi-head attention with a fused qkv, LN, 4x GELU MLP), a final LN and a linear pixel head regressing each
patch's values with MSE; Adam (torch.optim.AdamW with the given weight decay, 0 in the benchmark).
Driven by bench/speed_torch.py through `Twin`; bench/gpu_torch_speed.py trains `Vit` on CUDA.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, N, hd]
        attn = torch.softmax((q * hd**-0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Vit(nn.Module):
    def __init__(self, img, patch, dim, depth, heads, mlp_ratio):
        super().__init__()
        self.patch = patch
        tokens = (img // patch) ** 2
        pdim = 3 * patch * patch
        self.patch_embed = nn.Linear(pdim, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, pdim)

    def patchify(self, x):
        b, c, h, w = x.shape
        p = self.patch
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)  # [B, N, p*p*3], (py, px, c) inside a patch

    def forward(self, images):
        patches = self.patchify(images)
        x = self.patch_embed(patches) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return F.mse_loss(self.head(self.norm(x)), patches)


class Twin:
    """`cfg`: model/ops/vit_step_spec.ts `VitConfig`; `hyper`: {lr, weightDecay}."""

    def __init__(self, cfg, hyper):
        self.model = Vit(cfg["img"], cfg["patch"], cfg["dim"], cfg["depth"], cfg["heads"], cfg["mlpRatio"])
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=hyper["lr"], weight_decay=hyper["weightDecay"])

    def load(self, params):
        self.model.load_state_dict(params, strict=True)

    def named_params(self):
        return dict(self.model.named_parameters())

    def prepare(self, images, draws, replay):
        return images  # our only draw is the host-patchified batch; the twin patchifies on the device

    def step(self, images):
        self.opt.zero_grad(set_to_none=True)
        loss = self.model(images)
        loss.backward()
        self.opt.step()
        return loss.detach()
