"""PyTorch twin of MAE for `deno task speed --method mae --vs-torch` (dev-only; bench/speed_torch.py drives it).

The structure of the official code (mae:models_mae.py `MaskedAutoencoderViT` on timm 0.3.2's `PatchEmbed` and
`Block`, main_pretrain.py + engine_pretrain.py's step), written for torch 1.13 without timm: Conv2d patch
embedding, fixed sin-cos position embeddings (loaded from our parameters), argsort random masking, pre-LN blocks
with a fused biased qkv, the decoder with mask tokens and unshuffling, the norm-pix loss; torch.optim.AdamW
(betas and eps from the config) over timm's `add_weight_decay` groups. timm's Dropout(0) and DropPath(0) modules
are left out: at rate 0 they return their input. float32 on the CPU (the official code runs fp16 autocast on GPUs).
Parameter names are the official state-dict names, so our initial parameters load as they are.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D]


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, N, hd]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, dd, p = c["embedDim"], c["decoderEmbedDim"], c["patchSize"]
        n = (c["imageSize"] // p) ** 2
        self.patch = p
        self.norm_pix_loss = c["normPixLoss"]
        self.patch_embed = PatchEmbed(p, c["inChans"], d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, d), requires_grad=False)  # fixed sin-cos
        self.blocks = nn.ModuleList([Block(d, c["numHeads"], c["mlpRatio"], c["normEps"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(d, eps=c["normEps"])
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, n + 1, dd), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(dd, c["decoderNumHeads"], c["mlpRatio"], c["normEps"]) for _ in range(c["decoderDepth"])])
        self.decoder_norm = nn.LayerNorm(dd, eps=c["normEps"])
        self.decoder_pred = nn.Linear(dd, p * p * c["inChans"])

    def patchify(self, imgs):
        p = self.patch
        h = w = imgs.shape[2] // p
        x = imgs.reshape(imgs.shape[0], 3, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * w, p * p * 3)  # [B, L, p*p*3], (py, px, c) inside a patch

    def random_masking(self, x, mask_ratio, replay):
        n, length, d = x.shape
        len_keep = int(length * (1 - mask_ratio))
        if replay is None:
            noise = torch.rand(n, length)
            ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small is keep
            ids_restore = torch.argsort(ids_shuffle, dim=1)
            ids_keep = ids_shuffle[:, :len_keep]
        else:
            ids_keep, ids_restore = replay
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones([n, length])
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)  # 0 keep, 1 remove, in token order
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio, replay):
        x = self.patch_embed(x) + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, replay)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # no cls token
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6) ** .5
        loss = ((pred - target) ** 2).mean(dim=-1)  # [B, L], mean loss per patch
        return (loss * mask).sum() / mask.sum()  # mean loss on removed patches

    def forward(self, imgs, mask_ratio, replay=None):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, replay)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask)


def add_weight_decay(model, weight_decay):
    """timm 0.3.2 optim_factory.add_weight_decay: no decay for 1-D parameters and biases."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # the frozen sin-cos position embeddings
        (no_decay if len(param.shape) == 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.}, {"params": decay, "weight_decay": weight_decay}]


class Twin:
    """`cfg`: the resolved `MaeConfig` of model/mae/config.ts; `hyper`: {lr, weightDecay} (lr_sched sets every group's lr)."""

    def __init__(self, cfg, hyper):
        if not isinstance(cfg["imageSize"], int):
            raise SystemExit(f"speed_torch_mae: the official patchify needs a square image, got {cfg['imageSize']}")
        self.mask_ratio = cfg["maskRatio"]
        self.model = MaskedAutoencoderViT(cfg)
        o = cfg["optim"]
        self.opt = torch.optim.AdamW(add_weight_decay(self.model, hyper["weightDecay"]), lr=hyper["lr"],
                                     betas=tuple(o["betas"]), eps=o["eps"])
        self.length = self.model.pos_embed.shape[1] - 1

    def load(self, params):
        self.model.load_state_dict(params, strict=True)

    def named_params(self):
        return dict(self.model.named_parameters())

    def prepare(self, images, draws, replay):
        """Replay: our masking (`keep_indices`/`restore_indices`, absolute image-major indices into B*L);
        otherwise the model draws its own in the forward, as the official one does (inside the timed step)."""
        if not replay:
            return images, None
        b, n = images.shape[0], self.length
        base = torch.arange(b)[:, None] * n
        keep = draws["keep_indices"].long().reshape(b, -1) - base
        restore = draws["restore_indices"].long().reshape(b, n) - base
        return images, (keep, restore)

    def step(self, batch):
        images, masking = batch
        self.model.train()
        loss = self.model(images, self.mask_ratio, masking)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        return loss.detach()
