"""The conversation as the model reads it: the versioned prompts, the `<image>` marker and its
conversion to image parts, and the one formatter of tool observations.

These are the model's interface, shared by every stage that writes or reads a conversation (the
suite's rows, synthesis, SFT, the tool loop, evaluation, the tiny model's pretraining texts), so
they sit below all of them and import nothing from the rest of `codedance_core`.
"""
