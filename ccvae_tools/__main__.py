from ccvae_tools.cli import main

main()
