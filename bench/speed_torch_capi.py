"""PyTorch twin of CAPI for `deno task speed --method capi --vs-torch` (dev-only; bench/speed_torch.py drives it).

The structure of the official code (capi:model.py `EncoderDecoder`, `L2NormLinear`, `OnlineClustering`;
train_capi.py's `do_teacher`, `do_student` and training iteration; utils.py `get_params_groups`), written for
torch 1.13, which lacks `nn.RMSNorm` and `F.scaled_dot_product_attention` (both written out here as torch 2 computes
them): Conv2d patch embedding, registers with "edge" coordinates rescaled to the visible box, RoPE per head,
cross-attention predictor, efficient stochastic depth (`index_add` over a random subset), weight-normalised student
head, positionwise Sinkhorn-Knopp; the student's AdamW (foreach, multiplier groups), the EMA teacher by
`_foreach_mul_`/`_foreach_add_`, the clustering head's own AdamW. float32 and eager on the CPU (the official run uses
bf16, FSDP and torch.compile on GPUs). Parameter names are the official state-dict names (the student, `student_ema`
and the teacher head); our `ema.*` and `teacher_head.*` map onto `student_ema.*` and `teacher.head.*`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """torch 2.4's nn.RMSNorm: `x * rsqrt(mean(x^2) + eps) * weight`."""

    def __init__(self, dim, eps, elementwise_affine=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y


def scaled_dot_product_attention(q, k, v):
    """torch 2's F.scaled_dot_product_attention without mask or dropout, as its math backend computes it."""
    return torch.softmax((q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1), dim=-1) @ v


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rope(nn.Module):
    def __init__(self, head_dim):
        super().__init__()
        self.freqs = nn.Parameter(torch.empty(2, head_dim))  # loaded from ours (model/capi/rope.ts)

    def forward(self, x, coords):
        angle = coords @ self.freqs
        return x * angle.cos() + rotate_half(x) * angle.sin()


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.rope = Rope(dim // heads)

    def forward(self, x, coords, context=None, context_coords=None):
        if context is None or context_coords is None:
            context, context_coords = x, coords
        b, n_q, d = x.shape
        n_k, h = context.shape[1], self.heads
        q = self.q_proj(x).reshape(b, n_q, h, d // h).transpose(1, 2)
        k = self.k_proj(context).reshape(b, n_k, h, d // h).transpose(1, 2)
        v = self.v_proj(context).reshape(b, n_k, h, d // h).transpose(1, 2)
        q = self.rope(q, coords[:, None, :, :])
        k = self.rope(k, context_coords[:, None, :, :])
        x = scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape([b, n_q, d]))


class EfficientResidual(nn.Module):
    """`x + fn(norm(x))` with stochastic depth on a random subset of `max(int(B*keep), 1)` samples, scaled by
    B/n_keep; `replay` holds our kept sample indices for the next call."""

    def __init__(self, drop_prob, norm, fn):
        super().__init__()
        self.norm, self.fn = norm, fn
        self.keep_prob = 1 - drop_prob
        self.replay = None

    def forward(self, x, **kwargs):
        if self.keep_prob == 1.0 or not self.training:
            return x + self.fn(self.norm(x), **kwargs)
        b = x.shape[0]
        n_keep = max(int(b * self.keep_prob), 1)
        indices = torch.randperm(b)[:n_keep] if self.replay is None else self.replay
        self.replay = None
        kwargs = {k: (v[indices] if v is not None else None) for k, v in kwargs.items()}
        return torch.index_add(x, dim=0, source=self.fn(self.norm(x[indices]), **kwargs), index=indices,
                               alpha=b / n_keep)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, drop_path, eps):
        super().__init__()
        self.residual1 = EfficientResidual(drop_path, RMSNorm(dim, eps), Attention(dim, heads))
        self.residual2 = EfficientResidual(drop_path, RMSNorm(dim, eps), Mlp(dim, int(dim * mlp_ratio)))

    def forward(self, x, context=None, coords=None, context_coords=None):
        x = self.residual1(x, context=context, coords=coords, context_coords=context_coords)
        return self.residual2(x)


class Transformer(nn.Module):
    def __init__(self, depth, **block):
        super().__init__()
        self.blocks = nn.ModuleList([Block(**block) for _ in range(depth)])

    def forward(self, x, return_layers, contexts=None, coords=None, context_coords=None):
        outputs = {0: x} if 0 in return_layers else {}
        for i, blk in enumerate(self.blocks):
            x = blk(x, context=contexts[i] if contexts is not None else None, coords=coords,
                    context_coords=context_coords)
            if i + 1 in return_layers:
                outputs[i + 1] = x
        return outputs


class EncoderDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps, r = c["embedDim"], c["normEps"], c["nRegisters"]
        block = dict(dim=d, heads=c["numHeads"], mlp_ratio=c["mlpRatio"], drop_path=c["dropPathRate"], eps=eps)
        self.patch_size, self.n_registers, self.embed_dim = c["patchSize"], r, d
        self.encoder = Transformer(c["encoderDepth"], **block)
        self.decoder = Transformer(c["decoderDepth"], **block)
        self.mask_token = nn.Parameter(torch.empty(1, d))
        self.registers = nn.Parameter(torch.empty(1, r, d))
        self.patch_embed = nn.Conv2d(3, d, kernel_size=self.patch_size, stride=self.patch_size)
        self.enc_norm = RMSNorm(d, eps, elementwise_affine=False)
        self.dec_norm = RMSNorm(d, eps, elementwise_affine=False)

    def edge_coordinates(self, n, dtype):
        side = n // 4
        reg = torch.zeros(1, n, 2, dtype=dtype)
        c = torch.arange(side, dtype=dtype) / side
        reg[:, 0 * side:1 * side, 0] = c
        reg[:, 1 * side:2 * side, 0] = 1
        reg[:, 1 * side:2 * side, 1] = c
        reg[:, 2 * side:3 * side, 0] = 1 - c
        reg[:, 2 * side:3 * side, 1] = 1
        reg[:, 3 * side:4 * side, 1] = 1 - c
        return reg

    def prepare_tokens_and_drop(self, x, visible_indices):
        b, _, h, w = x.shape
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        coords_all = torch.cartesian_prod(torch.linspace(0, 1, h // self.patch_size, dtype=x.dtype),
                                          torch.linspace(0, 1, w // self.patch_size, dtype=x.dtype))
        coords_all = coords_all[None].expand(b, -1, -1)
        if visible_indices is not None:
            coords = coords_all.flatten(0, 1)[visible_indices].reshape(b, -1, 2)
            x = x.flatten(0, 1)[visible_indices].reshape(b, -1, self.embed_dim)
        else:
            coords = coords_all
        reg_coords = self.edge_coordinates(self.n_registers, x.dtype).expand(b, -1, -1)
        mi, ma = coords.min(dim=1, keepdim=True).values, coords.max(dim=1, keepdim=True).values
        reg_coords = mi + reg_coords * (ma - mi)  # scale_reg_to_visible
        x = torch.cat([self.registers.expand(b, -1, -1), x], dim=1)
        return x, torch.cat([reg_coords, coords], dim=1), coords_all

    def forward_pretrain(self, x, visible_indices=None, predict_indices=None, do_prediction=False):
        b = x.shape[0]
        x, coords_enc, coords_all = self.prepare_tokens_and_drop(x, visible_indices)
        n_enc = len(self.encoder.blocks)
        enc = self.enc_norm(self.encoder(x, coords=coords_enc, return_layers={n_enc})[n_enc])
        dec = None
        if do_prediction:
            coords_dec = coords_all.flatten(0, 1)[predict_indices].reshape(b, -1, 2)
            n_dec = len(self.decoder.blocks)
            out = self.decoder(self.mask_token[None].expand(*coords_dec.shape[:2], -1), contexts=[enc] * n_dec,
                               coords=coords_dec, context_coords=coords_enc, return_layers={n_dec})
            dec = self.dec_norm(out[n_dec]).flatten(0, 1)
        return enc[:, self.n_registers:], dec


class WeightNormLinear(nn.Module):
    """utils.py's bf16-compatible weight norm on a bias-free Linear: `W = v * g / (||v|| + 1e-8)` per row."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1))
        self.weight_v = nn.Parameter(torch.empty(out_dim, in_dim))

    def forward(self, x):
        return F.linear(x, self.weight_v * (self.weight_g / (torch.norm_except_dim(self.weight_v, 2, 0) + 1e-8)))


class L2NormLinear(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.last_layer = WeightNormLinear(in_dim, out_dim)

    def forward(self, x):
        return self.last_layer(F.normalize(x, dim=-1, eps=1e-12))


@torch.no_grad()
def sinkhorn_knopp(m, n_iterations, eps=1e-8):
    m = m + (50 - m.max(dim=-2, keepdim=True).values)  # stable_exp, float32
    m = m.exp()
    for _ in range(n_iterations):
        m /= torch.sum(m, dim=-2, keepdim=True) + eps
        m /= torch.sum(m, dim=-1, keepdim=True) + eps
    return m


class OnlineClustering(nn.Module):
    def __init__(self, in_dim, out_dim, bias, n_sk_iter, target_temp, pred_temp):
        super().__init__()
        self.n_sk_iter, self.target_temp, self.pred_temp = n_sk_iter, target_temp, pred_temp
        self.layer = nn.Linear(in_dim, out_dim, bias=bias)

    def forward(self, x):
        logits = self.layer(F.normalize(x, dim=-1, p=2, eps=1e-7))
        assignments = sinkhorn_knopp(logits.detach() / self.target_temp, n_iterations=self.n_sk_iter)
        tgt, pred = assignments.flatten(0, -2).float(), logits.flatten(0, -2).float()
        loss = -torch.sum(tgt * F.log_softmax(pred / self.pred_temp, dim=-1), dim=-1).mean()
        return assignments.detach(), loss


def get_params_groups(module, o):
    """utils.py: one group per (lr, wd) multiplier pair, names without `backbone.`."""
    groups = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        name = name.replace("backbone.", "")
        lr_mult, wd_mult = 1.0, 1.0
        if name.endswith(".bias") or "gamma" in name:
            wd_mult = 0.0
        if "norm" in name and "weight" in name:
            wd_mult = o["normWdMult"]
        if "patch_embed" in name:
            lr_mult *= o["patchEmbedLrMult"]
        if "rope" in name:
            lr_mult *= o["ropeLrMult"]
        g = groups.setdefault((lr_mult, wd_mult), {"params": [], "lr_multiplier": lr_mult, "wd_multiplier": wd_mult,
                                                   "foreach": True})
        g["params"].append(param)
    return list(groups.values())


class Twin:
    """`cfg`: the resolved `CapiConfig` of model/capi/config.ts; `hyper`: {lr, weightDecay, clusteringLr,
    clusteringWeightDecay, momentum} (train_capi.py sets them on the groups every iteration)."""

    def __init__(self, cfg, hyper):
        if not cfg["positionwiseSk"]:
            raise SystemExit("speed_torch_capi: the twin implements positionwise Sinkhorn only")
        o, d, k = cfg["optim"], cfg["embedDim"], cfg["numClusters"]
        self.cfg, self.hyper = cfg, hyper
        self.model = nn.ModuleDict({
            "student": nn.ModuleDict({"backbone": EncoderDecoder(cfg), "head": L2NormLinear(d, k)}),
            "student_ema": nn.ModuleDict({"backbone": EncoderDecoder(cfg), "head": L2NormLinear(d, k)}),
            "teacher": nn.ModuleDict({"head": OnlineClustering(
                d, k, bias=cfg["clusteringBias"], n_sk_iter=cfg["nSkIter"], target_temp=cfg["targetTemp"],
                pred_temp=cfg["predTemp"])}),
        })
        self.teacher_backbone = self.model.student_ema.backbone  # the teacher backbone is the EMA backbone
        self.model.student_ema.requires_grad_(False)
        self.model.student.train()
        self.model.student_ema.eval()
        self.model.teacher.eval()
        self.student_params = list(self.model.student.parameters())
        self.ema_params = list(self.model.student_ema.parameters())
        self.opt = torch.optim.AdamW(get_params_groups(self.model.student, o), betas=tuple(o["betas"]), eps=o["eps"])
        self.clustering_opt = torch.optim.AdamW(self.model.teacher.head.parameters(), betas=tuple(o["clusteringBetas"]),
                                                eps=o["clusteringEps"], weight_decay=hyper["clusteringWeightDecay"])
        self.residuals = {f"{stack}.{i}.residual{r}": getattr(blk, f"residual{r}")
                          for stack in ("encoder", "decoder")
                          for i, blk in enumerate(getattr(self.model.student.backbone, stack).blocks) for r in (1, 2)}

    def load(self, params):
        def official(n):
            if n.startswith("ema."):
                return "student_ema." + n[len("ema."):]
            if n.startswith("teacher_head."):
                return "teacher.head." + n[len("teacher_head."):]
            return n
        self.model.load_state_dict({official(n): v for n, v in params.items()}, strict=True)

    def named_params(self):
        def ours(n):
            if n.startswith("student_ema."):
                return "ema." + n[len("student_ema."):]
            if n.startswith("teacher.head."):
                return "teacher_head." + n[len("teacher.head."):]
            return n
        return {ours(n): p for n, p in self.model.named_parameters()}

    def prepare(self, images, draws, replay):
        """The collate's indices (ours), and with `replay` our drop-path subsets (`drop_path.<stack>.<i>.residual<r>.keep`)."""
        drops = {}
        if replay:
            for name in self.residuals:
                t = draws.get(f"drop_path.{name}.keep")
                if t is not None:
                    drops[name] = t.long()
        return images, draws["visible_indices"].long(), draws["predict_indices"].long(), drops

    def do_teacher(self, images, predict_indices):
        with torch.no_grad():
            patch_before_head, _ = self.teacher_backbone.forward_pretrain(images)
        bs, n, _ = patch_before_head.shape
        patch_after_head, loss = self.model.teacher.head(patch_before_head.transpose(0, 1))
        with torch.no_grad():
            selected = torch.index_select(patch_after_head.detach().transpose(0, 1).reshape(bs * n, -1), dim=0,
                                          index=predict_indices)
        return selected, loss

    def do_student(self, images, predict_indices, visible_indices, target):
        _, predictions = self.model.student.backbone.forward_pretrain(
            images, visible_indices=visible_indices, predict_indices=predict_indices, do_prediction=True)
        pred = self.model.student.head(predictions)
        loss = -torch.sum(target.float() * F.log_softmax(pred.float() / self.cfg["studentTemp"], dim=-1), dim=-1)
        return loss.double().sum() / len(loss)

    def step(self, batch):
        images, visible, predict, drops = batch
        for name, idx in drops.items():
            self.residuals[name].replay = idx
        h = self.hyper
        for g in self.opt.param_groups:
            g["weight_decay"] = h["weightDecay"] * g["wd_multiplier"]
            g["lr"] = h["lr"] * g["lr_multiplier"]
        for g in self.clustering_opt.param_groups:
            g["lr"] = h["clusteringLr"]
        self.opt.zero_grad(set_to_none=True)
        self.clustering_opt.zero_grad(set_to_none=True)
        targets, clustering_loss = self.do_teacher(images, predict)
        clustering_loss.backward()
        capi_loss = self.do_student(images, predict, visible, targets)
        capi_loss.backward()  # the official `.bfloat16()` before backward (grad scaler off) scales nothing
        -torch.xlogy(targets, targets).sum(dim=-1).mean()  # the logged target entropy
        self.opt.step()
        with torch.no_grad():
            torch._foreach_mul_(self.ema_params, h["momentum"])
            torch._foreach_add_(self.ema_params, self.student_params, alpha=1 - h["momentum"])
        self.clustering_opt.step()
        return capi_loss.detach().float() + clustering_loss.detach()
