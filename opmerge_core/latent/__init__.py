"""CelebA in latent space (THEORY.md §6): the VAE, latent statistics, face images and the comparison."""
