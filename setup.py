"""The real machine's fast path, vmlab/real/_fastpath.c: plain C that vmlab
loads with ctypes (no Python API). Optional: without a C compiler vmlab
installs all the same and its pager serves every fault in Python.
Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("vmlab.real._fastpath", ["vmlab/real/_fastpath.c"],
                             extra_compile_args=["-O2", "-Wall"], optional=True)])
