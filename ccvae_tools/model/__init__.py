"""The network (network.py), its weights file (weights.py) and the inference API (api.py).
May import util, data and objective (the network's forward is the bound, for DistributedDataParallel)."""
