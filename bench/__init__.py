"""Benchmarks, run from the repository root by ``bench/run``; never installed (setup.py
packages only ``comet.*``). A regular package so that no other ``bench`` module on
``sys.path`` can shadow it. Imports nothing from Comet: it drives the console scripts."""
