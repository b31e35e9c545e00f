"""A real trainable: a tiny byte-level decoder-only transformer LM on the Python standard library.

Nothing is downloaded: the corpus is the source of the standard library of the Python running the
trial (``sysconfig.get_paths()["stdlib"]``), read at run time. The top-level ``*.py`` files are
sorted by name; every 10th file is held out for validation, the rest is training text (about 4 MB
on CPython 3.11). Text is byte-level (vocabulary 256), so no tokenizer is needed.

The config a trial receives (see ``searchspaces/tiny_lm.toml``):

* ``n_params``: target non-embedding parameter count, the model-size scaling axis. The model has
  ``n_layers`` blocks (default 2) and the width ``d_model`` (a multiple of 16) that best matches
  ``n_params ~= 12 n_layers d_model^2``; the *actual* count is reported back.
* ``tokens``: training tokens, the data scaling axis (``steps = tokens / (batch_size * seq_len)``).
* ``lr`` (peak, linear warmup then cosine decay to 10%), ``batch_size`` (sequences per step),
  ``weight_decay`` (AdamW, decoupled), optional ``warmup`` (fraction of steps, default 0.05) and
  ``seq_len`` (default 64);
* optional ``parametrization``: ``"sp"`` (standard, the default) or ``"mup"`` (the maximal update
  parametrization for Adam, Yang et al. 2022, arXiv 2203.03466, Table 3), relative to the width
  ``mup_base_width`` (default 32), where the two coincide. With ``m = d_model / mup_base_width``,
  muP draws the hidden matrices (attention and MLP weights) with std ``0.02 / sqrt(m)`` and trains
  them with lr ``lr / m``, and multiplies the tied output layer's logits by ``1 / m``; embeddings,
  positions, biases and norms keep ``lr``. Heads keep 16 dims at every width, so the attention
  scale does not change with width. Under muP the best lr should not move with width, under SP it
  falls (``benchmarks/mup_exponent.py`` measures both). ``train_mup`` is ``train`` with muP.

:func:`train` returns a plain dict: ``loss`` (validation cross-entropy in nats per byte), ``cost``
(measured seconds x devices), ``flops`` (6 N D plus attention), ``n_params``, ``tokens``,
``failed`` and diagnostics. A run whose training loss becomes NaN/inf or explodes is stopped and
reported as ``failed=True`` with the cost it burned.

Example:
    >>> from carbs_like.tinylm import train
    >>> train({"n_params": 5e4, "tokens": 2e5, "lr": 3e-3, "batch_size": 16, "weight_decay": 0.1})
    {'loss': 2.9..., 'cost': 4.1..., 'flops': ..., 'n_params': 49152, ...}
"""

from __future__ import annotations

import functools
import math
import os
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from ..space import SearchSpace

__all__ = ["Corpus", "ModelShape", "TinyLM", "load_corpus", "model_shape", "ray_trainable", "search_space", "train",
           "train_mup"]

VOCAB = 256
_HEAD_DIM = 16
_VAL_EVERY = 10  # every 10th file (sorted by name) is validation text
_VAL_SEQUENCES = 128  # validation batch: fixed, evenly spaced windows of held-out text
_DIVERGED_FACTOR = 1.5  # a training loss above 1.5 x log(256) counts as diverged
PARAMETRIZATIONS = ("sp", "mup")


# ---------------------------------------------------------------------------- corpus -----------
@dataclass(frozen=True)
class Corpus:
    """Byte-level text split into training and validation parts.

    Attributes:
        train: `n_train` uint8 tensor of training bytes.
        val: `n_val` uint8 tensor of held-out bytes (whole files not in ``train``).
        source: where the text came from.
    """

    train: Tensor
    val: Tensor
    source: str


@functools.lru_cache(maxsize=2)
def load_corpus(root: str | None = None) -> Corpus:
    """The standard library's top-level ``*.py`` files, sorted, every 10th held out.

    Args:
        root: folder to read ``*.py`` files from; default the running Python's stdlib.

    Raises:
        FileNotFoundError: no ``*.py`` files under ``root``.
    """
    folder = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(folder.glob("*.py"))
    if len(files) < _VAL_EVERY:
        raise FileNotFoundError(
            f"tiny LM corpus: found {len(files)} *.py files in {folder}; need at least {_VAL_EVERY}. "
            "Pass root= a folder of Python (or any text) files."
        )
    parts: dict[bool, list[bytes]] = {True: [], False: []}
    for i, f in enumerate(files):
        parts[i % _VAL_EVERY == 0].append(f.read_bytes())
    as_tensor = lambda chunks: torch.frombuffer(bytearray(b"\n".join(chunks)), dtype=torch.uint8)  # noqa: E731
    return Corpus(train=as_tensor(parts[False]), val=as_tensor(parts[True]), source=str(folder))


