"""The adapter payload both sides speak: manifest, quantization, rank vectors, model identity, rebuild into a peft folder."""
