"""Training: multi-turn SFT (one function for a CPU process and Ray/DeepSpeed workers), checkpoints, resume.

- `sft_data`: trajectory rows -> ids with labels on assistant tokens only, images kept encoded;
- `sft_batches`: seeded, length-grouped batch plans and collation with labels;
- `sft`: `train_sft`, the training function (run by one process, or by every Ray Train worker of the
  SFT stage, codedance_core/stages/training.py);
- `checkpoint`: atomic checkpoints (local or s3://) with a `latest` pointer and exact resume.
"""
