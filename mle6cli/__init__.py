"""mle6cli: a command-line toolkit for the ML exercise sheet (conv sizes, Gaussians, SIGNS CNN, MNIST autoencoders).

Importing the package is cheap on purpose: torch, torchvision and matplotlib are imported
only inside the functions that need them.
"""

__version__ = "0.1.0"
