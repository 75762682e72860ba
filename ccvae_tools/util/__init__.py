"""The bottom layer: errors, atomic file writes, the console, the device, small tensor ops.
Imports nothing else of the package."""
