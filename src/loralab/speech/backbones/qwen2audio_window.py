"""Qwen2-Audio's Whisper encoder run over a recording's own frames, not its whole 30 s window.

transformers' ``Qwen2AudioEncoder`` takes exactly 3,000 mel frames (30 s; a shorter clip is
padded) and ``Qwen2AudioModel`` masks the padded positions out of the encoder's attention and
keeps only the embeddings of the real frames. So the real positions' outputs do not depend on
the padding: the convolutions (kernel 3; the second of stride 2) read at most two frames past
a position, and attention ignores masked keys. :class:`WindowCrop` runs the encoder on the
frames the longest clip of the batch needs (plus the two the convolutions read), with the
positional embeddings and the attention mask cut to match, and pads the output back to the
window's length with zeros (rows the model drops): for a 5 s recording a sixth of the window,
~6x less encoder work, the same embeddings up to float rounding.

Composed explicitly under the encoder output cache, as what a cache miss computes
(``Qwen2AudioBackbone.install_encoder_cache``: training with a frozen encoder, batched
generation and the one-recording route built on it). It stands aside
where the crop would not be exact or gradients must flow: an encoder in training mode with
trainable parameters or active dropout / layer drop.
"""

from __future__ import annotations


class WindowCrop:
    """The encoder's forward over the real frames; ``full`` (the encoder's own forward) runs
    anything else: training, no mask, a clip that fills the window."""

    def __init__(self, tower, full):
        self.tower = tower
        self.full = full

    @staticmethod
    def real_positions(attention_mask):
        """Per row, how many encoder positions are real (None: the mask does not say)."""
        import torch

        if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 4:
            return None
        keys = attention_mask[:, 0, 0, :]  # a padding mask: the same keys for every query
        valid = keys if keys.dtype == torch.bool else keys == 0
        return valid.sum(-1)

    @staticmethod
    def exact(tower) -> bool:
        """Whether the cropped pass equals the full one and needs no gradient: eval mode, or a
        frozen encoder without dropout or layer drop."""
        import torch

        if not tower.training:
            return True
        if torch.is_grad_enabled() and any(p.requires_grad for p in tower.parameters()):
            return False
        config = tower.config
        drops = ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop")
        return not any(getattr(config, name, 0.0) for name in drops)

    def __call__(self, input_features, attention_mask=None, **kwargs):
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        tower = self.tower
        lengths = self.real_positions(attention_mask)
        window = tower.embed_positions.weight.shape[0]  # encoder positions of a full window
        if lengths is None or not self.exact(tower) or int(lengths.max()) * 2 + 2 >= input_features.shape[-1]:
            return self.full(input_features, attention_mask=attention_mask, **kwargs)
        n = int(lengths.max())
        x = input_features[..., : 2 * n + 2].to(
            dtype=tower.conv1.weight.dtype, device=tower.conv1.weight.device
        )
        x = torch.nn.functional.gelu(tower.conv1(x))
        x = torch.nn.functional.gelu(tower.conv2(x))
        hidden = x.permute(0, 2, 1)[:, :n] + tower.embed_positions.weight[:n]
        mask = attention_mask[..., :n, :n]
        for layer in tower.layers:
            hidden = layer(hidden, mask, **kwargs)
        hidden = tower.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)
        hidden = tower.layer_norm(hidden)
        out = hidden.new_zeros(hidden.shape[0], (window - 2) // 2 + 1, hidden.shape[-1])
        out[:, : hidden.shape[1]] = hidden
        return BaseModelOutput(last_hidden_state=out)
