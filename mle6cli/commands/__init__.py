"""One small module per command: parse options, call one core function, render the result.

Each module is cheap to import: heavy libraries are imported inside the command functions.
"""

from mle6cli.commands.conv_size import conv_size
from mle6cli.commands.evaluate import evaluate
from mle6cli.commands.export import export
from mle6cli.commands.gauss_conv import gauss_conv
from mle6cli.commands.latent_plot import latent_plot
from mle6cli.commands.pca_ae import pca_ae
from mle6cli.commands.predict import predict
from mle6cli.commands.prepare_signs import prepare_signs
from mle6cli.commands.run_all import run_all
from mle6cli.commands.summary import summary
from mle6cli.commands.sweep_lr import sweep_lr
from mle6cli.commands.train_ae import train_ae
from mle6cli.commands.train_cnn import train_cnn

COMMANDS = [
    ("conv-size", conv_size),
    ("gauss-conv", gauss_conv),
    ("summary", summary),
    ("prepare-signs", prepare_signs),
    *[(command.spec.name, command) for command in (train_cnn, sweep_lr, train_ae)],  # named by their specs
    ("latent-plot", latent_plot),
    *[(command.spec.name, command) for command in (pca_ae, run_all)],
    ("predict", predict),
    ("evaluate", evaluate),
    ("export", export),
]
