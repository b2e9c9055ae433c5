"""Getting a model ready to train and writing it out: freezing, LoRA, checkpointing, saving.

A checkpoint's `model/` directory is a complete model directory (weights by `save_pretrained`,
tokenizer, image processor), so resume, evaluation and `codedance serve` all load it with
`load_model_bundle`. With LoRA, the checkpoint holds the adapters and resume puts them back on
the base model; the final model is written merged, so later stages never need peft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codedance_core.config.train import LoRAConfig, SFTConfig

# The language model's projections; the vision tower has modules of the same names (mlp.gate_proj),
# so adapters are matched by full path, never by bare name.
_LANGUAGE_MODEL = r".*language_model\.layers\.\d+\.(?:self_attn|mlp)\.(?:{names})"


def unwrap(model: Any) -> Any:
    """The model under a DDP wrapper or a DeepSpeed engine."""
    return getattr(model, "module", model)


def set_vision_trainable(model: Any, config: SFTConfig) -> None:
    """Freeze the vision tower when asked; the merger (projector) trains unless told otherwise."""
    visual = model.model.visual
    for parameter in visual.parameters():
        parameter.requires_grad_(not config.freeze_vision)
    if config.freeze_vision and config.train_merger and not config.lora.enabled:
        for parameter in visual.merger.parameters():
            parameter.requires_grad_(True)


def add_lora(model: Any, lora: LoRAConfig, adapter_dir: Path | None = None) -> Any:
    """Wrap the model with fresh LoRA adapters, or with those saved in `adapter_dir` (resume)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    pattern = _LANGUAGE_MODEL.format(names="|".join(lora.target_modules))
    peft_config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=pattern, bias="none"
    )
    return get_peft_model(model, peft_config)


def prepare_for_training(model: Any, config: SFTConfig, adapter_dir: Path | None = None) -> Any:
    """Trainable-parameter selection, LoRA and gradient checkpointing; the model in train mode."""
    set_vision_trainable(model, config)
    if config.gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.lora.enabled:
            model.enable_input_require_grads()  # frozen embeddings would otherwise cut the graph
    if config.lora.enabled:
        model = add_lora(model, config.lora, adapter_dir)
    model.train()
    return model


def trainable_parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices only (norms and biases are not decayed)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            # a ZeRO-3 weight holds a flat slice; its true shape is `ds_shape`
            shape = getattr(parameter, "ds_shape", parameter.shape)
            (decay if len(shape) >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_model_dir(
    model: Any, bundle: Any, directory: Path, merge_lora: bool = False, state_dict: dict[str, Any] | None = None
) -> Path:
    """Write a loadable model directory: weights (adapters, or merged), tokenizer, image processor.

    `state_dict`: the full weights when the model does not hold them itself (gathered ZeRO-3 shards)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    if merge_lora and hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(str(directory), state_dict=state_dict)
    bundle.tokenizer.save_pretrained(str(directory))
    bundle.image_processor.save_pretrained(str(directory))
    return directory
