"""Building the classifier (LoRA, pooling) and padding-free batches."""
