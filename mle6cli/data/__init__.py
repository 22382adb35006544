"""Datasets: loading with validation, synthetic stand-ins, and conversion into the exercise's layouts.

Each dataset has its own module (`mle6cli.data.signs`, …); import from there.
"""
