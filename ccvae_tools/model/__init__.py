"""The network (network.py), its weights file (weights.py), the model card read from a weights
file's metadata alone (card.py, no torch) and the inference API (api.py).
May import util, data and objective (the network's forward is the bound, for DistributedDataParallel)."""
