"""The Python API's stable name: `from ccvae_tools.api import load` (the code is in model/api.py)."""

from ccvae_tools.model.api import LoadedModel, load

__all__ = ["LoadedModel", "load"]
