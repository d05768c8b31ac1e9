"""A decoder-only transformer forward pass in numpy, for the GGUF models taskspace probes locally.

It computes what llama.cpp computes for three families (``llama``: Llama/SmolLM; ``gemma3``: Gemma 3,
with its q/k norms, post-norms, GELU, scaled embeddings, sliding-window layers and two RoPE bases;
``qwen2``: q/k/v biases), in float32 from dequantized weights. Only what probing needs is built: the
hidden states of a batch of prompts that share a cached prefix, and the logits of each prompt's last
token. A batch is right-padded; causal attention means no real token ever sees a pad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskspace.errors import InvalidInputError
from taskspace.models.gguf_file import GGUFFile

__all__ = ["KVCache", "Transformer"]


@dataclass(frozen=True)
class KVCache:
    """Keys and values of a token prefix, per layer: arrays of shape (kv_heads, length, head_dim)."""

    tokens: tuple[int, ...]
    keys: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]

    @property
    def length(self) -> int:
        return len(self.tokens)

    def truncate(self, length: int) -> KVCache:
        """The cache of the first ``length`` tokens (views, no copy)."""
        return KVCache(
            self.tokens[:length],
            tuple(k[:, :length] for k in self.keys),
            tuple(v[:, :length] for v in self.values),
        )


@dataclass(frozen=True)
class _Layer:
    attn_norm: np.ndarray
    wq: np.ndarray  # (in, out): x @ w
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_ffn_norm: np.ndarray | None = None
    rope_base: float = 10000.0
    window: int | None = None


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return (x / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps)) * w


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class Transformer:
    """Weights and hyperparameters of one GGUF model, and its forward pass."""

    def __init__(self, model: GGUFFile) -> None:
        self.arch = model.architecture
        self.n_layer = int(model.hparam("block_count"))
        self.n_embd = int(model.hparam("embedding_length"))
        self.n_head = int(model.hparam("attention.head_count"))
        self.n_kv = int(model.hparam("attention.head_count_kv", self.n_head))
        self.head_dim = int(model.hparam("attention.key_length", self.n_embd // self.n_head))
        self.eps = float(model.hparam("attention.layer_norm_rms_epsilon", 1e-5))
        self.neox = self.arch in ("gemma3", "qwen2")  # rotate halves; llama's GGUF rotates pairs
        self.embedding = model.weight("token_embd.weight")  # (vocab, n_embd)
        names = set(model.tensor_names())
        self.output = model.weight("output.weight") if "output.weight" in names else self.embedding
        self.output_norm = model.weight("output_norm.weight")
        self.vocab_size = int(self.output.shape[0])
        self.scale = 1.0 / np.sqrt(self.head_dim)
        self.layers = [self._layer(model, i, names) for i in range(self.n_layer)]

    def _layer(self, model: GGUFFile, i: int, names: set[str]) -> _Layer:
        def w(name: str) -> np.ndarray:
            return np.ascontiguousarray(model.weight(f"blk.{i}.{name}.weight").T)

        def opt(name: str) -> np.ndarray | None:
            full = f"blk.{i}.{name}"
            return model.weight(full) if full in names else None

        base = float(model.hparam("rope.freq_base", 10000.0))
        window = None
        if self.arch == "gemma3" and i % 6 < 5:  # five sliding-window layers, then one global
            base, window = 10000.0, int(model.hparam("attention.sliding_window", 512))
        return _Layer(
            attn_norm=model.weight(f"blk.{i}.attn_norm.weight"),
            wq=w("attn_q"),
            wk=w("attn_k"),
            wv=w("attn_v"),
            wo=w("attn_output"),
            ffn_norm=model.weight(f"blk.{i}.ffn_norm.weight"),
            w_gate=w("ffn_gate"),
            w_up=w("ffn_up"),
            w_down=w("ffn_down"),
            bq=opt("attn_q.bias"),
            bk=opt("attn_k.bias"),
            bv=opt("attn_v.bias"),
            q_norm=opt("attn_q_norm.weight"),
            k_norm=opt("attn_k_norm.weight"),
            post_attn_norm=opt("post_attention_norm.weight"),
            post_ffn_norm=opt("post_ffw_norm.weight"),
            rope_base=base,
            window=window,
        )

    # -- the forward pass --------------------------------------------------------------------------

    def prefix(self, tokens: list[int], past: KVCache | None = None) -> KVCache:
        """The KV cache of ``tokens`` (extending ``past``, whose tokens must be their start)."""
        return self.extend(tokens, past)[1]

    def extend(self, tokens: list[int], past: KVCache | None = None) -> tuple[np.ndarray, KVCache]:
        """The logits (vocab,) after ``tokens`` and their KV cache, computing only what ``past``
        (a cache of their first tokens) does not hold."""
        start = 0 if past is None else past.length
        if past is not None and tuple(tokens[:start]) != past.tokens:
            raise InvalidInputError("the cached prefix is not a prefix of these tokens")
        if len(tokens) <= start:
            raise InvalidInputError("nothing to compute: every token is already in the cache")
        new = np.asarray([tokens[start:]], dtype=np.int64)
        hidden, keys, values = self._run(new, past)
        new_keys = [k[0] for k in keys]
        new_values = [v[0] for v in values]
        if past is not None:
            new_keys = [np.concatenate(p, axis=1) for p in zip(past.keys, new_keys, strict=True)]
            new_values = [np.concatenate(p, axis=1) for p in zip(past.values, new_values, strict=True)]
        cache = KVCache(tuple(tokens), tuple(new_keys), tuple(new_values))
        return self._logits(hidden[0, -1:])[0], cache

    def _logits(self, last: np.ndarray) -> np.ndarray:
        return _rms_norm(last, self.output_norm, self.eps) @ self.output.T

    def last_logits(self, suffixes: list[list[int]], past: KVCache | None = None) -> np.ndarray:
        """Logits (B, vocab) of the last token of each ``past.tokens + suffix`` (suffixes non-empty)."""
        if not suffixes or any(not s for s in suffixes):
            raise InvalidInputError("every prompt needs at least one token after the cached prefix")
        lengths = np.asarray([len(s) for s in suffixes])
        batch = np.zeros((len(suffixes), int(lengths.max())), dtype=np.int64)
        for b, s in enumerate(suffixes):
            batch[b, : len(s)] = s
        hidden, _, _ = self._run(batch, past)
        return self._logits(hidden[np.arange(len(suffixes)), lengths - 1])

    def _run(
        self, tokens: np.ndarray, past: KVCache | None
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        start = 0 if past is None else past.length
        x = self.embedding[tokens]
        if self.arch == "gemma3":
            x = x * np.float32(np.sqrt(self.n_embd))
        positions = start + np.arange(tokens.shape[1])
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            cached = None if past is None else (past.keys[i], past.values[i])
            attn, k, v = self._attention(layer, _rms_norm(x, layer.attn_norm, self.eps), positions, cached)
            if layer.post_attn_norm is not None:
                attn = _rms_norm(attn, layer.post_attn_norm, self.eps)
            x = x + attn
            ffn = self._ffn(layer, _rms_norm(x, layer.ffn_norm, self.eps))
            if layer.post_ffn_norm is not None:
                ffn = _rms_norm(ffn, layer.post_ffn_norm, self.eps)
            x = x + ffn
            keys.append(k)
            values.append(v)
        return x, keys, values

    def _ffn(self, layer: _Layer, h: np.ndarray) -> np.ndarray:
        gate = h @ layer.w_gate
        act = _gelu_tanh(gate) if self.arch == "gemma3" else _silu(gate)
        return (act * (h @ layer.w_up)) @ layer.w_down

    def _project(self, h: np.ndarray, w: np.ndarray, bias: np.ndarray | None, heads: int) -> np.ndarray:
        out = h @ w
        if bias is not None:
            out = out + bias
        b, t, _ = out.shape
        return out.reshape(b, t, heads, self.head_dim).transpose(0, 2, 1, 3)  # (B, heads, T, hd)

    def _attention(
        self,
        layer: _Layer,
        h: np.ndarray,
        positions: np.ndarray,
        cached: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = self._project(h, layer.wq, layer.bq, self.n_head)
        k = self._project(h, layer.wk, layer.bk, self.n_kv)
        v = self._project(h, layer.wv, layer.bv, self.n_kv)
        if layer.q_norm is not None and layer.k_norm is not None:
            q = _rms_norm(q, layer.q_norm, self.eps)
            k = _rms_norm(k, layer.k_norm, self.eps)
        q = self._rope(q, positions, layer.rope_base)
        k = self._rope(k, positions, layer.rope_base)
        b, _, t, hd = q.shape
        keys, values = k, v
        if cached is not None:
            pk, pv = cached
            keys = np.concatenate([np.broadcast_to(pk, (b, *pk.shape)), k], axis=2)
            values = np.concatenate([np.broadcast_to(pv, (b, *pv.shape)), v], axis=2)
        group = self.n_head // self.n_kv
        qg = q.reshape(b, self.n_kv, group * t, hd)
        scores = (qg @ keys.transpose(0, 1, 3, 2)) * np.float32(self.scale)  # (B, kv, group*T, S)
        scores = scores.reshape(b, self.n_kv, group, t, -1) + self._mask(
            positions, keys.shape[2], layer.window
        )
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        out = weights.reshape(b, self.n_kv, group * t, -1) @ values  # (B, kv, group*T, hd)
        out = out.reshape(b, self.n_head, t, hd).transpose(0, 2, 1, 3).reshape(b, t, self.n_head * hd)
        return out @ layer.wo, k, v

    @staticmethod
    def _mask(positions: np.ndarray, n_keys: int, window: int | None) -> np.ndarray:
        key_pos = np.arange(n_keys)[None, :]  # the keys hold positions 0 .. n_keys-1 in order
        query_pos = positions[:, None]
        visible = key_pos <= query_pos
        if window is not None:
            visible &= query_pos - key_pos < window
        return np.where(visible, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)

    def _rope(self, x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
        hd = x.shape[-1]
        inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        angles = positions[:, None].astype(np.float64) * inv[None, :]  # (T, hd/2)
        cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
        if self.neox:
            a, b = x[..., : hd // 2], x[..., hd // 2 :]
            return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out
