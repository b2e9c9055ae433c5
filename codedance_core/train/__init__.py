"""Training: multi-turn SFT (one function for a CPU process and Ray/DeepSpeed workers), checkpoints, resume.

- `sft_data`: trajectory rows -> ids with labels on assistant tokens only, images kept encoded;
- `sft_batches`: seeded, length-grouped batch plans and collation with labels;
- `sft`: `train_sft`, the training function; `ray_train`: the same function under Ray Train;
- `checkpoint`: atomic checkpoints (local or s3://) with a `latest` pointer and exact resume.
"""
