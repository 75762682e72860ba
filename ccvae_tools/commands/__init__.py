"""Model commands (issue 3): each module registers its commands on `ccvae_tools.cli.app`."""
