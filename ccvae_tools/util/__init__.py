"""The bottom layer: errors, atomic file writes, the console, safe text and file-name slugs, the
device, small tensor ops. Imports nothing else of the package."""
