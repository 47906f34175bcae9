"""Builds the optional C accelerator of ascl_env.retrieval; all other metadata is in pyproject.toml.

The extension is ``optional``: where no C compiler is available the install still succeeds and
``ascl_env.retrieval`` uses its numpy path (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ascl_env._bm25_kernel",
            sources=["ascl_env/_bm25_kernel.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
