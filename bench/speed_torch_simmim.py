"""PyTorch twin of SimMIM (ViT) for `deno task speed --method simmim --vs-torch` (dev-only; bench/speed_torch.py drives it).

The structure of the official code (simmim:models/simmim.py `SimMIM(VisionTransformerForSimMIM)` on the BEiT-style
models/vision_transformer.py, main_simmim.py's step, optimizer.py's parameter groups), written for torch 1.13
without timm: Conv2d patch embedding, mask tokens blended in by the mask, cls token, one shared relative position
bias, pre-LN blocks with LayerScale, q/v biases (no key bias) and timm's per-sample DropPath at
`linspace(0, rate, depth)`, final LayerNorm, 1x1-conv + PixelShuffle decoder, masked L1 loss; torch.optim.AdamW
with `get_pretrain_param_groups`, gradient-norm clipping before each step. Dropout(0) modules are left out (at
rate 0 they return their input). float32 on the CPU (the official code runs apex AMP O1 on GPUs). Parameter names
are the official state-dict names, so our initial parameters load as they are.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class DropPath(nn.Module):
    """timm's per-sample stochastic depth; `replay` holds our multipliers [B, 1, 1] (0 or 1/keep) for one call."""

    def __init__(self, drop_prob):
        super().__init__()
        self.drop_prob = drop_prob
        self.replay = []

    def forward(self, x):
        if not self.training:
            return x
        if self.replay:
            return x * self.replay.pop(0)
        keep_prob = 1 - self.drop_prob
        random_tensor = keep_prob + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype)
        random_tensor.floor_()  # binarize
        return x.div(keep_prob) * random_tensor


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, rel_pos_bias):
        b, n, _ = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # [B, h, N, hd]
        attn = (q @ k.transpose(-2, -1)) + rel_pos_bias
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, drop_path, init_values, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x, rel_pos_bias):
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x), rel_pos_bias=rel_pos_bias))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class RelativePositionBias(nn.Module):
    """BEiT's shared bias on a (Gh, Gw) window; cls row, column and corner at the last three table rows."""

    def __init__(self, gh, gw, heads):
        super().__init__()
        self.n = gh * gw + 1
        size = (2 * gh - 1) * (2 * gw - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, heads))
        coords = torch.stack(torch.meshgrid([torch.arange(gh), torch.arange(gw)], indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # [N, N, 2]
        rel[:, :, 0] += gh - 1
        rel[:, :, 1] += gw - 1
        rel[:, :, 0] *= 2 * gw - 1
        index = torch.zeros((self.n, self.n), dtype=rel.dtype)
        index[1:, 1:] = rel.sum(-1)
        index[0, 0:] = size - 3
        index[0:, 0] = size - 2
        index[0, 0] = size - 1
        self.register_buffer("relative_position_index", index)

    def forward(self):
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(self.n, self.n, -1)
        return bias.permute(2, 0, 1).contiguous()  # [h, 1+N, 1+N]


class VisionTransformerForSimMIM(nn.Module):
    def __init__(self, c, gh, gw):
        super().__init__()
        d = c["embedDim"]
        self.grid = (gh, gw)
        self.patch_embed = PatchEmbed(c["patchSize"], c["inChans"], d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.rel_pos_bias = RelativePositionBias(gh, gw, c["numHeads"])
        dpr = [x.item() for x in torch.linspace(0, c["dropPathRate"], c["depth"])]  # stochastic depth decay rule
        self.blocks = nn.ModuleList([Block(d, c["numHeads"], c["mlpRatio"], dpr[i], c["initValues"], c["normEps"])
                                     for i in range(c["depth"])])
        self.norm = nn.LayerNorm(d, eps=c["normEps"])
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))

    def forward(self, x, mask):
        x = self.patch_embed(x)
        b, length, _ = x.shape
        mask_token = self.mask_token.expand(b, length, -1)
        w = mask.flatten(1).unsqueeze(-1).type_as(mask_token)
        x = x * (1 - w) + mask_token * w
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        rel_pos_bias = self.rel_pos_bias()
        for blk in self.blocks:
            x = blk(x, rel_pos_bias=rel_pos_bias)
        x = self.norm(x)[:, 1:]
        b, length, c = x.shape
        return x.permute(0, 2, 1).reshape(b, c, *self.grid)


class SimMIM(nn.Module):
    def __init__(self, encoder, c):
        super().__init__()
        self.encoder = encoder
        stride = c["encoderStride"]
        self.decoder = nn.Sequential(nn.Conv2d(c["embedDim"], stride ** 2 * 3, kernel_size=1), nn.PixelShuffle(stride))
        self.in_chans = c["inChans"]
        self.patch_size = c["patchSize"]

    def forward(self, x, mask):
        x_rec = self.decoder(self.encoder(x, mask))
        mask = mask.repeat_interleave(self.patch_size, 1).repeat_interleave(self.patch_size, 2).unsqueeze(1).contiguous()
        loss_recon = F.l1_loss(x, x_rec, reduction="none")
        return (loss_recon * mask).sum() / (mask.sum() + 1e-5) / self.in_chans


def get_pretrain_param_groups(model, weight_decay, skip_list):
    """optimizer.py: no decay for 1-D parameters, biases and `no_weight_decay()` names."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if len(param.shape) == 1 or name.endswith(".bias") or name in skip_list else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.}]


class Twin:
    """`cfg`: the resolved `SimmimConfig` of model/simmim/config.ts; `hyper`: {lr, weightDecay}."""

    def __init__(self, cfg, hyper):
        size = cfg["imageSize"]
        h, w = (size, size) if isinstance(size, int) else size
        self.grid = (h // cfg["patchSize"], w // cfg["patchSize"])
        self.model = SimMIM(VisionTransformerForSimMIM(cfg, *self.grid), cfg)
        o = cfg["optim"]
        self.clip = o["clipGrad"]
        groups = get_pretrain_param_groups(self.model, hyper["weightDecay"], {"encoder.pos_embed", "encoder.cls_token"})
        self.opt = torch.optim.AdamW(groups, lr=hyper["lr"], eps=o["eps"], betas=tuple(o["betas"]),
                                     weight_decay=hyper["weightDecay"])

    def load(self, params):
        missing, unexpected = self.model.load_state_dict(params, strict=False)
        if unexpected or missing != ["encoder.rel_pos_bias.relative_position_index"]:  # a buffer, not ours
            raise SystemExit(f"speed_torch_simmim: missing {missing}, unexpected {unexpected}")

    def named_params(self):
        return dict(self.model.named_parameters())

    def prepare(self, images, draws, replay):
        """Our `mask` [B, N, 1] (1 = masked) as the loader's [B, Gh, Gw]; with `replay` also our drop path."""
        b = images.shape[0]
        mask = draws["mask"].reshape(b, *self.grid).long()
        drops = None
        if replay:
            drops = {i: [draws[f"drop_path.{i}.attn"], draws[f"drop_path.{i}.mlp"]]
                     for i, blk in enumerate(self.model.encoder.blocks) if isinstance(blk.drop_path, DropPath)}
        return images, mask, drops

    def step(self, batch):
        images, mask, drops = batch
        for i, blk in enumerate(self.model.encoder.blocks):
            if drops is not None and i in drops:
                blk.drop_path.replay = list(drops[i])
        self.model.train()
        loss = self.model(images, mask)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return loss.detach()
