"""Build step for the one C extension; everything else is declared in setup.cfg.

signing._belt (belt-hash in C) is optional: if it cannot be compiled (no compiler, no Python
headers) setuptools warns and installs without it, and signing/belt.py uses its pure-Python code.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("signing._belt", sources=["signing/_belt.c"], optional=True)])
