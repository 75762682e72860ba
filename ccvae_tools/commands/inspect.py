"""info, labels, classify, reconstruct."""
