"""CelebA in latent space (THEORY §1, per eigen-direction): the VAE, latent statistics, images, comparison."""
