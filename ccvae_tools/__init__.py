"""ccvae: edit what a label means in an image, with a Characteristic Capturing VAE (ICLR 2021)."""

__version__ = "0.1.0"
