"""Data: the catalog types (base.py), one reader per format (celeba, chexpert, folder) and what they
share (shared.py), format detection (readers.py), image decoding (images.py), the decoded cache
(cache.py), generated avatars (avatars.py) and the data report (report.py). Imports only util."""
