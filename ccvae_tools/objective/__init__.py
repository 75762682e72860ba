"""The training objective: the CCVAE bound (bound.py) and the regularisers added to it (base.py:
the interface and the registry; one module each). Works on any model with the network's methods;
imports only util."""
