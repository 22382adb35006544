"""Bounds of option values, without torch: the CLI checks them before anything heavy is imported."""

MNIST_PIXELS = 28 * 28
MAX_LATENT_DIM = 4096  # the conv AE's encoder has 2048 features; a wider bottleneck compresses nothing
MAX_RETRIES = 100
MIN_POINTS = 20  # latent-plot: fewer codes say nothing about clusters
SEED_MAX = 2**32 - 1  # what numpy accepts; torch takes more