# ---------------------------------------------------------------------------- model ------------
@dataclass(frozen=True)
class ModelShape:
    """The architecture a config asks for.

    Attributes:
        n_layers: transformer blocks.
        d_model: width (a multiple of 16; heads of 16 dims).
        seq_len: context length in bytes.
    """

    n_layers: int
    d_model: int
    seq_len: int

    @property
    def n_heads(self) -> int:
        return self.d_model // _HEAD_DIM

    @property
    def n_params(self) -> int:
        """Non-embedding parameters: attention ``4 d^2`` + MLP ``8 d^2`` + norms and biases per block."""
        d = self.d_model
        per_block = 12 * d * d + 9 * d  # qkv, out, fc, proj weights; fc and proj biases; 2 layer norms
        return self.n_layers * per_block + 2 * d  # + final layer norm

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token: ``6 N`` (forward + backward, Kaplan et al. 2020) plus
        attention scores ``6 n_layers seq_len d_model`` and the ``6 d 256`` output layer."""
        d = self.d_model
        return 6.0 * self.n_params + 6.0 * self.n_layers * self.seq_len * d + 6.0 * d * VOCAB


def model_shape(n_params: float, *, n_layers: int = 2, seq_len: int = 64) -> ModelShape:
    """The width whose non-embedding parameter count is closest to ``n_params`` (in log ratio)."""
    if not (n_params > 0 and math.isfinite(n_params)):
        raise ValueError(f"n_params must be a positive number, got {n_params!r}")
    if n_layers < 1 or seq_len < 2:
        raise ValueError(f"need n_layers >= 1 and seq_len >= 2, got {n_layers}, {seq_len}")
    guess = math.sqrt(n_params / (12 * n_layers))
    options = {max(_HEAD_DIM, _HEAD_DIM * k) for k in (math.floor(guess / _HEAD_DIM), math.ceil(guess / _HEAD_DIM))}
    shapes = [ModelShape(n_layers, d, seq_len) for d in sorted(options)]
    return min(shapes, key=lambda s: abs(math.log(s.n_params / n_params)))


class _Block(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        d = shape.d_model
        self.n_heads = shape.n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.proj(nn.functional.gelu(self.fc(self.ln2(x))))


class TinyLM(nn.Module):
    """A GPT-style decoder: byte embedding + learned positions, pre-norm blocks, tied output layer.

    Args:
        shape: the architecture.
        width_mult: ``d_model / base width`` under muP (1.0: standard parametrization); scales the
            hidden init and the logits (see the module docstring).
    """

    def __init__(self, shape: ModelShape, *, width_mult: float = 1.0) -> None:
        super().__init__()
        self.shape = shape
        self.width_mult = width_mult
        d = shape.d_model
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.zeros(shape.seq_len, d))
        self.blocks = nn.ModuleList(_Block(shape) for _ in range(shape.n_layers))
        self.ln = nn.LayerNorm(d)

    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2 initialisation from ``generator``: weights N(0, 0.02) (residual projections scaled
        by depth), biases zero; so a run depends on its seed only, never on the global RNG."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                with torch.no_grad():
                    p.zero_()
            if p.dim() < 2 or name == "pos":
                continue
            std = 0.02 / math.sqrt(2 * self.shape.n_layers) if name.endswith(("out.weight", "proj.weight")) else 0.02
            if name.startswith("blocks."):  # hidden matrices: std ~ 1/sqrt(fan_in) under muP
                std /= math.sqrt(self.width_mult)
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    def forward(self, idx: Tensor) -> Tensor:
        """Logits, a `b x t x 256` tensor, for byte ids ``idx`` (`b x t`, int64)."""
        x = self.embed(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return (self.ln(x) @ self.embed.weight.T) / self.width_mult


# ---------------------------------------------------------------------------- training ---------
def _batch(data: Tensor, starts: Tensor, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
    idx = starts[:, None] + torch.arange(seq_len + 1)
    chunk = data[idx].to(device=device, dtype=torch.long)
    return chunk[:, :-1], chunk[:, 1:]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def _validation_loss(model: TinyLM, val: Tensor, seq_len: int, device: torch.device) -> float:
    starts = torch.linspace(0, len(val) - seq_len - 2, _VAL_SEQUENCES).long()
    x, y = _batch(val, starts, seq_len, device)
    model.eval()
    logits = model(x)
    return float(nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)))


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(config: Mapping[str, Any], *, seed: int = 0, device: str | torch.device | None = None,
          threads: int | None = None) -> dict[str, Any]:
    """Train a tiny LM with ``config`` and return its validation loss and cost.

    Args:
        config: ``n_params``, ``tokens``, ``lr``, ``batch_size``, ``weight_decay``; optional
            ``n_layers`` (2), ``seq_len`` (64), ``warmup`` (0.05), ``parametrization`` (``"sp"``
            or ``"mup"``), ``mup_base_width`` (32), ``seed`` (overrides the ``seed``
            argument). Other keys are ignored.
        seed: seeds this run's own generators (weights, batch order); global RNG is untouched.
        device: torch device; default CUDA when available, else CPU.
        threads: CPU threads for torch (``torch.set_num_threads``); default the
            ``CARBS_LIKE_THREADS`` environment variable, else torch's own default.

    Returns:
        ``loss`` (validation nats/byte, NaN when failed), ``cost`` (seconds x devices), ``flops``,
        ``n_params`` (actual non-embedding), ``d_model``, ``n_layers``, ``tokens`` (actually
        trained), ``steps``, ``train_loss``, ``seconds``, ``device``, ``failed``.

    Raises:
        KeyError: a required config key is missing (the message names it).
        ValueError: a value is out of its domain (non-positive size, lr, ...).
    """
    required = ("n_params", "tokens", "lr", "batch_size", "weight_decay")
    missing = [k for k in required if k not in config]
    if missing:
        raise KeyError(f"tiny LM config is missing {missing}; it needs {list(required)}")
    lr, wd = float(config["lr"]), float(config["weight_decay"])
    batch_size = int(config["batch_size"])
    if not (lr > 0 and wd >= 0 and batch_size >= 1 and float(config["tokens"]) > 0):
        raise ValueError(f"tiny LM config needs lr > 0, weight_decay >= 0, batch_size >= 1, tokens > 0: {dict(config)}")
    parametrization = str(config.get("parametrization", "sp"))
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"tiny LM config: parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    base_width = float(config.get("mup_base_width", 32))
    if not base_width > 0:
        raise ValueError(f"tiny LM config: mup_base_width must be positive, got {base_width!r}")
    shape = model_shape(float(config["n_params"]), n_layers=int(config.get("n_layers", 2)),
                        seq_len=int(config.get("seq_len", 64)))
    width_mult = shape.d_model / base_width if parametrization == "mup" else 1.0
    steps = max(1, round(float(config["tokens"]) / (batch_size * shape.seq_len)))
    warmup = max(1, round(float(config.get("warmup", 0.05)) * steps))

    threads = threads or int(os.environ.get("CARBS_LIKE_THREADS", "0")) or None
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device) if device is not None else _device()
    corpus = load_corpus()
    gen = torch.Generator().manual_seed(int(config.get("seed", seed)))

    start = time.perf_counter()
    model = TinyLM(shape, width_mult=width_mult)
    model.init_weights(gen)
    model.to(dev)
    params = list(model.named_parameters())
    hidden = [p for n, p in params if p.dim() >= 2 and n.startswith("blocks.")]
    embed = [p for n, p in params if p.dim() >= 2 and not n.startswith("blocks.") and n != "pos"]
    no_decay = [p for n, p in params if p.dim() < 2 or n == "pos"]
    groups = [(hidden, lr / width_mult, wd), (embed, lr, wd), (no_decay, lr, 0.0)]  # (params, peak lr, decay)
    opt = torch.optim.AdamW([{"params": g, "weight_decay": d} for g, _, d in groups], lr=lr, betas=(0.9, 0.95))
    n_windows = len(corpus.train) - shape.seq_len - 1
    train_loss, failed, done = math.nan, False, 0
    model.train()
    for step in range(steps):
        for group, (_, peak, _) in zip(opt.param_groups, groups):
            group["lr"] = peak * _lr_factor(step, steps, warmup)
        starts = torch.randint(0, n_windows, (batch_size,), generator=gen)
        x, y = _batch(corpus.train, starts, shape.seq_len, dev)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        train_loss = float(loss.detach())
        done = step + 1
        if not math.isfinite(train_loss) or train_loss > _DIVERGED_FACTOR * math.log(VOCAB):
            failed = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    val_loss = math.nan if failed else _validation_loss(model, corpus.val, shape.seq_len, dev)
    if not math.isfinite(val_loss):
        failed, val_loss = True, math.nan
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    tokens = done * batch_size * shape.seq_len
    return {
        "loss": val_loss,
        "cost": seconds * 1.0,  # seconds x devices: one device per trial
        "flops": shape.flops_per_token * tokens,
        "n_params": shape.n_params,
        "d_model": shape.d_model,
        "n_layers": shape.n_layers,
        "tokens": tokens,
        "steps": done,
        "train_loss": train_loss,
        "seconds": seconds,
        "device": dev.type,
        "parametrization": parametrization,
        "failed": failed,
    }


def train_mup(config: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """:func:`train` under muP (``parametrization="mup"``), for trainable specs such as
    ``carbs_like.tinylm:train_mup``."""
    return train({**config, "parametrization": "mup"}, **kwargs)


def search_space() -> "SearchSpace":
    """The demo's search space, the same as ``searchspaces/tiny_lm.toml`` (see the comments there)."""
    from ..space import LogParam, SearchSpace

    return SearchSpace(
        [
            LogParam("n_params", min=1e4, max=2e5),
            LogParam("tokens", min=1e5, max=1e6),
            LogParam("lr", center=3e-3, scale=10.0),
            LogParam("batch_size", min=2, max=64, integer=True),
            LogParam("weight_decay", min=1e-4, max=1.0),
        ],
        scaling=["n_params", "tokens"],
    )


def ray_trainable(config: Mapping[str, Any]) -> None:
    """:func:`train` as a Ray Tune function trainable: reports its result dict once, at the end."""
    from ray import tune

    tune.report(train(config))
