"""Tiny transformers the tests build in code: a masked sentence encoder, a Hugging Face BERT folder, a ViT.

Nothing is downloaded: the Hugging Face model is built from a config with random weights and saved with
`save_pretrained`; outlier channels are injected into its LayerNorms the way real encoders have them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

VOCAB, SEQ, HIDDEN = 100, 16, 32


class MaskedEncoder(torch.nn.Module):
    """A one-block sentence encoder with the classic additive mask `(1 - mask) * finfo(float32).min`.

    Inputs `input_ids` and `attention_mask` (int64, [batch, sequence]); output one embedding per sentence
    (the masked mean of the block's output), as sentence-embedding models do.
    """

    def __init__(self, vocab: int = VOCAB, hidden: int = HIDDEN, heads: int = 4, max_len: int = 64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.heads = heads
        self.tok = torch.nn.Embedding(vocab, hidden)
        self.pos = torch.nn.Embedding(max_len, hidden)
        self.ln0 = torch.nn.LayerNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.ln1 = torch.nn.LayerNorm(hidden)
        self.fc1 = torch.nn.Linear(hidden, 4 * hidden)
        self.fc2 = torch.nn.Linear(4 * hidden, hidden)
        self.ln2 = torch.nn.LayerNorm(hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        n, s = input_ids.shape
        positions = torch.arange(s, device=input_ids.device).unsqueeze(0)
        h = self.ln0(self.tok(input_ids) + self.pos(positions))
        q, k, v = self.qkv(h).reshape(n, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, s, -1)
        h = self.ln1(h + self.out(ctx))
        h = self.ln2(h + self.fc2(torch.nn.functional.gelu(self.fc1(h))))
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def token_data(
    n: int, seq: int = SEQ, *, padded: bool, seed: int = 0, vocab: int = VOCAB
) -> dict[str, np.ndarray]:
    """`input_ids` and `attention_mask` (int64); with `padded`, each sentence ends after 4..seq tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (n, seq)).astype(np.int64)
    mask = np.ones((n, seq), np.int64)
    if padded:
        for i in range(n):
            mask[i, rng.integers(4, seq + 1) :] = 0
        ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def hf_bert_folder(folder: Path, *, outliers: float = 0.0, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised Hugging Face BERT (2 layers, hidden 64) saved to `folder` with save_pretrained.

    Args:
        outliers: when > 0, channels 3 and 17 of every LayerNorm but the last get this gain (and a matching
            bias), the outlier channels real encoders have (10-100x the rest) that per-tensor INT8 loses accuracy
            on; the last LayerNorm (the embedding the metrics read) keeps even channels.
    """
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        initializer_range=0.125,  # 1/sqrt(hidden): sublayers weigh like a trained model's against the residual
    )
    model = BertModel(config).eval()
    if outliers:
        last = model.encoder.layer[-1].output.LayerNorm  # the embedding itself keeps even channels
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.LayerNorm) and module is not last:
                    module.weight[[3, 17]] = outliers
                    module.bias[[3, 17]] = outliers / 4
    model.save_pretrained(str(folder))
    return folder


def small_vit() -> torch.nn.Module:
    """A small torchvision VisionTransformer (2 layers, hidden 64, 32x32 images, 10 classes)."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    ).eval()
