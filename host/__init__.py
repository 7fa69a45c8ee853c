"""The GPU host: LoRA fine-tuning with per-projection ranks, baselines, adapter quantization and payloads."""
