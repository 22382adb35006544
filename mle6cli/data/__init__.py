"""Datasets: loading with validation, synthetic stand-ins, and conversion into the exercise's layouts.

Each dataset has its own module (`mle6cli.data.signs`, `mle6cli.data.mnist`), beside the jobs they share:
`arrays` (npy files), `checks` (the pixel check), `synthetic` (stand-in SIGNS), `prepare` (prepare-signs),
`images` (images given to predict), `splits` (batches on the device); import from there.
"""
