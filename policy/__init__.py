"""Rank policies: map the measured channel, the data and the current ranks to one LoRA rank per projection."""
