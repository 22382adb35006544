"""One small module per command: parse options, call one core function, render the result.

Each module is cheap to import: heavy libraries are imported inside the command functions.
"""

from mle6cli.commands.conv_size import conv_size
from mle6cli.commands.gauss_conv import gauss_conv
from mle6cli.commands.summary import summary

COMMANDS = [
    ("conv-size", conv_size),
    ("gauss-conv", gauss_conv),
    ("summary", summary),
]
