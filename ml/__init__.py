"""The model side both roles use: base model and projection shapes, data, features, evaluation, fine-tuning."""
